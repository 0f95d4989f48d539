"""The Aegis terminal demo: ``make demo`` or ``uv run python -m demo`` (see demo/README.md)."""
