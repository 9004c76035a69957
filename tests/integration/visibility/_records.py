"""Visibility records as the engine writes them, for tests and the benchmark."""

from __future__ import annotations

import uuid
from typing import Any

from kronicle._wire import payload_to_bytes
from kronicle.connectors.visibility import ExecutionUpdate
from kronicle.converter import DataConverter

_converter = DataConverter().payload_converter
T0 = 1_704_067_200_000
"""2024-01-01T00:00:00Z in ms."""


def attr(value: Any) -> bytes:
    """A search attribute value on the wire (a Kronicle payload)."""
    return payload_to_bytes(_converter.to_payload(value))


def record(
    workflow_id: str,
    *,
    run_id: str | None = None,
    workflow_type: str = "Greeter",
    status: str = "RUNNING",
    start: int = T0,
    close: int | None = None,
    history_length: int = 2,
    task_queue: str = "q",
    search: dict[str, Any] | None = None,
    memo: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``kronicle.workflow.VisibilityRecord`` datum."""
    return {
        "workflow_id": workflow_id,
        "run_id": run_id or str(uuid.uuid4()),
        "workflow_type": workflow_type,
        "task_queue": task_queue,
        "status": status,
        "start_time_ms": start,
        "execution_time_ms": start,
        "close_time_ms": close,
        "history_length": history_length,
        "first_run_id": run_id or "",
        "memo": {k: attr(v) for k, v in (memo or {}).items()},
        "search_attributes": {k: attr(v) for k, v in (search or {}).items()},
    }


def update(datum: dict[str, Any], seq: int, namespace: str = "default") -> ExecutionUpdate:
    return ExecutionUpdate(namespace, datum, seq)
