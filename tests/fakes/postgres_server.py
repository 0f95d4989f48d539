"""A real PostgreSQL server (Debian's ``postgresql`` package, installed by ``make test``) on a
free loopback port, in a throwaway data folder. Not a fake: the folder name is historical.

PostgreSQL refuses to run as root; as root (CI), ``initdb`` and ``postgres`` run as the
``postgres`` user through ``runuser``. A missing server fails the test that needs it: it is
never skipped.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["PostgresServer", "fresh_database", "postgres_bindir"]


def postgres_bindir() -> Path:
    """The folder holding ``initdb`` and ``postgres``; raises when there is none."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for found in (shutil.which("pg_config"),):
        if found:
            out = subprocess.run([found, "--bindir"], capture_output=True, text=True)
            if out.returncode == 0:
                candidates.insert(0, out.stdout.strip())
    for folder in candidates:
        if os.access(Path(folder) / "initdb", os.X_OK) and os.access(
            Path(folder) / "postgres", os.X_OK
        ):
            return Path(folder)
    raise RuntimeError(
        "no PostgreSQL server binaries (initdb, postgres): run `make test` (it installs "
        "Debian's postgresql package) or `apt-get install postgresql`"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One ``postgres`` process; :meth:`stop` and :meth:`start` again keep port and data."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: its folders are private to root, and the server runs
        # as the postgres user.
        self.workdir = Path(tempfile.mkdtemp(prefix="aegis-pg-"))
        self.data = self.workdir / "pgdata"
        self.port = _free_port()
        self.bindir = postgres_bindir()
        self.process: subprocess.Popen[bytes] | None = None
        self._as_root = os.geteuid() == 0

    @property
    def dsn(self) -> str:
        return f"postgresql://aegis@127.0.0.1:{self.port}/postgres"

    def _command(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self._as_root else list(args)

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            shutil.chown(self.workdir, "postgres", "postgres")
        subprocess.run(
            self._command(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "aegis",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        if not self.data.exists():
            self.init()
        log = (self.workdir / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            self._command(
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.workdir),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        isready = str(self.bindir / "pg_isready")
        while True:
            done = subprocess.run(
                [isready, "-h", "127.0.0.1", "-p", str(self.port), "-U", "aegis"],
                capture_output=True,
            )
            if done.returncode == 0:
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (self.workdir / "postgres.log").read_text()[-2000:]
                raise RuntimeError(f"postgres did not start on port {self.port}:\n{tail}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # Fast shutdown: clients are disconnected, not waited for.
            subprocess.run(
                self._command(
                    str(self.bindir / "pg_ctl"), "-D", str(self.data), "stop", "-m", "fast"
                ),
                capture_output=True,
            )
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        """Stop the server and remove its data."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


_databases = iter(range(1, 10**6))


async def fresh_database(server: PostgresServer) -> str:
    """A new empty database on ``server``; returns its DSN."""
    import asyncpg

    name = f"t{next(_databases)}"
    conn = await asyncpg.connect(server.dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return server.dsn.rsplit("/", 1)[0] + "/" + name
