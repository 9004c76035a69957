"""The eager-activity schema versions read every record written with the versions before them."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest

from kronicle.engine.workflow.schema_gen import SCHEMA_DIR
from kronicle.schemas import default_registry

_TASK = {"workflow_id": "wf", "run_id": "r", "scheduled_event_id": 7, "attempt": 1}
_SCHEDULE = {
    "command_type": "ScheduleActivityTask",
    "schedule_activity_task_command_attributes": {"activity_id": "1", "activity_type": "greet"},
}


def _framed(file: str, schema_id: int, datum: dict[str, Any]) -> bytes:
    """``datum`` written with the frozen schema ``file`` (an older version), in the wire format."""
    schema = fastavro.parse_schema(json.loads((SCHEMA_DIR / file).read_text(encoding="utf-8")))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, datum)
    return b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()


def test_a_v2_workflow_task_completion_reads_as_v3_without_eager_requests_or_continuations() -> None:
    data = _framed("CompleteWorkflowTask.v2.avsc", 130, {**_TASK, "commands": [_SCHEDULE]})
    decoded = default_registry().decode_as(data, "kronicle.workflow.CompleteWorkflowTask")
    assert decoded["continuations"] == []
    attrs = decoded["commands"][0]["schedule_activity_task_command_attributes"]
    assert attrs["request_eager_execution"] is False
    assert attrs["activity_id"] == "1"


def test_a_v3_completion_round_trips_its_continuations() -> None:
    registry = default_registry()
    step = {
        "activity_results": [{"activity_id": "1", "started_time_ms": 5, "result": [b"r"]}],
        "started_time_ms": 9,
        "commands": [_SCHEDULE],
    }
    data = registry.encode("kronicle.workflow.CompleteWorkflowTask", {**_TASK, "continuations": [step]})
    assert int.from_bytes(data[1:5], "big") == registry.schema_id("kronicle.workflow.CompleteWorkflowTask")
    decoded = registry.decode_as(data, "kronicle.workflow.CompleteWorkflowTask")
    assert decoded["continuations"][0]["activity_results"] == step["activity_results"]
    assert decoded["continuations"][0]["started_time_ms"] == 9


@pytest.mark.parametrize(
    ("name", "schema_id", "extra"),
    [
        ("CompleteActivityTask", 106, {"result": [b"x"]}),
        ("FailActivityTask", 107, {"failure": {"message": "boom"}}),
        ("HeartbeatActivityTask", 108, {"details": [b"d"]}),
    ],
)
def test_v1_activity_results_read_with_an_empty_activity_id(name: str, schema_id: int, extra: dict[str, Any]) -> None:
    data = _framed(f"{name}.v1.avsc", schema_id, {**_TASK, **extra})
    registry = default_registry()
    decoded = registry.decode_as(data, f"kronicle.workflow.{name}")
    assert decoded["activity_id"] == ""
    assert decoded["scheduled_event_id"] == 7
    assert registry.versions(f"kronicle.workflow.{name}") == [1, 2]
