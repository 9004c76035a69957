"""The history batch record is built from the events already encoded for the store: same bytes as encoding it."""

from __future__ import annotations

from typing import Any

from kronicle.schemas import default_registry

EVENT = "kronicle.workflow.HistoryEvent"
BATCH = "kronicle.workflow.HistoryEventBatch"


def _events() -> list[dict[str, Any]]:
    return [
        {
            "event_id": 1,
            "event_time": 1_700_000_000_000,
            "event_type": "WorkflowExecutionStarted",
            "workflow_execution_started_event_attributes": {"workflow_type": "W", "task_queue": "q", "input": [b"x"]},
        },
        {
            "event_id": 2,
            "event_time": 1_700_000_000_001,
            "event_type": "WorkflowTaskScheduled",
            "workflow_task_scheduled_event_attributes": {"task_queue": "q", "start_to_close_timeout_ms": 10_000},
        },
        {
            "event_id": 300,
            "event_time": 1_700_000_000_002,
            "event_type": "ActivityTaskScheduled",
            "version": 7,
            "activity_task_scheduled_event_attributes": {
                "activity_id": "1",
                "activity_type": "échange",
                "input": [b"\x00" * 200],
                "retry_policy": {"maximum_attempts": 3},
            },
        },
    ]


def test_batch_bytes_joined_from_stored_events_equal_the_encoders() -> None:
    registry = default_registry()
    encode = registry.encode
    for workflow_id, run_id, events in [
        ("wf-1", "run-1", _events()),
        ("ワークフロー" * 30, "r" * 200, _events()[1:]),
        ("wf-2", "", _events()[:1]),
    ]:
        encoded = [encode(EVENT, e) for e in events]
        expected = encode(BATCH, {"workflow_id": workflow_id, "run_id": run_id, "events": events})
        for _ in range(2):  # the first use checks the shortcut, later ones take it
            joined = registry.encode_with_items(
                BATCH, {"workflow_id": workflow_id, "run_id": run_id}, "events", encoded
            )
            assert joined == expected
