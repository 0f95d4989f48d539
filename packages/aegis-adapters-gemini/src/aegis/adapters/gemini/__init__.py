"""Governed Gemini calls through google-genai, and OpenAI <-> Gemini translation."""

from __future__ import annotations

__all__: tuple[str, ...] = ()
