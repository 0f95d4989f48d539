"""The CLI's side of the admin API: ``aegis-proxy tenants|keys ... --url URL`` against a
running proxy, the admin key taken from ``AEGIS_ADMIN_KEY`` (never from the command line,
where other users could read it). Changes made this way are receipted by the proxy."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from aegis.proxy.errors import ProxyError

__all__ = ["AdminClient", "AdminClientError"]


class AdminClientError(ProxyError):
    """The proxy refused (its message), or could not be reached."""


class AdminClient:
    """A few calls of the admin API, synchronous (the CLI runs one at a time)."""

    def __init__(self, url: str, key: str | None = None, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        key = key or os.environ.get("AEGIS_ADMIN_KEY")
        if not key:
            raise AdminClientError("set AEGIS_ADMIN_KEY to an admin key to use --url")
        self._key = key
        self._timeout_s = timeout_s

    def call(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = exc.reason
            raise AdminClientError(f"{exc.code}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise AdminClientError(f"cannot reach {self.url}: {exc}") from None

    def tenant_path(self, tenant_id: str) -> str:
        return "/admin/tenants/" + quote(tenant_id, safe="")
