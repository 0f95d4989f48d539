"""What the demo runs: the simulated upstream (on a background event loop), the real
``aegis-proxy`` as a subprocess in front of it, and the demo's own config and keys."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from aegis.proxy import hash_key, new_key
from demo.simulated import SimulatedUpstream

__all__ = ["KEY_ID", "TENANTS", "Stack", "TenantInfo"]

T = TypeVar("T")

KEY_ID: Final = "demo-key"


@dataclass(frozen=True, slots=True)
class TenantInfo:
    """A tenant of the demo, as the menu describes it."""

    tenant_id: str
    blurb: str
    model: str
    """The model its prompts use unless the user picks another."""


TENANTS: Final = (
    TenantInfo("acme", "product team: GPT-4o family, falls back to Gemini", "gpt-4o"),
    TenantInfo("research", "intern sandbox: gpt-4o-mini only, small daily budget", "gpt-4o-mini"),
    TenantInfo(
        "support", "support bot: Gemini, reached through the OpenAI SDK", "gemini-2.5-flash"
    ),
    TenantInfo(
        "agents", "coding agents: Claude, reached through the OpenAI SDK", "claude-haiku-4-5"
    ),
)

# The demo's policies. Limits are small so a handful of prompts drains them; the hard stop on
# acme's hour budget is what the tour runs into.
_TENANT_TOML: Final = """
[tenants.acme]
api_keys = ["{acme}"]
[tenants.acme.budgets]
per_run_usd = "0.05"
per_window = [
    {{ window = "hour", limit_usd = "0.015" }},
    {{ window = "month", limit_usd = "2", hard_stop = false }},
]
[tenants.acme.routing]
primary_provider = "openai"
fallback_providers = ["gemini"]
fallback_models = {{ "gpt-4o-mini" = "gemini-2.5-flash-lite", "gpt-4o" = "gemini-2.5-flash-lite" }}
[tenants.acme.model]
allow_models = ["gpt-4o*", "gemini-*"]

[tenants.research]
api_keys = ["{research}"]
[tenants.research.budgets]
per_window = [{{ window = "day", limit_usd = "0.0005" }}]
[tenants.research.routing]
primary_provider = "openai"
[tenants.research.model]
allow_models = ["gpt-4o-mini"]

[tenants.support]
api_keys = ["{support}"]
[tenants.support.budgets]
per_window = [{{ window = "day", limit_usd = "0.004" }}]
[tenants.support.routing]
primary_provider = "gemini"
[tenants.support.model]
allow_models = ["gemini-2.5-flash"]

[tenants.agents]
api_keys = ["{agents}"]
[tenants.agents.budgets]
per_run_usd = "0.01"
per_window = [{{ window = "day", limit_usd = "0.02" }}]
[tenants.agents.routing]
primary_provider = "anthropic"
[tenants.agents.model]
allow_models = ["claude-haiku-4-5", "claude-sonnet-4-5"]
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """The simulated upstream and the proxy, started together and stopped together.

    Args:
        workdir: where the config, ledger, receipts and proxy log go (emptied first).
        latency_scale: passed to the simulated upstream (``0`` in tests).
        environ: the environment; ``OPENAI_API_KEY``/``GEMINI_API_KEY``/``ANTHROPIC_API_KEY``
            there switch a provider from simulated to real.
    """

    def __init__(
        self, workdir: Path, *, latency_scale: float = 1.0, environ: Mapping[str, str] | None = None
    ) -> None:
        self.workdir = workdir.resolve()
        self.environ = dict(os.environ if environ is None else environ)
        self.simulated = SimulatedUpstream(latency_scale=latency_scale)
        self.real = {
            kind: bool(self.environ.get(var))
            for kind, var in (
                ("openai", "OPENAI_API_KEY"),
                ("gemini", "GEMINI_API_KEY"),
                ("anthropic", "ANTHROPIC_API_KEY"),
            )
        }
        self.keys = {t.tenant_id: new_key() for t in TENANTS}
        self.receipt_secret = secrets.token_urlsafe(32)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = self.workdir / "aegis-demo.toml"
        self.ledger_path = self.workdir / "ledger.db"
        self.receipts_dir = self.workdir / "receipts"
        self.log_path = self.workdir / "proxy.log"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the stack's event loop and wait for it."""
        assert self._loop is not None, "start() the stack first"
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @property
    def proxy_env(self) -> dict[str, str]:
        """The proxy's environment: the receipt secret and the upstream keys."""
        return {
            **self.environ,
            "AEGIS_RECEIPT_SECRET": self.receipt_secret,
            "AEGIS_SIMULATED_KEY": "sk-simulated",
            "AEGIS_LOG_LEVEL": "WARNING",
        }

    @property
    def secret_path(self) -> Path:
        """The receipt secret, kept (mode 0600) so the trail can be verified after the demo."""
        return self.workdir / "receipt.secret"

    @property
    def verify_keys(self) -> str:
        """``AEGIS_RECEIPT_KEYS`` for ``aegis-receipts verify``: the demo's key, from its file."""
        return f"{KEY_ID}:file:{self.shown(self.secret_path)}"

    def shown(self, path: Path) -> str:
        """``path`` as the user would type it: relative when under the current folder."""
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)

    def provider_label(self, kind: str) -> str:
        """``real`` or ``SIMULATED``, for the screen."""
        return "real" if self.real[kind] else "SIMULATED"

    def write_config(self, simulated_url: str) -> None:
        """Write the demo's proxy config (the real format, see packages/aegis-proxy/README.md)."""
        openai = (
            'base_url = "https://api.openai.com/v1"\napi_key_env = "OPENAI_API_KEY"\n'
            if self.real["openai"]
            else f'base_url = "{simulated_url}/openai/v1"\napi_key_env = "AEGIS_SIMULATED_KEY"\n'
        )
        gemini = (
            'base_url = "https://generativelanguage.googleapis.com"\n'
            'api_key_env = "GEMINI_API_KEY"\n'
            if self.real["gemini"]
            else f'base_url = "{simulated_url}/gemini"\napi_key_env = "AEGIS_SIMULATED_KEY"\n'
        )
        anthropic = (
            'base_url = "https://api.anthropic.com"\napi_key_env = "ANTHROPIC_API_KEY"\n'
            if self.real["anthropic"]
            else f'base_url = "{simulated_url}/anthropic"\napi_key_env = "AEGIS_SIMULATED_KEY"\n'
        )
        hashes = {tenant: hash_key(key) for tenant, key in self.keys.items()}
        self.config.write_text(
            "# Written by the demo (python -m demo) for this run only.\n"
            f"[server]\nport = {self.port}\ndrain_timeout_s = 5\n\n"
            '[ledger]\nbackend = "sqlite"\npath = "ledger.db"\n\n'
            f'[receipts]\nsink = "file"\npath = "receipts"\nkey_id = "{KEY_ID}"\n'
            'secret_env = "AEGIS_RECEIPT_SECRET"\n\n'
            '[routing]\ndefault_provider = "openai"\n\n'
            f'[providers.openai]\ntype = "openai"\n{openai}\n'
            f'[providers.gemini]\ntype = "gemini"\n{gemini}\n'
            f'[providers.anthropic]\ntype = "anthropic"\n{anthropic}'
            + _TENANT_TOML.format(**hashes)
        )

    def start(self) -> None:
        """Start the simulated upstream and the proxy; wait until the proxy is ready."""
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        self.secret_path.touch(mode=0o600)
        self.secret_path.write_text(self.receipt_secret)
        # The simulated upstream and the ledger reads run on this loop, so the menu can block
        # on input() in the main thread.
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        simulated_url = self.run(self.simulated.start())
        for attempt in range(3):
            if attempt:
                # The free port was taken between our probe and the proxy's bind (or the
                # process was killed from outside while starting): try another.
                self.port = _free_port()
                self.url = f"http://127.0.0.1:{self.port}"
            self.write_config(simulated_url)
            problem = self._launch()
            if problem is None:
                return
            if "address already in use" not in problem and "exited (-" not in problem:
                break
        raise RuntimeError(problem)

    def _launch(self) -> str | None:
        """Start the proxy and wait for ``/readyz``; ``None`` when ready, else what happened."""
        with self.log_path.open("wb") as log:
            process = self._process = subprocess.Popen(
                [sys.executable, "-m", "aegis.proxy", "serve", "--config", str(self.config)],
                env=self.proxy_env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return f"the proxy exited ({process.returncode}):\n{self.log_path.read_text()}"
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as response:
                    if response.status == 200:
                        return None
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        return f"the proxy did not become ready:\n{self.log_path.read_text()}"

    def stop(self) -> None:
        """Stop the proxy (SIGTERM: it drains and closes the receipt trail) and the upstream."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self.run(self.simulated.stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()
