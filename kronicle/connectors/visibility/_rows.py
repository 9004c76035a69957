"""From a decoded ``VisibilityRecord`` to the rows the store keeps, and back to what ``list`` returns.

Pure functions, no I/O. A custom search attribute value is stored once per
typed column it can be compared as (a string that is an RFC 3339 timestamp is
also kept as milliseconds, an int also as a double), so registering an
attribute's type after its values arrived still finds them.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import Any

from kronicle._wire import payload_from_bytes
from kronicle.connectors.visibility._attributes import STATUS_NAMES, datetime_to_ms, ms_to_rfc3339
from kronicle.converter import DataConverter, PayloadConverter

__all__ = ["EXECUTION_COLUMNS", "ExecutionUpdate", "attribute_rows", "execution_info", "execution_row"]

log = logging.getLogger(__name__)

EXECUTION_COLUMNS = (
    "namespace",
    "run_id",
    "workflow_id",
    "workflow_type",
    "task_queue",
    "status",
    "start_time",
    "execution_time",
    "close_time",
    "execution_duration",
    "history_length",
    "first_run_id",
    "memo",
    "search_attributes",
    "version_seq",
)


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutionUpdate:
    """One visibility record to apply: the decoded datum and its state version."""

    namespace: str
    record: Mapping[str, Any]
    """A ``kronicle.workflow.VisibilityRecord`` datum."""
    seq: int
    """The record's ``kronicle.seq`` header (0 if absent)."""

    @property
    def run_id(self) -> str:
        return str(self.record["run_id"])

    @property
    def version(self) -> tuple[int, int]:
        """(history length, sequence number): a later state of a run is greater in this order."""
        return int(self.record.get("history_length") or 0), self.seq


_converter: PayloadConverter = DataConverter().payload_converter


def decode_search_attributes(raw: Mapping[str, bytes]) -> dict[str, Any]:
    """The values of a record's search attributes; one that cannot be decoded is left out (and logged)."""
    out: dict[str, Any] = {}
    for name, data in raw.items():
        try:
            out[name] = _converter.from_payload(payload_from_bytes(data))
        except (ValueError, TypeError) as exc:
            log.warning("search attribute %r: cannot decode its value (%s); it is not searchable", name, exc)
    return out


def execution_row(update: ExecutionUpdate, attributes: Mapping[str, Any]) -> tuple[Any, ...]:
    """The executions-table row (in :data:`EXECUTION_COLUMNS` order)."""
    r = update.record
    close = r.get("close_time_ms")
    execution_time = int(r.get("execution_time_ms") or 0) or int(r["start_time_ms"])
    duration = None if close is None else max(0, int(close) - execution_time) * 1_000_000
    memo = {k: _memo_value(v) for k, v in (r.get("memo") or {}).items()}
    return (
        update.namespace,
        update.run_id,
        r["workflow_id"],
        r["workflow_type"],
        r["task_queue"],
        STATUS_NAMES.get(str(r["status"]), str(r["status"])),
        int(r["start_time_ms"]),
        execution_time,
        None if close is None else int(close),
        duration,
        int(r.get("history_length") or 0),
        r.get("first_run_id") or "",
        json.dumps(memo, sort_keys=True, separators=(",", ":")),
        json.dumps(attributes, sort_keys=True, separators=(",", ":"), default=str),
        update.seq,
    )


def _memo_value(data: bytes) -> Any:
    try:
        return payload_from_bytes(data).to_dict()
    except ValueError:
        # Not a Kronicle payload: hand the bytes on untouched rather than drop them.
        return {"raw": base64.b64encode(data).decode()}


def attribute_rows(namespace: str, run_id: str, attributes: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Side-table rows ``(namespace, run_id, name, v_text, v_int, v_double)``; a list gives one row per element."""
    rows: list[tuple[Any, ...]] = []
    for name, value in attributes.items():
        for item in value if isinstance(value, list) else [value]:
            typed = _typed(item)
            if typed is not None:
                rows.append((namespace, run_id, name, *typed))
    return rows


def _typed(value: Any) -> tuple[str | None, int | None, float | None] | None:
    if isinstance(value, bool):
        return None, int(value), None
    if isinstance(value, int):
        # Beyond 64 bits it cannot be an Int attribute; keep it comparable as a Double.
        return None, value if -(2**63) <= value < 2**63 else None, float(value)
    if isinstance(value, float):
        return None, None, value
    if isinstance(value, str):
        try:
            ms: int | None = datetime_to_ms(value) if len(value) >= 10 and value[4] == "-" else None
        except ValueError:
            ms = None
        return value, ms, None
    return None


def execution_info(row: Mapping[str, Any]) -> dict[str, Any]:
    """What ``list`` returns for one execution: a JSON-ready, WorkflowExecutionInfo-like dict."""
    duration = row["execution_duration"]
    return {
        "workflow_id": row["workflow_id"],
        "run_id": row["run_id"],
        "workflow_type": row["workflow_type"],
        "task_queue": row["task_queue"],
        "status": row["status"],
        "start_time": ms_to_rfc3339(row["start_time"]),
        "execution_time": ms_to_rfc3339(row["execution_time"]),
        "close_time": ms_to_rfc3339(row["close_time"]),
        "execution_duration_ms": None if duration is None else duration // 1_000_000,
        "history_length": row["history_length"],
        "first_run_id": row["first_run_id"],
        "memo": json.loads(row["memo"]),
        "search_attributes": json.loads(row["search_attributes"]),
    }
