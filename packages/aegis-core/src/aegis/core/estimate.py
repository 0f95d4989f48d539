"""Upper bounds of token counts that hold without a tokenizer.

Every tokenizer the providers use (byte-level BPE for OpenAI, SentencePiece with byte fallback
for Gemini) emits at least one byte of text per token, so a text's UTF-8 length bounds its token
count from above. Chat formats add a few control tokens per message and for the reply's priming;
the constants below are generous multiples of the documented overheads (3 per message plus 3
for priming in OpenAI's cookbook).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MESSAGE_OVERHEAD_TOKENS",
    "REPLY_OVERHEAD_TOKENS",
    "text_tokens_upper_bound",
]

MESSAGE_OVERHEAD_TOKENS: Final = 8
"""Control tokens around one chat message (role, separators), with margin."""
REPLY_OVERHEAD_TOKENS: Final = 8
"""Tokens that prime the assistant's reply, with margin."""


def text_tokens_upper_bound(text: str) -> int:
    """At most this many tokens encode ``text`` (its UTF-8 length)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))
