"""The Aegis governance proxy: OpenAI-compatible and Gemini-native, on aiohttp."""

from __future__ import annotations

from aegis.proxy.app import apply_settings, create_app
from aegis.proxy.auth import KeyIndex, hash_key, new_key
from aegis.proxy.config import (
    AuthSettings,
    ConfigProblems,
    LedgerSettings,
    ProviderSettings,
    ReceiptSettings,
    ServerSettings,
    Settings,
    TenantSettings,
    load_settings,
    parse_settings,
    settings_from_env,
)
from aegis.proxy.errors import ProxyError
from aegis.proxy.state import GATE, SETTINGS

__all__ = [
    "GATE",
    "SETTINGS",
    "AuthSettings",
    "ConfigProblems",
    "KeyIndex",
    "LedgerSettings",
    "ProviderSettings",
    "ProxyError",
    "ReceiptSettings",
    "ServerSettings",
    "Settings",
    "TenantSettings",
    "apply_settings",
    "create_app",
    "hash_key",
    "load_settings",
    "new_key",
    "parse_settings",
    "settings_from_env",
]
