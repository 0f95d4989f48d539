"""Governed OpenAI calls through the official openai SDK, and the OpenAI wire functions."""

from __future__ import annotations

__all__: tuple[str, ...] = ()
