"""The visibility store: executions and custom search attributes in SQLite or PostgreSQL.

Tables (shared by all namespaces, the namespace is the first key column):

- ``executions``: one row per run, system attributes in typed columns, the
  decoded memo and search attributes as JSON, and the state version
  ``(history_length, version_seq)`` that orders upserts;
- ``custom_attributes``: one row per (run, attribute, list element), with the
  value in ``v_text`` / ``v_int`` / ``v_double``; queries look runs up in it with ``run_id IN (subquery)``;
- ``search_attribute_types``: the registered custom attributes per namespace;
- ``visibility_meta``: the key that signs page tokens.

All database work runs on one executor thread per store (SQLite connections
and psycopg connections are not for concurrent use); the public methods are
coroutines, so the frontend's event loop never blocks on the database.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from kronicle.connectors.visibility._attributes import STATUS_NAMES, SYSTEM_ATTRIBUTES, SearchAttributeType
from kronicle.connectors.visibility._backend import Backend, connect
from kronicle.connectors.visibility._query import CompiledQuery, compile_query, parse_query
from kronicle.connectors.visibility._rows import (
    EXECUTION_COLUMNS,
    ExecutionUpdate,
    attribute_rows,
    decode_search_attributes,
    execution_info,
    execution_row,
)

__all__ = ["ApplyResult", "InvalidPageTokenError", "SearchAttributeError", "VisibilityStore"]

_R = TypeVar("_R")
_Page = tuple[list[dict[str, Any]], str | None]
_Values = list[Any]
_MAX_PAGE_SIZE = 1000
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_IN_CHUNK = 500

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS visibility_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS executions (
        namespace TEXT NOT NULL,
        run_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        workflow_type TEXT NOT NULL,
        task_queue TEXT NOT NULL,
        status TEXT NOT NULL,
        start_time BIGINT NOT NULL,
        execution_time BIGINT NOT NULL,
        close_time BIGINT,
        execution_duration BIGINT,
        history_length BIGINT NOT NULL,
        first_run_id TEXT NOT NULL,
        memo TEXT NOT NULL,
        search_attributes TEXT NOT NULL,
        version_seq BIGINT NOT NULL,
        PRIMARY KEY (namespace, run_id))""",
    "CREATE INDEX IF NOT EXISTS executions_by_default_order ON executions"
    " (namespace, (COALESCE(close_time, 9223372036854775807)), start_time)",
    "CREATE INDEX IF NOT EXISTS executions_by_type_default_order ON executions"
    " (namespace, workflow_type, (COALESCE(close_time, 9223372036854775807)), start_time)",
    "CREATE INDEX IF NOT EXISTS executions_by_type_start ON executions (namespace, workflow_type, start_time)",
    "CREATE INDEX IF NOT EXISTS executions_by_type_status ON executions (namespace, workflow_type, status, start_time)",
    "CREATE INDEX IF NOT EXISTS executions_by_status ON executions (namespace, status, start_time)",
    "CREATE INDEX IF NOT EXISTS executions_by_start ON executions (namespace, start_time)",
    "CREATE INDEX IF NOT EXISTS executions_by_close ON executions (namespace, close_time)",
    "CREATE INDEX IF NOT EXISTS executions_by_workflow_id ON executions (namespace, workflow_id)",
    "CREATE INDEX IF NOT EXISTS executions_by_task_queue ON executions (namespace, task_queue)",
    """CREATE TABLE IF NOT EXISTS custom_attributes (
        namespace TEXT NOT NULL,
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        v_text TEXT,
        v_int BIGINT,
        v_double DOUBLE PRECISION)""",
    "CREATE INDEX IF NOT EXISTS custom_attributes_by_run ON custom_attributes (namespace, run_id, name)",
    "CREATE INDEX IF NOT EXISTS custom_attributes_by_text ON custom_attributes (namespace, name, v_text)",
    "CREATE INDEX IF NOT EXISTS custom_attributes_by_int ON custom_attributes (namespace, name, v_int)",
    "CREATE INDEX IF NOT EXISTS custom_attributes_by_double ON custom_attributes (namespace, name, v_double)",
    """CREATE TABLE IF NOT EXISTS search_attribute_types (
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        PRIMARY KEY (namespace, name))""",
)

_COLUMN_LIST = ", ".join(EXECUTION_COLUMNS)
_UPSERT = (
    f"INSERT INTO executions ({_COLUMN_LIST}) VALUES ({', '.join('?' * len(EXECUTION_COLUMNS))})"
    " ON CONFLICT (namespace, run_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in EXECUTION_COLUMNS[2:])
    # The guard that makes replays and reordering harmless: only a later state version wins.
    + " WHERE executions.history_length < excluded.history_length"
    " OR (executions.history_length = excluded.history_length AND executions.version_seq < excluded.version_seq)"
)
_SELECT = (
    "e.run_id, e.workflow_id, e.workflow_type, e.task_queue, e.status, e.start_time, e.execution_time,"
    " e.close_time, e.execution_duration, e.history_length, e.first_run_id, e.memo, e.search_attributes"
)
_SELECT_NAMES = [c.strip().removeprefix("e.") for c in _SELECT.split(",")]


class InvalidPageTokenError(ValueError):
    """A page token that this store did not issue for this namespace and query (or was altered)."""


class SearchAttributeError(ValueError):
    """A custom search attribute that cannot be registered."""


class ApplyResult:
    """What one :meth:`VisibilityStore.apply` did."""

    __slots__ = ("applied", "stale")

    def __init__(self, applied: int, stale: int) -> None:
        self.applied = applied
        """Records that changed a row."""
        self.stale = stale
        """Records ignored because the row already had the same or a later state version."""

    def __repr__(self) -> str:
        return f"ApplyResult(applied={self.applied}, stale={self.stale})"


class VisibilityStore:
    """Queryable executions of every namespace; written by the projector, read by the frontend.

    Open with ``store = await VisibilityStore.open("sqlite:///visibility.db")`` (or a
    ``postgresql://`` URL), then ``async with store:`` or :meth:`close` when done.
    """

    def __init__(self, backend: Backend) -> None:
        """Wrap an open backend; prefer :meth:`open`. Call :meth:`initialize` before use."""
        self._backend = backend
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kronicle-visibility-db")
        self._token_key = b""
        self._written = 0
        self._analyze_at = 1_000
        self._closed = False

    @classmethod
    async def open(cls, url: str) -> VisibilityStore:
        """Connect to ``url`` and create the tables if needed.

        Raises:
            StoreConnectionError: the database cannot be opened.
        """
        loop = asyncio.get_running_loop()
        backend = await loop.run_in_executor(None, connect, url)
        store = cls(backend)
        try:
            await store.initialize()
        except BaseException:
            await store.close()
            raise
        return store

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._backend.dialect

    async def initialize(self) -> None:
        """Create the tables and indexes (idempotent) and load the page-token key."""
        self._token_key = await self._run(self._initialize)

    def _initialize(self) -> bytes:
        for statement in _SCHEMA:
            self._backend.execute(statement)
        # Concurrent first starts agree on one key: whoever inserts first wins, everyone reads it back.
        self._backend.execute(
            "INSERT INTO visibility_meta (key, value) VALUES ('page_token_key', ?) ON CONFLICT (key) DO NOTHING",
            (secrets.token_hex(32),),
        )
        rows = self._backend.execute("SELECT value FROM visibility_meta WHERE key = 'page_token_key'")
        self._backend.commit()
        return bytes.fromhex(rows[0][0])

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._backend.close)
        finally:
            self._executor.shutdown(wait=True)

    async def __aenter__(self) -> VisibilityStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _run(self, fn: Callable[..., _R], *args: Any) -> _R:
        if self._closed:
            raise RuntimeError("the visibility store is closed")

        def guarded() -> _R:
            try:
                return fn(*args)
            except BaseException:
                self._backend.rollback()
                raise

        return await asyncio.get_running_loop().run_in_executor(self._executor, guarded)

    # -- search attribute registry ------------------------------------------------------------------

    async def register_search_attribute(self, namespace: str, name: str, type: SearchAttributeType | str) -> None:
        """Register a custom search attribute; registering it again with the same type does nothing.

        Raises:
            SearchAttributeError: a bad name, a system attribute's name, or the name is
                already registered with another type (Temporal does not allow changing it).
        """
        try:
            kind = SearchAttributeType.parse(type)
        except ValueError as exc:
            raise SearchAttributeError(str(exc)) from None
        if not _NAME.fullmatch(name):
            raise SearchAttributeError(
                f"search attribute name {name!r}: use letters, digits and '_', starting with a letter or '_'"
            )
        if name in SYSTEM_ATTRIBUTES:
            raise SearchAttributeError(f"{name!r} is a system attribute; pick another name")
        await self._run(self._register, namespace, name, kind)

    def _register(self, namespace: str, name: str, kind: SearchAttributeType) -> None:
        self._backend.execute(
            "INSERT INTO search_attribute_types (namespace, name, type) VALUES (?, ?, ?)"
            " ON CONFLICT (namespace, name) DO NOTHING",
            (namespace, name, kind.value),
        )
        rows = self._backend.execute(
            "SELECT type FROM search_attribute_types WHERE namespace = ? AND name = ?", (namespace, name)
        )
        self._backend.commit()
        if rows[0][0] != kind.value:
            raise SearchAttributeError(
                f"search attribute {name!r} of namespace {namespace!r} is already registered as {rows[0][0]}; "
                "a type cannot be changed, register a new name instead"
            )

    async def search_attributes(self, namespace: str) -> dict[str, SearchAttributeType]:
        """The namespace's registered custom search attributes and their types."""
        return await self._run(self._types_committed, namespace)

    def _types_committed(self, namespace: str) -> dict[str, SearchAttributeType]:
        types = self._types(namespace)
        self._backend.commit()
        return types

    def _types(self, namespace: str) -> dict[str, SearchAttributeType]:
        # Read every time: another store (another frontend) may have registered attributes since.
        rows = self._backend.execute("SELECT name, type FROM search_attribute_types WHERE namespace = ?", (namespace,))
        return {name: SearchAttributeType(kind) for name, kind in rows}

    # -- writes (the projector) -----------------------------------------------------------------

    async def apply(self, updates: Sequence[ExecutionUpdate]) -> ApplyResult:
        """Upsert executions in one transaction; an update older than the stored row changes nothing.

        Returns when the transaction is committed (durable), so the caller may then
        commit its Kafka offsets.
        """
        if not updates:
            return ApplyResult(0, 0)
        return await self._run(self._apply, list(updates))

    def _apply(self, updates: list[ExecutionUpdate]) -> ApplyResult:
        latest: dict[tuple[str, str], ExecutionUpdate] = {}
        for u in updates:
            key = (u.namespace, u.run_id)
            if key not in latest or u.version > latest[key].version:
                latest[key] = u
        stored: dict[tuple[str, str], tuple[int, int]] = {}
        by_namespace: dict[str, list[str]] = {}
        for ns, run in latest:
            by_namespace.setdefault(ns, []).append(run)
        for ns, runs in by_namespace.items():
            for i in range(0, len(runs), _IN_CHUNK):
                chunk = runs[i : i + _IN_CHUNK]
                rows = self._backend.execute(
                    "SELECT run_id, history_length, version_seq FROM executions"
                    f" WHERE namespace = ? AND run_id IN ({', '.join('?' * len(chunk))})",
                    (ns, *chunk),
                )
                stored.update({(ns, run): (hl, seq) for run, hl, seq in rows})
        winners = [u for key, u in latest.items() if key not in stored or u.version > stored[key]]
        executions: list[tuple[Any, ...]] = []
        attributes: list[tuple[Any, ...]] = []
        for u in winners:
            values = decode_search_attributes(u.record.get("search_attributes") or {})
            executions.append(execution_row(u, values))
            attributes.extend(attribute_rows(u.namespace, u.run_id, values))
        if winners:
            self._backend.executemany(_UPSERT, executions)
            # A run without a row has no attribute rows either (both are written in one transaction):
            # only runs seen before need their old attribute rows removed.
            replaced = [(u.namespace, u.run_id) for u in winners if (u.namespace, u.run_id) in stored]
            if replaced:
                self._backend.executemany("DELETE FROM custom_attributes WHERE namespace = ? AND run_id = ?", replaced)
            if attributes:
                self._backend.executemany(
                    "INSERT INTO custom_attributes (namespace, run_id, name, v_text, v_int, v_double)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    attributes,
                )
        self._backend.commit()
        self._written += len(winners)
        if self._written >= self._analyze_at:
            self._analyze()
        return ApplyResult(len(winners), len(updates) - len(winners))

    def _analyze(self) -> None:
        # Without statistics both planners walk the default-order index for a rare custom
        # attribute (100,000 rows: 200 ms instead of 1 ms on SQLite). SQLite never gathers them
        # by itself and PostgreSQL's autovacuum may lag a bulk load, so refresh them as the
        # table grows: after 1,000 rows written, 2,000, 4,000, ... then every 128,000.
        self._backend.execute("ANALYZE executions")
        self._backend.execute("ANALYZE custom_attributes")
        self._backend.commit()
        self._written = 0
        self._analyze_at = min(self._analyze_at * 2, 128_000)

    # -- reads (the frontend) -------------------------------------------------------------------

    def _compile(self, namespace: str, query: str) -> CompiledQuery:
        return compile_query(parse_query(query), self._types(namespace), namespace)

    async def list(
        self, namespace: str, query: str = "", page_size: int = 100, next_page_token: str | None = None
    ) -> _Page:
        """One page of the executions matching ``query``, and the token of the next page (None: last page).

        Args:
            namespace: the namespace.
            query: a List Filter (``WorkflowType = 'X' AND ExecutionStatus = 'Running' ORDER BY StartTime``).
            page_size: 1 to 1000 executions per page.
            next_page_token: from the previous call with the same namespace and query.

        Raises:
            InvalidQueryError: the query is not valid (the message points at the problem).
            InvalidPageTokenError: the token was altered, or is for another namespace or query.
        """
        if not 1 <= page_size <= _MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {_MAX_PAGE_SIZE}, not {page_size}")
        return await self._run(self._list, namespace, query, page_size, next_page_token)

    def _list(self, namespace: str, query: str, page_size: int, token: str | None) -> _Page:
        compiled = self._compile(namespace, query)
        keys = [*compiled.order, ("e.run_id", False)]
        where, params = f"e.namespace = ? AND {compiled.where}", [namespace, *compiled.params]
        if token is not None:
            after = self._read_token(token, namespace, query, len(keys))
            where += " AND " + _keyset(keys)
            params.append(after[0])
            for i in range(len(keys)):
                params.extend(after[: i + 1])
        order_sql = ", ".join(f"{expr} {'DESC' if desc else 'ASC'}" for expr, desc in keys)
        key_sql = ", ".join(f"{expr} AS k{i}" for i, (expr, _) in enumerate(keys))
        rows = self._backend.execute(
            f"SELECT {_SELECT}, {key_sql} FROM executions e WHERE {where} ORDER BY {order_sql} LIMIT ?",
            (*params, page_size + 1),
        )
        self._backend.commit()
        page = rows[:page_size]
        infos = [execution_info(dict(zip(_SELECT_NAMES, row, strict=False))) for row in page]
        if len(rows) <= page_size:
            return infos, None
        last = [*page[-1][len(_SELECT_NAMES) :]]
        return infos, self._make_token(namespace, query, last)

    async def count(self, namespace: str, query: str = "") -> int:
        """How many executions match ``query`` (its ORDER BY, if any, is ignored).

        Raises:
            InvalidQueryError: the query is not valid.
        """
        return await self._run(self._count, namespace, query)

    def _count(self, namespace: str, query: str) -> int:
        compiled = self._compile(namespace, query)
        rows = self._backend.execute(
            f"SELECT COUNT(*) FROM executions e WHERE e.namespace = ? AND {compiled.where}",
            (namespace, *compiled.params),
        )
        self._backend.commit()
        return int(rows[0][0])

    async def count_by_status(self, namespace: str, query: str = "") -> dict[str, int]:
        """How many executions match ``query``, by ExecutionStatus (Temporal's names; absent statuses are 0).

        Raises:
            InvalidQueryError: the query is not valid.
        """
        return await self._run(self._count_by_status, namespace, query)

    def _count_by_status(self, namespace: str, query: str) -> dict[str, int]:
        compiled = self._compile(namespace, query)
        rows = self._backend.execute(
            f"SELECT e.status, COUNT(*) FROM executions e WHERE e.namespace = ? AND {compiled.where} GROUP BY e.status",
            (namespace, *compiled.params),
        )
        self._backend.commit()
        counts = dict.fromkeys(STATUS_NAMES.values(), 0)
        counts.update({status: int(n) for status, n in rows})
        return counts

    # -- page tokens ------------------------------------------------------------------------------

    def _fingerprint(self, namespace: str, query: str) -> str:
        return hashlib.sha256(json.dumps([namespace, query]).encode()).hexdigest()[:16]

    def _make_token(self, namespace: str, query: str, last: _Values) -> str:
        body = json.dumps({"q": self._fingerprint(namespace, query), "k": last}, separators=(",", ":")).encode()
        mac = hmac.new(self._token_key, body, hashlib.sha256).digest()[:16]
        return _b64(body) + "." + _b64(mac)

    def _read_token(self, token: str, namespace: str, query: str, n_keys: int) -> _Values:
        problem = "the page token is not valid; start again without a token"
        try:
            body_text, mac_text = token.split(".")
            body, mac = _unb64(body_text), _unb64(mac_text)
        except ValueError:
            raise InvalidPageTokenError(problem) from None
        if not hmac.compare_digest(mac, hmac.new(self._token_key, body, hashlib.sha256).digest()[:16]):
            raise InvalidPageTokenError(problem)
        data = json.loads(body)
        if data.get("q") != self._fingerprint(namespace, query) or len(data.get("k", [])) != n_keys:
            raise InvalidPageTokenError(
                "the page token belongs to another namespace or query; pass the same query as for the first page"
            )
        return [*data["k"]]


def _keyset(keys: list[tuple[str, bool]]) -> str:
    """Rows strictly after the last one in the ORDER BY: k0 >= ? AND ((k0 > ?) OR (k0 = ? AND k1 > ?) OR ...).

    The leading ``k0 >= ?`` is implied by the rest; it is there so the planners can
    seek an index to the cursor instead of filtering every row before it.
    """
    terms = []
    for i, (expr, desc) in enumerate(keys):
        equal = [f"{keys[j][0]} = ?" for j in range(i)]
        terms.append("(" + " AND ".join([*equal, f"{expr} {'<' if desc else '>'} ?"]) + ")")
    first, desc = keys[0]
    return f"{first} {'<=' if desc else '>='} ? AND (" + " OR ".join(terms) + ")"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
