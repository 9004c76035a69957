"""Visibility: a Kafka-consumer projection of ``kronicle.<ns>.visibility`` into SQLite or PostgreSQL.

The :class:`VisibilityProjector` consumes a namespace's visibility topic and
upserts one row per run, ordered by state version, into a
:class:`VisibilityStore`; the store answers Temporal's List Filter language
(``WorkflowType = 'X' AND ExecutionStatus = 'Running' ORDER BY StartTime DESC``)
with keyset pagination. See ``docs/visibility.md``.
"""

from __future__ import annotations

from kronicle.connectors.visibility._attributes import STATUS_NAMES, SYSTEM_ATTRIBUTES, SearchAttributeType
from kronicle.connectors.visibility._backend import StoreConnectionError
from kronicle.connectors.visibility._projector import ProjectorConfig, ProjectorStats, VisibilityProjector
from kronicle.connectors.visibility._query import InvalidQueryError, Query, compile_query, parse_query
from kronicle.connectors.visibility._rows import ExecutionUpdate
from kronicle.connectors.visibility._store import (
    ApplyResult,
    InvalidPageTokenError,
    SearchAttributeError,
    VisibilityStore,
)

__all__ = [
    "STATUS_NAMES",
    "SYSTEM_ATTRIBUTES",
    "ApplyResult",
    "ExecutionUpdate",
    "InvalidPageTokenError",
    "InvalidQueryError",
    "ProjectorConfig",
    "ProjectorStats",
    "Query",
    "SearchAttributeError",
    "SearchAttributeType",
    "StoreConnectionError",
    "VisibilityProjector",
    "VisibilityStore",
    "compile_query",
    "parse_query",
]
