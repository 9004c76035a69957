"""The history batch record is built from the events already encoded for the store: same bytes as encoding it."""

from __future__ import annotations

from typing import Any

from kronicle.engine.workflow import _tx
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


def test_batch_bytes_equal_the_encoders_on_first_and_later_use() -> None:
    encode = default_registry().encode
    for workflow_id, run_id, events in [
        ("wf-1", "run-1", _events()),
        ("ワークフロー" * 30, "r" * 200, _events()[1:]),
        ("wf-2", "", _events()[:1]),
    ]:
        encoded = [encode(EVENT, e) for e in events]
        expected = encode(BATCH, {"workflow_id": workflow_id, "run_id": run_id, "events": events})
        assert _tx._history_batch(encode, workflow_id, run_id, events, encoded) == expected
    assert _tx._batch_headers[encode] is not None


def test_an_encoder_whose_batch_differs_falls_back_to_encoding_the_batch() -> None:
    real = default_registry().encode

    def odd(name: str, datum: Any) -> bytes:
        out = real(name, datum)
        return out + b"!" if name == BATCH else out  # a batch that is not header + items

    events = _events()
    encoded = [odd(EVENT, e) for e in events]
    for _ in range(2):
        assert _tx._history_batch(odd, "wf", "run", events, encoded) == odd(
            BATCH, {"workflow_id": "wf", "run_id": "run", "events": events}
        )
    assert _tx._batch_headers[odd] is None


def test_avro_long_matches_zigzag_varint() -> None:
    assert _tx._avro_long(0) == b"\x00"
    assert _tx._avro_long(-1) == b"\x01"
    assert _tx._avro_long(1) == b"\x02"
    assert _tx._avro_long(64) == b"\x80\x01"
    assert _tx._avro_long(2**40) == bytes([0x80, 0x80, 0x80, 0x80, 0x80, 0x40])
