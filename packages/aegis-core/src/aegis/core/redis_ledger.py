"""A ledger in Redis, shared exactly by any number of proxy replicas (extra ``[redis]``).

Each operation is one Lua script (see ``_redis_scripts``), so reserving checks and holds every
budget of a call at once, and settling posts and frees at once: one round trip each. A tenant's
keys share the hash tag ``{tenant}``, so they sit in one Redis Cluster slot. Holds are members of
a sorted set scored by their expiry and every script first sweeps the expired ones, so a replica
that dies (SIGKILL, OOM) stops holding budget once its TTL passes.

**Time.** With no ``clock``, scripts read the server's ``TIME``: every replica then agrees on
when a hold expires, whatever their own clocks say. A ``clock`` (tests, simulations) is sent as
``now`` with every script instead.

**Data loss.** Redis can lose writes (a restart without persistence, a failover to a lagging
replica); a counter that is missing must never read as zero spend. The data set carries an
*epoch*, a random token in ``<prefix>:epoch``, stamped on each tenant's accounts too. The ledger
learns the epoch on first contact and records it (in memory, and in ``epoch_file`` when given,
so a restarted replica still remembers it). Whenever Redis no longer carries the epoch the ledger
knows, every call fails with :class:`LedgerUnavailable` (fail closed) until an operator calls
:meth:`RedisLedger.accept_data_loss` (``aegis-proxy ledger accept-loss``), which starts a new
epoch that the other replicas then adopt by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aegis.core import _redis_scripts as lua
from aegis.core.clock import Clock
from aegis.core.errors import (
    DuplicateRequest,
    HoldAlreadyResolved,
    HoldNotFound,
    LedgerError,
    LedgerUnavailable,
)
from aegis.core.files import write_atomic
from aegis.core.ledger import Account, Balance, Hold, Settlement, Statement, check_admission

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisLedger"]

logger = logging.getLogger(__name__)

DATA_LOSS: Final = (
    "the Redis ledger lost its data (epoch {epoch} is gone): refusing calls rather than reading "
    "spend as zero; after checking spend, run `aegis-proxy ledger accept-loss`"
)


def _tag(tenant_id: str) -> str:
    # Braces would end the hash tag early; '%' is escaped so the mapping stays one-to-one.
    return tenant_id.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


_Pending = tuple[str, str, list[str], int, "asyncio.Future[list[Any]]"]


class _Batcher:
    """Sends the scripts of concurrent calls together, one pipeline per round trip.

    Each call still takes exactly one script and one round trip; under load many calls share
    it, which saves the per-command socket writes and pool hand-offs that would otherwise
    bound a single process to a few thousand calls per second. A retried pipeline is safe:
    every write carries a token and a replayed script returns its first result.
    """

    def __init__(self, redis: Redis, *, in_flight: int = 2, max_batch: int = 128) -> None:
        self._redis = redis
        self._queue: list[_Pending] = []
        self._slots = in_flight
        self._max_batch = max_batch
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, script: str, sha: str, args: list[str], numkeys: int) -> list[Any]:
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queue.append((script, sha, args, numkeys, future))
        if self._slots:
            self._slots -= 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    replies = await self._send(batch)
                except BaseException as exc:
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for (*_, future), reply in zip(batch, replies, strict=True):
                    if future.done():
                        continue
                    if isinstance(reply, Exception):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
        finally:
            self._slots += 1

    async def _send(self, batch: list[_Pending]) -> list[Any]:
        from redis.exceptions import NoScriptError

        pipe = self._redis.pipeline(transaction=False)
        for _, sha, args, numkeys, _ in batch:
            pipe.evalsha(sha, numkeys, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if missing:
            # A restarted (or flushed) server forgot the scripts: load them, run those again.
            for script in {batch[i][0] for i in missing}:
                await self._redis.script_load(script)
            pipe = self._redis.pipeline(transaction=False)
            for i in missing:
                _, sha, args, numkeys, _ = batch[i]
                pipe.evalsha(sha, numkeys, *args)
            for i, reply in zip(missing, await pipe.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        return replies

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class RedisLedger:
    """Accounts and holds in one Redis endpoint (a standalone primary, or the address that
    fronts a Sentinel-managed primary). Keys already carry Cluster hash tags; a Cluster client
    is not wired in yet."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        clock: Clock | None = None,
        prefix: str = "aegis",
        epoch_file: str | Path | None = None,
        create_epoch: bool = True,
        retention_s: float = 86_400.0,
        timeout_s: float = 2.0,
        max_connections: int = 64,
    ) -> None:
        """``epoch_file``: where this replica records the data set's epoch across restarts.
        ``create_epoch``: start a new epoch in an empty Redis (``False`` for read-only tools).
        ``retention_s``: how long a resolved hold is kept to answer duplicate request ids.
        ``timeout_s``: per Redis call; past it the call fails closed.
        ``max_connections``: the connection pool's size (calls in flight at once)."""
        if "{" in prefix or "}" in prefix:
            raise ValueError("the key prefix must not contain braces")
        try:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import ExponentialBackoff
        except ImportError as exc:
            raise ImportError("RedisLedger needs redis: install aegis-runtime-core[redis]") from exc

        self._clock = clock
        self._prefix = prefix
        self._epoch_file = None if epoch_file is None else Path(epoch_file)
        self._create_epoch = create_epoch
        self._retention_ms = str(int(retention_s * 1000))
        # Retrying is safe: every write carries a token, and a replay returns the first result.
        # A full pool makes calls wait (up to timeout_s) for a connection rather than fail.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 2),
        )
        self._redis: Redis = Redis.from_pool(pool)
        self._scripts = {
            name: (getattr(lua, name), hashlib.sha1(getattr(lua, name).encode()).hexdigest())
            for name in (
                "RESERVE",
                "COMMIT",
                "RELEASE",
                "RENEW",
                "BALANCES",
                "STATEMENT",
                "MARK_ALERT",
            )
        }
        self._batch = _Batcher(self._redis)
        self._epoch: str | None = None
        self._epoch_lock: asyncio.Lock | None = None
        self._closed = False

    # -- epoch ---------------------------------------------------------------------------

    @property
    def _epoch_key(self) -> str:
        return f"{self._prefix}:epoch"

    @property
    def _superseded_key(self) -> str:
        return f"{self._prefix}:epoch:superseded"

    def _recorded(self) -> str | None:
        # The file first: an operator's `ledger accept-loss` may have rewritten it.
        if self._epoch_file is not None and self._epoch_file.exists():
            return self._epoch_file.read_text().strip() or self._epoch
        return self._epoch

    def _record(self, epoch: str) -> None:
        self._epoch = epoch
        if self._epoch_file is not None:
            # Replicas started from one folder share this file: each writes its own temporary.
            write_atomic(self._epoch_file, epoch + "\n")

    async def _sync_epoch(self) -> str:
        """Agree with Redis on the epoch, or raise LedgerUnavailable if its data was lost."""
        if self._epoch_lock is None:
            self._epoch_lock = asyncio.Lock()
        async with self._epoch_lock:
            known = self._recorded()
            current = _text(await self._redis.get(self._epoch_key))
            if current is None and known is None and self._create_epoch:
                await self._redis.set(self._epoch_key, os.urandom(12).hex(), nx=True)
                current = _text(await self._redis.get(self._epoch_key))
                logger.info("redis ledger: epoch %s", current)
            if current is None:
                raise LedgerUnavailable(DATA_LOSS.format(epoch=known or "(none yet)"))
            if known is not None and current != known:
                if not await self._redis.sismember(self._superseded_key, known):
                    raise LedgerUnavailable(DATA_LOSS.format(epoch=known))
                logger.warning("redis ledger: epoch %s replaced %s by an operator", current, known)
            if current != self._epoch:
                self._record(current)
            return current

    async def accept_data_loss(self) -> str:
        """Start a new epoch after a data loss (an operator's decision); returns it.

        Budgets then count from what Redis holds now: spend committed before the loss is no
        longer counted. Replicas that knew an older epoch adopt the new one on their next call.
        """
        try:
            old = _text(await self._redis.get(self._epoch_key))
            gone = {e for e in (old, self._recorded()) if e is not None}
            new = os.urandom(12).hex()
            if gone:
                await self._redis.sadd(self._superseded_key, *gone)
            await self._redis.set(self._epoch_key, new)
        except LedgerError:
            raise
        except Exception as exc:
            raise LedgerUnavailable(f"redis ledger: {type(exc).__name__}") from exc
        self._record(new)
        logger.warning("redis ledger: operator accepted data loss; new epoch %s", new)
        return new

    # -- calling scripts -----------------------------------------------------------------

    def _keys(self, tenant_id: str) -> list[str]:
        base = f"{self._prefix}:{{{_tag(tenant_id)}}}:"
        return [base + "book", base + "timers"]

    async def _call(self, name: str, tenant_id: str, args: Sequence[str]) -> list[Any]:
        """Run a script for the tenant; one round trip unless the epoch needs settling."""
        if self._closed:
            raise LedgerUnavailable("ledger is closed")
        keys = self._keys(tenant_id)
        try:
            epoch = self._epoch or await self._sync_epoch()
            adopt = "0"
            for _ in range(3):
                now = "" if self._clock is None else str(round(self._clock.time() * 1000))
                script, sha = self._scripts[name]
                reply = await self._batch.run(
                    script, sha, [*keys, epoch, now, adopt, self._retention_ms, *args], len(keys)
                )
                if reply[0] not in ("noepoch", "epoch"):
                    return reply
                # The tenant carries no epoch (new, or idle long enough to expire) or another
                # one: only Redis's global epoch, checked against ours, says which is safe.
                synced = await self._sync_epoch()
                stale = reply[0] == "epoch" and reply[1] != synced
                if stale and not await self._redis.sismember(self._superseded_key, reply[1]):
                    raise LedgerUnavailable(DATA_LOSS.format(epoch=synced))
                epoch, adopt = synced, "1" if reply[0] == "noepoch" or stale else "0"
            raise LedgerUnavailable("redis ledger: epoch kept changing")
        except LedgerError:
            raise
        except Exception as exc:
            # Connection refused, timeouts, script errors: fail closed, never wave calls through.
            raise LedgerUnavailable(f"redis ledger: {type(exc).__name__}: {exc}") from exc

    # -- the Ledger protocol -------------------------------------------------------------

    async def reserve(
        self,
        *,
        tenant_id: str,
        hold_id: str,
        amount_nanos: int,
        accounts: Sequence[Account],
        ttl_s: float,
    ) -> Hold:
        if amount_nanos < 0:
            raise ValueError("a reservation cannot be negative")
        # Numbers travel as strings: cjson would turn them into doubles.
        packed = json.dumps(
            [
                field
                for a in accounts
                for field in (
                    a.key,
                    str(a.limit_nanos),
                    "1" if a.hard_stop else "0",
                    str(int(a.expires_at * 1000)),
                    str(amount_nanos if a.amount is None else a.amount),
                    a.unit,
                )
            ]
        )
        ttl_ms = str(int(ttl_s * 1000))
        args = [hold_id, str(amount_nanos), ttl_ms, os.urandom(8).hex(), packed]
        reply = await self._call("RESERVE", tenant_id, args)
        if reply[0] == "dup":
            raise DuplicateRequest(hold_id, "in flight" if reply[1] == "pending" else "charged")
        if reply[0] == "deny":
            now = int(reply[1]) / 1000
            check_admission(tenant_id, amount_nanos, accounts, [int(s) for s in reply[2:]], now)
            raise LedgerUnavailable("redis ledger: denial without a budget")  # pragma: no cover
        spent = tuple(int(s) for s in reply[3:])
        return Hold(tenant_id, hold_id, amount_nanos, int(reply[1]) / 1000, spent)

    def _resolved(self, reply: list[Any], tenant_id: str, hold_id: str) -> None:
        if reply[0] == "missing":
            raise HoldNotFound(f"no reservation {hold_id!r} for tenant {tenant_id!r}")
        if reply[0] == "resolved":
            raise HoldAlreadyResolved(hold_id, str(reply[1]))

    async def commit(
        self, *, tenant_id: str, hold_id: str, amount_nanos: int, tokens: int | None = None
    ) -> Settlement:
        if amount_nanos < 0 or (tokens is not None and tokens < 0):
            raise ValueError("a charge cannot be negative")
        reply = await self._call(
            "COMMIT",
            tenant_id,
            [
                hold_id,
                str(amount_nanos),
                os.urandom(8).hex(),
                "" if tokens is None else str(tokens),
            ],
        )
        self._resolved(reply, tenant_id, hold_id)
        return Settlement(hold_id, int(reply[1]), amount_nanos, reply[2] == "1")

    async def release(self, *, tenant_id: str, hold_id: str) -> None:
        reply = await self._call("RELEASE", tenant_id, [hold_id, os.urandom(8).hex()])
        self._resolved(reply, tenant_id, hold_id)

    async def renew(self, *, tenant_id: str, hold_id: str, ttl_s: float) -> Hold:
        reply = await self._call("RENEW", tenant_id, [hold_id, str(int(ttl_s * 1000))])
        self._resolved(reply, tenant_id, hold_id)
        return Hold(tenant_id, hold_id, int(reply[1]), int(reply[2]) / 1000)

    async def balances(self, *, tenant_id: str, keys: Sequence[str]) -> dict[str, Balance]:
        reply = await self._call("BALANCES", tenant_id, list(keys))
        values = [int(v) for v in reply[1:]]
        return {k: Balance(values[2 * i], values[2 * i + 1]) for i, k in enumerate(keys)}

    async def statement(self, *, tenant_id: str) -> Statement:
        reply = await self._call("STATEMENT", tenant_id, [])
        fields = dict(zip(reply[1][::2], reply[1][1::2], strict=True))
        names = sorted({f[2:] for f in fields})
        balances = {
            k: Balance(int(fields.get("c:" + k, 0)), int(fields.get("p:" + k, 0))) for k in names
        }
        held = reply[2]
        holds = tuple(
            Hold(tenant_id, held[i], int(held[i + 1]), float(held[i + 2]) / 1000)
            for i in range(0, len(held), 3)
        )
        return Statement(tenant_id, balances, holds)

    async def mark_alert(
        self, *, tenant_id: str, key: str, threshold: str, expires_at: float
    ) -> bool:
        # A mark in the tenant's book (not a key of its own) shares the book's epoch: after a
        # data loss an alert may fire again, which is better than never.
        mark = f"{key}:{threshold}"
        reply = await self._call("MARK_ALERT", tenant_id, [mark, str(int(expires_at * 1000))])
        return bool(reply[0] == "first")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._batch.close()
        await self._redis.aclose()
