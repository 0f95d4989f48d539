"""The Aegis governance proxy: OpenAI-compatible, Gemini- and Anthropic-native, on aiohttp."""

from __future__ import annotations

from aegis.proxy.access_log import ACCESS_LOGGER
from aegis.proxy.alert_webhook import ALERT_WEBHOOK, AlertWebhook
from aegis.proxy.app import apply_settings, create_app
from aegis.proxy.auth import KeyIndex, hash_key, new_key
from aegis.proxy.config import (
    AdminSettings,
    AlertSettings,
    AuthSettings,
    ConfigProblems,
    LedgerSettings,
    ObservabilitySettings,
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
from aegis.proxy.operator import OPERATOR
from aegis.proxy.prices import apply_pricing, format_prices, load_pricing
from aegis.proxy.reload import reload_config
from aegis.proxy.state import GATE, SETTINGS, TRACER_PROVIDER

__all__ = [
    "ACCESS_LOGGER",
    "ALERT_WEBHOOK",
    "GATE",
    "OPERATOR",
    "SETTINGS",
    "TRACER_PROVIDER",
    "AdminSettings",
    "AlertSettings",
    "AlertWebhook",
    "AuthSettings",
    "ConfigProblems",
    "KeyIndex",
    "LedgerSettings",
    "ObservabilitySettings",
    "ProviderSettings",
    "ProxyError",
    "ReceiptSettings",
    "ServerSettings",
    "Settings",
    "TenantSettings",
    "apply_pricing",
    "apply_settings",
    "create_app",
    "format_prices",
    "hash_key",
    "load_pricing",
    "load_settings",
    "new_key",
    "parse_settings",
    "reload_config",
    "settings_from_env",
]
