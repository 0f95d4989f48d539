"""The Aegis governance proxy: OpenAI-compatible and Gemini-native, on aiohttp."""

from __future__ import annotations

__all__: tuple[str, ...] = ()
