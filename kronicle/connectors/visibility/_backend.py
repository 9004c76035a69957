"""The two databases behind one small interface: SQLite (stdlib, WAL) and PostgreSQL (psycopg 3).

Everything above this module writes one SQL text with ``?`` placeholders; the
PostgreSQL backend rewrites them to psycopg's ``%s``. The SQL itself sticks to
what both accept (``ON CONFLICT ... DO UPDATE ... WHERE``, ``BIGINT``,
``DOUBLE PRECISION``, expression indexes), so there is one code path.

A backend is used from one thread at a time (the store's executor thread).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Backend", "PostgresBackend", "SQLiteBackend", "StoreConnectionError", "connect"]


class StoreConnectionError(RuntimeError):
    """The visibility database could not be opened."""


class Backend(Protocol):
    """What the store needs from a database connection."""

    dialect: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; rows if it returns any, else []."""
        ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for each parameter row."""
        ...

    def commit(self) -> None:
        """Make everything since the last commit durable."""
        ...

    def rollback(self) -> None:
        """Drop everything since the last commit."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class SQLiteBackend:
    """A SQLite file in WAL mode (readers never block the projector's writes)."""

    dialect = "sqlite"

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        """Open (creating if needed) ``path``; ``":memory:"`` for a private in-memory database.

        Args:
            path: the database file.
            synchronous: SQLite's ``synchronous`` pragma. FULL (the default) makes a
                commit survive a power loss, which is what lets the projector
                commit its Kafka offsets right after; NORMAL survives a process crash only.
        """
        try:
            # The store moves the connection to its own executor thread; it is never shared concurrently.
            self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level="DEFERRED")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={'NORMAL' if synchronous.upper() == 'NORMAL' else 'FULL'}")
            # LIKE must be case-sensitive, as STARTS_WITH is in Temporal (and in PostgreSQL).
            self._conn.execute("PRAGMA case_sensitive_like=ON")
            self._conn.execute("PRAGMA busy_timeout=10000")
            # ANALYZE samples instead of reading whole indexes: enough for the planner, and cheap
            # enough to run while projecting (see VisibilityStore._analyze).
            self._conn.execute("PRAGMA analysis_limit=1000")
        except sqlite3.Error as exc:
            raise StoreConnectionError(
                f"cannot open the SQLite visibility store at {path}: {exc}; check the path and its permissions"
            ) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, tuple(params)).fetchall()

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()

    def close(self) -> None:
        self._conn.close()


class PostgresBackend:
    """A PostgreSQL database through psycopg 3 (one connection, explicit transactions)."""

    dialect = "postgresql"

    def __init__(self, conninfo: str) -> None:
        """Connect with a libpq connection string or URL (``postgresql://user@host:port/db``).

        Raises:
            StoreConnectionError: psycopg is not installed or the server cannot be reached.
        """
        try:
            import psycopg
        except ImportError as exc:
            raise StoreConnectionError("PostgreSQL visibility needs psycopg 3: pip install 'psycopg[binary]'") from exc
        try:
            self._conn = psycopg.connect(conninfo, autocommit=False)
        except psycopg.Error as exc:
            raise StoreConnectionError(
                f"cannot connect to the PostgreSQL visibility store ({exc}); check the URL and that the server is up"
            ) from exc

    @staticmethod
    def _sql(sql: str) -> str:
        # Our SQL has no '?' or '%' outside placeholders (LIKE patterns are parameters).
        return sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cur:
            cur.execute(self._sql(sql), tuple(params))
            return list(cur.fetchall()) if cur.description is not None else []

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(self._sql(sql), [tuple(r) for r in rows])

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()

    def close(self) -> None:
        self._conn.close()


def connect(url: str) -> Backend:
    """A backend for ``sqlite:///relative.db``, ``sqlite:////abs/file.db``, ``sqlite://:memory:``, a plain path,
    or ``postgresql://...``.

    Raises:
        StoreConnectionError: the database cannot be opened.
    """
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresBackend(url)
    if url.startswith("sqlite://"):
        # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute/path.db.
        path = url.removeprefix("sqlite://").removeprefix("/")
        return SQLiteBackend(":memory:" if path in ("", ":memory:") else path)
    return SQLiteBackend(url)
