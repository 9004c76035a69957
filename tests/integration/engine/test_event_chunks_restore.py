"""History events are stored and changelogged one chunk per command, and a wiped store restores them whole."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from kronicle.engine.service import EngineService
from kronicle.state.changelog import decode_changelog_key
from tests.kafka_helpers import drain


def _send(engine: EngineService, name: str, datum: dict[str, Any]) -> None:
    producer = Producer({"bootstrap.servers": engine.bootstrap_servers, "partitioner": "murmur2_random"})
    producer.produce(engine.topics.commands, engine.registry.encode(name, datum), datum["workflow_id"].encode())
    assert producer.flush(10) == 0


async def _wait_events(engine: EngineService, workflow_id: str, count: int, timeout: float = 30) -> list[Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        events = engine.read_history(workflow_id)
        if len(events) >= count:
            return events
        assert loop.time() < deadline, f"{workflow_id}: {[e['event_type'] for e in events]}"
        await engine.wait_for_change(workflow_id, 1.0)


def _complete_task(engine: EngineService, run_id: str, scheduled: int, commands: list[dict[str, Any]]) -> None:
    datum = {"workflow_id": "wf", "run_id": run_id, "scheduled_event_id": scheduled, "attempt": 1}
    _send(engine, "kronicle.workflow.CompleteWorkflowTask", {**datum, "commands": commands})


async def test_a_wiped_store_restores_a_runs_full_history_from_chunked_changelog_records(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    namespace = f"chunks{uuid.uuid4().hex[:8]}"
    state_dir = tmp_path / "state"
    engine = EngineService(kafka_bootstrap, namespace, state_dir=state_dir, partitions=1)
    engine.start()
    try:
        start = {"workflow_id": "wf", "workflow_type": "OneActivity", "task_queue": "q", "request_id": "r1"}
        _send(engine, "kronicle.workflow.StartWorkflow", start)
        await _wait_events(engine, "wf", 2)
        state = engine.describe("wf")
        assert state is not None
        run_id = state["run_id"]
        schedule = {
            "activity_id": "1",
            "activity_type": "echo",
            "task_queue": "q",
            "input": [b"x"],
            "start_to_close_timeout_ms": 30_000,
        }
        _complete_task(
            engine,
            run_id,
            2,
            [{"command_type": "ScheduleActivityTask", "schedule_activity_task_command_attributes": schedule}],
        )
        await _wait_events(engine, "wf", 5)
        attempt = {"workflow_id": "wf", "run_id": run_id, "scheduled_event_id": 5, "attempt": 1}
        _send(engine, "kronicle.workflow.CompleteActivityTask", {**attempt, "result": [b"y"]})
        await _wait_events(engine, "wf", 8)
        complete = {"command_type": "CompleteWorkflowExecution"}
        _complete_task(engine, run_id, 8, [{**complete, "complete_workflow_execution_command_attributes": {}}])
        before = await _wait_events(engine, "wf", 11)
    finally:
        engine.stop()
    assert engine.failure is None
    assert [e["event_id"] for e in before] == list(range(1, 12))
    assert before[-1]["event_type"] == "WorkflowExecutionCompleted"

    # The changelog holds one wf_events record per command (4), not one per event (11),
    # and the events of each are those of the command's history batch, in order.
    changelog = drain(kafka_bootstrap, engine.topics.changelog)
    event_keys = [key for cf, key in (decode_changelog_key(m.key()) for m in changelog) if cf == "wf_events"]  # type: ignore[arg-type]
    batches = [engine.registry.decode(m.value())[1] for m in drain(kafka_bootstrap, engine.topics.history)]  # type: ignore[arg-type]
    assert [b["events"][0]["event_id"] for b in batches] == [1, 3, 6, 9]
    assert event_keys == [run_id.encode() + i.to_bytes(8, "big") for i in (1, 3, 6, 9)]
    assert [e for b in batches for e in b["events"]] == before

    # A new engine on a wiped state directory restores from the changelog and reads the same history.
    shutil.rmtree(state_dir)
    again = EngineService(kafka_bootstrap, namespace, state_dir=state_dir, partitions=1)
    again.start()
    try:
        restored = await _wait_events(again, "wf", 11)
        assert restored == before
        # Pages that start inside a chunk find it.
        assert again.read_history("wf", first_event_id=7, max_events=3) == before[6:9]
        assert again.read_history("wf", first_event_id=12) == []
        assert again.describe("wf")["status"] == "COMPLETED"  # type: ignore[index]
    finally:
        again.stop()
    assert again.failure is None
