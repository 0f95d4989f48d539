"""The proxy's configuration: one TOML file, validated whole, every problem reported with its
place. With no file at all, settings come from the seed's environment variables.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from aegis.core import Policy, PolicyError
from aegis.proxy.errors import ConfigProblems

__all__ = [
    "AdminSettings",
    "AlertSettings",
    "AuthSettings",
    "ConfigProblems",
    "LedgerSettings",
    "ObservabilitySettings",
    "PolicySourceSettings",
    "ProviderSettings",
    "ReceiptSettings",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "TenantSettings",
    "default_base_url",
    "load_settings",
    "settings_from_env",
]

ProviderType = Literal["openai", "gemini", "anthropic"]
PROVIDER_TYPES: Final[tuple[ProviderType, ...]] = ("openai", "gemini", "anthropic")
DEFAULT_BASE_URLS: Final = {
    "openai": "https://api.openai.com/v1",
    "gemini": "https://generativelanguage.googleapis.com",
    "anthropic": "https://api.anthropic.com",
}
DEFAULT_KEY_ENVS: Final = {
    "openai": "OPENAI_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
}


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8787
    max_body_bytes: int = 20 * 1024 * 1024
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 600.0
    drain_timeout_s: float = 30.0
    abandoned_read_s: float = 30.0
    """A stream the client left is read on for its usage this long at most (else the call
    is charged its reservation)."""
    abandoned_read_bytes: int = 4 * 1024 * 1024
    """... and this many bytes at most."""
    workers: int = 1
    """Processes serving the port (``0``: one per core); see :mod:`aegis.proxy.workers`."""
    max_connections: int = 0
    """Open connections at most (``0``: the descriptor limit less a reserve)."""
    max_connections_per_client: int = 512
    """From one address at most (``0``: no bound; behind a load balancer, raise or lift it)."""
    header_timeout_s: float = 10.0
    """A connection whose first request's headers take longer is closed."""
    event_loop: str = "auto"
    """``auto`` (uvloop when installed), ``uvloop`` or ``asyncio``."""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    trust_tenant_header: bool = False
    """Honour ``x-tenant-id`` (only behind a gateway that authenticates callers itself)."""


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    backend: Literal["memory", "sqlite", "redis"] = "sqlite"
    path: Path = Path(".aegis/ledger.db")
    synchronous: Literal["full", "normal"] = "full"
    url: str = "redis://127.0.0.1:6379/0"
    """``redis`` backend: the server every replica shares."""
    epoch_path: Path = Path(".aegis/redis-epoch")
    """``redis`` backend: where this replica records the data set's epoch, so that a Redis
    that lost its data is noticed (and refused) even after the replica restarts."""
    key_prefix: str = "aegis"
    busy_timeout_ms: int = 10_000
    """``sqlite`` backend: how long a write waits for a lock before the ledger fails."""


StoreBackend = Literal["sqlite", "postgres", "none"]


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """The control-plane store: tenants, policies and keys managed through the admin API."""

    backend: StoreBackend = "sqlite"
    """``sqlite`` (embedded, the default), ``postgres`` (many replicas) or ``none`` (only the
    file's tenants; the admin API cannot create any). With no ``[store]`` table and a
    ``memory`` ledger: ``none``."""
    path: Path = Path(".aegis/control.db")
    """``sqlite``: the file (default: ``control.db`` beside the ledger file)."""
    url_env: str = "AEGIS_STORE_URL"
    """``postgres``: the environment variable holding the ``postgresql://`` URL (kept out of
    the file: it usually holds a password)."""
    url: str | None = None
    """``postgres``: the URL itself, when it holds no secret."""
    poll_interval_s: float = 1.0
    """How often a replica asks the store what changed."""
    stale_after_s: float = 5.0
    """A replica whose polls have failed this long stops trusting its caches (fail closed)."""
    policy_cache_size: int = 10_000
    key_cache_size: int = 100_000


@dataclass(frozen=True, slots=True)
class PolicySourceSettings:
    """``[policies]``: fetch the policies of tenants not in the file from an HTTP API."""

    url: str | None = None
    """``https://policies.internal/tenants/{tenant_id}`` (or a base URL the id is appended
    to); none: policies come from the file and the store. Never logged."""
    ttl_s: float = 30.0
    """A fetched policy is served from the cache this long."""
    stale_s: float = 300.0
    """After ``ttl_s``, served this much longer while one background request refreshes it."""
    timeout_s: float = 2.0
    """A fetch that takes longer fails (closed, for a tenant with nothing cached)."""
    token_env: str | None = None
    """An environment variable holding a bearer token sent with each fetch."""
    cache_size: int = 10_000


@dataclass(frozen=True, slots=True)
class ReceiptSettings:
    sink: Literal["file", "sqlite", "memory"] = "file"
    path: Path = Path(".aegis/receipts")
    key_id: str = "aegis-1"
    secret_env: str = "AEGIS_RECEIPT_SECRET"
    durability: Literal["fsync", "group"] = "fsync"
    """``fsync``: a call is answered once its receipt is on disk (concurrent receipts share
    one fsync); ``group``: fsync at most every ``group_commit_ms``, a crash losing at most
    that window of receipts."""
    group_commit_ms: float = 50.0
    checkpoint_copy: Path | None = None
    """A second file every checkpoint is also appended to (another volume, storage the
    trail's host cannot rewrite): the evidence of a cut tail that survives the cut."""


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    name: str
    type: ProviderType
    base_url: str
    api_key_env: str
    models: tuple[str, ...] = ()
    """Glob patterns of models this provider serves, beyond what the price list says."""


@dataclass(frozen=True, slots=True)
class AdminSettings:
    api_keys: tuple[str, ...] = ()
    """Hashes of the admin keys (``aegis-proxy keys create --admin``); none: no admin API."""


@dataclass(frozen=True, slots=True)
class AlertSettings:
    webhook_url: str | None = None
    """POST every budget alert here as signed JSON; none: alerts are logged and receipted only.
    Never logged (it may carry a token)."""
    webhook_timeout_s: float = 5.0
    """Per delivery attempt."""
    webhook_attempts: int = 6
    """Attempts per alert before it is given up (and logged as lost)."""
    webhook_backoff_s: float = 1.0
    """Wait after the first failed attempt; doubles after each further one."""
    webhook_key_id: str = "aegis-webhook-1"
    """Names the key that signs deliveries (its own: never the receipt key)."""
    webhook_secret_env: str = "AEGIS_WEBHOOK_SECRET"
    """The variable holding the webhook signing secret (unset: generated beside the receipts)."""


TracingMode = Literal["off", "global", "console", "otlp"]


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    metrics: bool = True
    """Serve ``GET /metrics`` (Prometheus text format), closed by default: only to a request
    holding a metrics key (``metrics_keys``), or on the separate ``metrics_listen`` address."""
    metrics_keys: tuple[str, ...] = ()
    """Hashes of the keys a scraper sends as ``Authorization: Bearer <key>``
    (``aegis-proxy keys create --metrics``; Prometheus' ``authorization`` setting)."""
    metrics_listen: str | None = None
    """``host:port`` of a second listener that serves ``/metrics`` (and only that) without a
    key: bind it where only the scraper reaches it."""
    access_log: bool = True
    """One JSON line per request on the ``aegis.proxy.access`` logger."""
    tracing: TracingMode = "off"
    """OpenTelemetry spans: ``global`` (the process's tracer provider), ``console``, ``otlp``."""
    otlp_endpoint: str | None = None
    """With ``otlp``: the collector's traces URL (else ``OTEL_EXPORTER_OTLP_*`` apply)."""
    service_name: str = "aegis-proxy"
    dashboard: bool = True
    """Serve the web dashboard at ``/dashboard`` (it reads the admin API)."""


@dataclass(frozen=True, slots=True)
class TenantSettings:
    tenant_id: str
    api_key_hashes: tuple[str, ...]
    policy: Policy


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    policies: PolicySourceSettings = field(default_factory=PolicySourceSettings)
    receipts: ReceiptSettings = field(default_factory=ReceiptSettings)
    providers: Mapping[str, ProviderSettings] = field(default_factory=dict)
    tenants: Mapping[str, TenantSettings] = field(default_factory=dict)
    pricing_overrides: Path | None = None
    default_provider: str | None = None
    """Serves models that no provider claims, for tenants without a ``primary_provider``."""
    admin: AdminSettings = field(default_factory=AdminSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    source: Path | None = None
    """The file these settings came from (``None``: the environment)."""


_SECTIONS: Final = {
    "server": frozenset(ServerSettings.__dataclass_fields__),
    "auth": frozenset(AuthSettings.__dataclass_fields__),
    "ledger": frozenset(LedgerSettings.__dataclass_fields__),
    "receipts": frozenset(ReceiptSettings.__dataclass_fields__),
    "store": frozenset(StoreSettings.__dataclass_fields__),
    "policies": frozenset(PolicySourceSettings.__dataclass_fields__),
    "pricing": frozenset({"overrides"}),
    "routing": frozenset({"default_provider"}),
    "admin": frozenset(AdminSettings.__dataclass_fields__),
    "observability": frozenset(ObservabilitySettings.__dataclass_fields__),
    "alerts": frozenset(AlertSettings.__dataclass_fields__),
}
_PROVIDER_KEYS: Final = frozenset({"type", "base_url", "api_key_env", "models"})


class _Reader:
    def __init__(self, base: Path) -> None:
        self.problems: list[str] = []
        self.base = base

    def problem(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")

    def table(self, data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, Mapping):
            self.problem(name, "must be a table")
            return {}
        return value

    def known(self, table: Mapping[str, Any], where: str, allowed: frozenset[str]) -> None:
        for key in table:
            if key not in allowed:
                self.problem(f"{where}.{key}", f"unknown key (known: {', '.join(sorted(allowed))})")

    def typed(
        self,
        table: Mapping[str, Any],
        key: str,
        where: str,
        kind: type | tuple[type, ...],
        default: Any,
    ) -> Any:
        if key not in table:
            return default
        value = table[key]
        if isinstance(value, bool) and kind is not bool:
            self.problem(f"{where}.{key}", f"expected {_kind(kind)}, got {value!r}")
            return default
        if not isinstance(value, kind):
            self.problem(f"{where}.{key}", f"expected {_kind(kind)}, got {value!r}")
            return default
        return value

    def choice(
        self, table: Mapping[str, Any], key: str, where: str, choices: tuple[str, ...], default: str
    ) -> Any:
        value = self.typed(table, key, where, str, default)
        if value not in choices:
            self.problem(f"{where}.{key}", f"expected one of {list(choices)}, got {value!r}")
            return default
        return value

    def path(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.base / path


def _kind(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def load_settings(path: str | Path) -> Settings:
    """Read and validate a config file; raises :class:`ConfigProblems` listing every problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigProblems(str(path), [f"cannot read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigProblems(str(path), [f"not valid TOML: {exc}"]) from None
    return parse_settings(data, source=path)


def default_base_url(kind: str, environ: Mapping[str, str]) -> str:
    """Where a provider of ``kind`` is when the config does not say: ``OPENAI_BASE_URL`` /
    ``GEMINI_BASE_URL`` (as the SDKs read them), else the public API."""
    return environ.get(f"{kind.upper()}_BASE_URL") or DEFAULT_BASE_URLS[kind]


def parse_settings(
    data: Mapping[str, Any],
    *,
    source: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Validate already-parsed config data (paths resolve against the file's folder; a
    provider without ``base_url`` takes ``OPENAI_BASE_URL``/``GEMINI_BASE_URL`` from
    ``environ``, the process's environment by default)."""
    env = os.environ if environ is None else environ
    r = _Reader(source.parent if source else Path.cwd())
    r.known(data, "(top level)", frozenset({*_SECTIONS, "providers", "tenants"}))
    for section, keys in _SECTIONS.items():
        r.known(r.table(data, section), section, keys)

    s = r.table(data, "server")
    server = ServerSettings(
        host=r.typed(s, "host", "server", str, "127.0.0.1"),
        port=r.typed(s, "port", "server", int, 8787),
        max_body_bytes=r.typed(s, "max_body_bytes", "server", int, 20 * 1024 * 1024),
        connect_timeout_s=float(r.typed(s, "connect_timeout_s", "server", (int, float), 5.0)),
        read_timeout_s=float(r.typed(s, "read_timeout_s", "server", (int, float), 600.0)),
        drain_timeout_s=float(r.typed(s, "drain_timeout_s", "server", (int, float), 30.0)),
        abandoned_read_s=float(r.typed(s, "abandoned_read_s", "server", (int, float), 30.0)),
        abandoned_read_bytes=r.typed(s, "abandoned_read_bytes", "server", int, 4 * 1024 * 1024),
        workers=r.typed(s, "workers", "server", int, 1),
        max_connections=r.typed(s, "max_connections", "server", int, 0),
        max_connections_per_client=r.typed(s, "max_connections_per_client", "server", int, 512),
        header_timeout_s=float(r.typed(s, "header_timeout_s", "server", (int, float), 10.0)),
        event_loop=r.choice(s, "event_loop", "server", ("auto", "uvloop", "asyncio"), "auto"),
    )
    if not 0 <= server.port <= 65535:
        r.problem("server.port", f"must be 0-65535, got {server.port}")
    if not 0 <= server.workers <= 256:
        r.problem("server.workers", f"must be 0-256 (0: one per core), got {server.workers}")

    a = r.table(data, "auth")
    auth = AuthSettings(trust_tenant_header=r.typed(a, "trust_tenant_header", "auth", bool, False))

    lg = r.table(data, "ledger")
    ledger = LedgerSettings(
        backend=r.choice(lg, "backend", "ledger", ("memory", "sqlite", "redis"), "sqlite"),
        path=r.path(r.typed(lg, "path", "ledger", str, ".aegis/ledger.db")),
        synchronous=r.choice(lg, "synchronous", "ledger", ("full", "normal"), "full"),
        url=r.typed(lg, "url", "ledger", str, "redis://127.0.0.1:6379/0"),
        epoch_path=r.path(r.typed(lg, "epoch_path", "ledger", str, ".aegis/redis-epoch")),
        key_prefix=r.typed(lg, "key_prefix", "ledger", str, "aegis"),
        busy_timeout_ms=r.typed(lg, "busy_timeout_ms", "ledger", int, 10_000),
    )
    if not ledger.url.startswith(("redis://", "rediss://", "unix://")):
        # The URL itself is not echoed: it may carry a password.
        r.problem("ledger.url", "must be a redis://, rediss:// or unix:// URL")
    if "{" in ledger.key_prefix or "}" in ledger.key_prefix:
        r.problem("ledger.key_prefix", "must not contain braces (they mark Redis hash tags)")

    store = _store(r, data, ledger)
    policies = _policies(r, r.table(data, "policies"))

    rc = r.table(data, "receipts")
    receipts = ReceiptSettings(
        sink=r.choice(rc, "sink", "receipts", ("file", "sqlite", "memory"), "file"),
        path=r.path(r.typed(rc, "path", "receipts", str, ".aegis/receipts")),
        key_id=r.typed(rc, "key_id", "receipts", str, "aegis-1"),
        secret_env=r.typed(rc, "secret_env", "receipts", str, "AEGIS_RECEIPT_SECRET"),
        durability=r.choice(rc, "durability", "receipts", ("fsync", "group"), "fsync"),
        group_commit_ms=float(r.typed(rc, "group_commit_ms", "receipts", (int, float), 50.0)),
        checkpoint_copy=r.path(r.typed(rc, "checkpoint_copy", "receipts", str, ""))
        if rc.get("checkpoint_copy")
        else None,
    )

    default_provider = r.typed(r.table(data, "routing"), "default_provider", "routing", str, None)
    pr = r.table(data, "pricing")
    overrides = r.typed(pr, "overrides", "pricing", str, None)

    providers: dict[str, ProviderSettings] = {}
    for name, body in r.table(data, "providers").items():
        where = f"providers.{name}"
        if not isinstance(body, Mapping):
            r.problem(where, "must be a table")
            continue
        r.known(body, where, _PROVIDER_KEYS)
        kind = r.choice(body, "type", where, PROVIDER_TYPES, "openai")
        if "type" not in body:
            r.problem(f"{where}.type", 'is required ("openai", "gemini" or "anthropic")')
        base_url = r.typed(body, "base_url", where, str, default_base_url(kind, env))
        if not base_url.startswith(("http://", "https://")):
            r.problem(f"{where}.base_url", f"must be an http(s) URL, got {base_url!r}")
        models = r.typed(body, "models", where, list, [])
        if not all(isinstance(m, str) for m in models):
            r.problem(f"{where}.models", "must be a list of strings")
            models = []
        providers[name] = ProviderSettings(
            name=name,
            type=kind,
            base_url=base_url.rstrip("/"),
            api_key_env=r.typed(body, "api_key_env", where, str, DEFAULT_KEY_ENVS[kind]),
            models=tuple(models),
        )

    tenants: dict[str, TenantSettings] = {}
    for tenant_id, body in r.table(data, "tenants").items():
        where = f"tenants.{tenant_id}"
        if not isinstance(body, Mapping):
            r.problem(where, "must be a table")
            continue
        keys = r.typed(body, "api_keys", where, list, [])
        for i, key in enumerate(keys):
            if not (isinstance(key, str) and key.startswith("sha256:") and len(key) == 71):
                r.problem(
                    f"{where}.api_keys[{i}]",
                    'must be a key hash "sha256:<64 hex>" (make one with '
                    "`aegis-proxy keys create`), never a key itself",
                )
        policy_data = {k: v for k, v in body.items() if k != "api_keys"}
        try:
            policy = Policy.from_dict(tenant_id, policy_data)
        except PolicyError as exc:
            r.problem(f"{where}.{exc.field}", exc.problem)
            continue
        for provider in (policy.routing.primary_provider, *policy.routing.fallback_providers):
            if provider is not None and provider not in providers:
                r.problem(f"{where}.routing", f"provider {provider!r} is not configured")
        tenants[tenant_id] = TenantSettings(tenant_id, tuple(keys), policy)

    if default_provider is not None and default_provider not in providers:
        r.problem("routing.default_provider", f"provider {default_provider!r} is not configured")
    seen: dict[str, str] = {}
    for tenant in tenants.values():
        for key in tenant.api_key_hashes:
            if key in seen and seen[key] != tenant.tenant_id:
                r.problem(
                    f"tenants.{tenant.tenant_id}.api_keys",
                    f"a key hash is also listed for tenant {seen[key]!r}",
                )
            seen[key] = tenant.tenant_id

    admin = _admin(r, r.table(data, "admin"), seen)
    observability = _observability(r, r.table(data, "observability"))
    alerts = _alerts(r, r.table(data, "alerts"))

    if r.problems:
        raise ConfigProblems(str(source) if source else "config", r.problems)
    return Settings(
        server=server,
        auth=auth,
        ledger=ledger,
        store=store,
        policies=policies,
        receipts=receipts,
        providers=providers,
        tenants=tenants,
        pricing_overrides=None if overrides is None else r.path(overrides),
        default_provider=default_provider,
        admin=admin,
        observability=observability,
        alerts=alerts,
        source=source,
    )


def _is_key_hash(key: object) -> bool:
    return isinstance(key, str) and key.startswith("sha256:") and len(key) == 71


def _admin(r: _Reader, table: Mapping[str, Any], tenant_keys: Mapping[str, str]) -> AdminSettings:
    keys = r.typed(table, "api_keys", "admin", list, [])
    for i, key in enumerate(keys):
        if not _is_key_hash(key):
            r.problem(
                f"admin.api_keys[{i}]",
                'must be a key hash "sha256:<64 hex>" (make one with '
                "`aegis-proxy keys create --admin`), never a key itself",
            )
        elif key in tenant_keys:
            r.problem(f"admin.api_keys[{i}]", f"is also a key of tenant {tenant_keys[key]!r}")
    return AdminSettings(api_keys=tuple(k for k in keys if _is_key_hash(k)))


def _store(r: _Reader, data: Mapping[str, Any], ledger: LedgerSettings) -> StoreSettings:
    where = "store"
    table = r.table(data, where)
    default_backend = "none" if ledger.backend == "memory" and "store" not in data else "sqlite"
    path = table.get("path")
    settings = StoreSettings(
        backend=r.choice(table, "backend", where, ("sqlite", "postgres", "none"), default_backend),
        path=r.path(r.typed(table, "path", where, str, ""))
        if path is not None
        else ledger.path.parent / "control.db",
        url_env=r.typed(table, "url_env", where, str, "AEGIS_STORE_URL"),
        url=r.typed(table, "url", where, str, None),
        poll_interval_s=float(r.typed(table, "poll_interval_s", where, (int, float), 1.0)),
        stale_after_s=float(r.typed(table, "stale_after_s", where, (int, float), 5.0)),
        policy_cache_size=r.typed(table, "policy_cache_size", where, int, 10_000),
        key_cache_size=r.typed(table, "key_cache_size", where, int, 100_000),
    )
    if settings.url is not None and not settings.url.startswith(("postgresql://", "postgres://")):
        r.problem(f"{where}.url", "must be a postgresql:// URL")  # not echoed: may hold a password
    if settings.poll_interval_s <= 0:
        r.problem(f"{where}.poll_interval_s", "must be above 0")
    if settings.stale_after_s < settings.poll_interval_s:
        r.problem(f"{where}.stale_after_s", "must be at least poll_interval_s")
    for name in ("policy_cache_size", "key_cache_size"):
        if getattr(settings, name) < 1:
            r.problem(f"{where}.{name}", "must be at least 1")
    return settings


def _policies(r: _Reader, table: Mapping[str, Any]) -> PolicySourceSettings:
    where = "policies"
    settings = PolicySourceSettings(
        url=r.typed(table, "url", where, str, None),
        ttl_s=float(r.typed(table, "ttl_s", where, (int, float), 30.0)),
        stale_s=float(r.typed(table, "stale_s", where, (int, float), 300.0)),
        timeout_s=float(r.typed(table, "timeout_s", where, (int, float), 2.0)),
        token_env=r.typed(table, "token_env", where, str, None),
        cache_size=r.typed(table, "cache_size", where, int, 10_000),
    )
    if settings.url is not None and not settings.url.startswith(("http://", "https://")):
        r.problem(f"{where}.url", "must be an http(s) URL")  # not echoed: may hold a token
    if settings.ttl_s <= 0:
        r.problem(f"{where}.ttl_s", "must be above 0")
    if settings.stale_s < 0:
        r.problem(f"{where}.stale_s", "must not be negative")
    if settings.timeout_s <= 0:
        r.problem(f"{where}.timeout_s", "must be above 0")
    if settings.cache_size < 1:
        r.problem(f"{where}.cache_size", "must be at least 1")
    return settings


def _observability(r: _Reader, table: Mapping[str, Any]) -> ObservabilitySettings:
    where = "observability"
    keys = r.typed(table, "metrics_keys", where, list, [])
    for i, key in enumerate(keys):
        if not _is_key_hash(key):
            r.problem(
                f"{where}.metrics_keys[{i}]",
                'must be a key hash "sha256:<64 hex>" (make one with '
                "`aegis-proxy keys create --metrics`), never a key itself",
            )
    listen = r.typed(table, "metrics_listen", where, str, None)
    if listen is not None:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            r.problem(f"{where}.metrics_listen", f'must be "host:port", got {listen!r}')
            listen = None
    return ObservabilitySettings(
        metrics_keys=tuple(k for k in keys if _is_key_hash(k)),
        metrics_listen=listen,
        metrics=r.typed(table, "metrics", where, bool, True),
        access_log=r.typed(table, "access_log", where, bool, True),
        tracing=r.choice(table, "tracing", where, ("off", "global", "console", "otlp"), "off"),
        otlp_endpoint=r.typed(table, "otlp_endpoint", where, str, None),
        service_name=r.typed(table, "service_name", where, str, "aegis-proxy"),
        dashboard=r.typed(table, "dashboard", where, bool, True),
    )


def _alerts(r: _Reader, table: Mapping[str, Any]) -> AlertSettings:
    where = "alerts"
    url = r.typed(table, "webhook_url", where, str, None)
    if url is not None and not url.startswith(("http://", "https://")):
        r.problem(f"{where}.webhook_url", "must be an http(s) URL")  # not echoed: may hold a token
    settings = AlertSettings(
        webhook_url=url,
        webhook_timeout_s=float(r.typed(table, "webhook_timeout_s", where, (int, float), 5.0)),
        webhook_attempts=r.typed(table, "webhook_attempts", where, int, 6),
        webhook_backoff_s=float(r.typed(table, "webhook_backoff_s", where, (int, float), 1.0)),
        webhook_key_id=r.typed(table, "webhook_key_id", where, str, "aegis-webhook-1"),
        webhook_secret_env=r.typed(table, "webhook_secret_env", where, str, "AEGIS_WEBHOOK_SECRET"),
    )
    if settings.webhook_timeout_s <= 0:
        r.problem(f"{where}.webhook_timeout_s", "must be above 0")
    if settings.webhook_attempts < 1:
        r.problem(f"{where}.webhook_attempts", "must be at least 1")
    if settings.webhook_backoff_s < 0:
        r.problem(f"{where}.webhook_backoff_s", "must not be negative")
    return settings


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings with no file: providers from ``OPENAI_API_KEY``/``GEMINI_API_KEY``/
    ``ANTHROPIC_API_KEY`` (and ``OPENAI_BASE_URL``/``GEMINI_BASE_URL``/``ANTHROPIC_BASE_URL``
    for another server of the same kind), SQLite
    ledger and receipts under ``./.aegis/``, and tenants (with key hashes) from
    ``.aegis/tenants.toml`` when it exists. Without tenants nobody can call: never open."""
    env = os.environ if environ is None else environ
    providers: dict[str, ProviderSettings] = {
        kind: ProviderSettings(
            name=kind,
            type=kind,
            base_url=default_base_url(kind, env).rstrip("/"),
            api_key_env=DEFAULT_KEY_ENVS[kind],
        )
        for kind in PROVIDER_TYPES
        if env.get(DEFAULT_KEY_ENVS[kind])
    }
    default = env.get("AEGIS_DEFAULT_PROVIDER") or next(iter(providers), None)
    if default is not None and default not in providers:
        raise ConfigProblems("environment", [f"AEGIS_DEFAULT_PROVIDER: {default!r} has no API key"])
    tenants: dict[str, TenantSettings] = {}
    tenants_file = Path(".aegis/tenants.toml")
    if tenants_file.exists():
        data = tomllib.loads(tenants_file.read_text())
        loaded = parse_settings(
            {
                "tenants": data.get("tenants", {}),
                "providers": {p.name: {"type": p.type} for p in providers.values()},
            }
        )
        tenants = dict(loaded.tenants)
    return Settings(providers=providers, tenants=tenants, default_provider=default)
