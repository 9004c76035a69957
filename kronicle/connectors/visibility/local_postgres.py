"""A throwaway PostgreSQL server for tests and benchmarks (``initdb`` into a temp dir, ``pg_ctl start``).

It needs the server binaries (Debian: ``apt-get install postgresql``); it looks
for them on ``PATH`` and under ``/usr/lib/postgresql/*/bin``. PostgreSQL
refuses to run as root, so as root the server runs as the ``postgres`` system
user (or ``nobody``) through ``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

__all__ = ["LocalPostgres", "PostgresUnavailableError"]


class PostgresUnavailableError(RuntimeError):
    """The PostgreSQL server binaries are missing or the server did not start."""


def _find(binary: str) -> str:
    found = shutil.which(binary)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{binary}"), reverse=True):
        return candidate
    raise PostgresUnavailableError(
        f"PostgreSQL's {binary!r} was not found on PATH or under /usr/lib/postgresql/*/bin; "
        "install the server (Debian/Ubuntu: apt-get install postgresql) to run the PostgreSQL visibility tests"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPostgres:
    """``with LocalPostgres() as pg: psycopg.connect(pg.url)``; the data dir is deleted on exit."""

    def __init__(self, *, durable: bool = False, user: str = "kronicle") -> None:
        """Prepare (but do not start) a server.

        Args:
            durable: keep fsync on (benchmarks of write throughput); tests turn it off for speed.
            user: the database superuser to create (trust authentication on 127.0.0.1 only).
        """
        self._durable = durable
        self.user = user
        self.port = 0
        self._dir: Path | None = None
        self._run_as: str | None = None
        self._pg_ctl = ""

    @property
    def url(self) -> str:
        """Connection URL of the ``postgres`` database."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _cmd(self, *args: str) -> list[str]:
        if self._run_as is None:
            return list(args)
        return ["runuser", "-u", self._run_as, "--", *args]

    def start(self) -> None:
        """Run ``initdb`` and start the server on a free port of 127.0.0.1.

        Raises:
            PostgresUnavailableError: binaries missing, or initdb / the server failed (with its log).
        """
        initdb, self._pg_ctl = _find("initdb"), _find("pg_ctl")
        if os.geteuid() == 0:
            for candidate in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    pwd.getpwnam(candidate)
                    self._run_as = candidate
                    break
            if self._run_as is None or shutil.which("runuser") is None:
                raise PostgresUnavailableError("running as root: need runuser and a 'postgres' or 'nobody' user")
        self._dir = Path(tempfile.mkdtemp(prefix="kronicle-pg-"))
        if self._run_as is not None:
            entry = pwd.getpwnam(self._run_as)
            os.chown(self._dir, entry.pw_uid, entry.pw_gid)
        data, log = self._dir / "data", self._dir / "server.log"
        self.port = _free_port()
        init = subprocess.run(
            self._cmd(initdb, "-D", str(data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--locale=C"),
            capture_output=True,
            text=True,
            check=False,
        )
        if init.returncode != 0:
            self._cleanup()
            raise PostgresUnavailableError(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
        options = f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 -c max_connections=50"
        if not self._durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        started = subprocess.run(
            self._cmd(self._pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"),
            capture_output=True,
            text=True,
            check=False,
        )
        if started.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else started.stderr
            self._cleanup()
            raise PostgresUnavailableError(f"PostgreSQL did not start: {tail.strip()}")

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh one per test) and return its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # a generated name, never input
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server (immediately) and delete its files; idempotent."""
        if self._dir is None:
            return
        data = self._dir / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run(
                self._cmd(self._pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"),
                capture_output=True,
                check=False,
            )
        self._cleanup()

    def _cleanup(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
