"""The workflow engine as a service on a real broker: commands in, history and tasks out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from kronicle.engine.service import EngineService, NotServingError
from tests.kafka_helpers import drain


@pytest.fixture
def engine(kafka_bootstrap: str, tmp_path: Path) -> Iterator[EngineService]:
    service = EngineService(kafka_bootstrap, f"svc{uuid.uuid4().hex[:8]}", state_dir=tmp_path / "state", partitions=2)
    service.start()
    yield service
    service.stop()
    assert service.failure is None


def send(engine: EngineService, name: str, datum: dict[str, Any]) -> None:
    producer = Producer({"bootstrap.servers": engine.bootstrap_servers, "partitioner": "murmur2_random"})
    producer.produce(engine.topics.commands, engine.registry.encode(name, datum), datum["workflow_id"].encode())
    assert producer.flush(10) == 0


def start(engine: EngineService, workflow_id: str, queue: str) -> None:
    send(
        engine,
        "kronicle.workflow.StartWorkflow",
        {"workflow_id": workflow_id, "workflow_type": "Greeter", "task_queue": queue, "request_id": "r1"},
    )


async def wait_history(engine: EngineService, workflow_id: str, event_type: str, timeout: float = 20) -> list[Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        events = engine.read_history(workflow_id)
        if any(e["event_type"] == event_type for e in events):
            return events
        assert loop.time() < deadline, f"no {event_type} in {[e['event_type'] for e in events]}"
        await engine.wait_for_change(workflow_id, 1.0)


async def test_a_started_workflow_has_history_and_a_task_on_its_queue(engine: EngineService) -> None:
    queue = f"q{uuid.uuid4().hex[:6]}"
    start(engine, "wf-1", queue)
    events = await wait_history(engine, "wf-1", "WorkflowTaskScheduled")
    assert [e["event_type"] for e in events] == ["WorkflowExecutionStarted", "WorkflowTaskScheduled"]
    assert engine.describe("wf-1")["status"] == "RUNNING"  # type: ignore[index]
    # The task queue's topics did not exist: the engine created them to dispatch the task.
    tasks = drain(engine.bootstrap_servers, engine.topics.task_queue(queue, "workflow"), expect=1)
    name, task = engine.registry.decode(tasks[0].value())  # type: ignore[arg-type]
    assert name == "kronicle.workflow.WorkflowTask"
    assert (task["workflow_id"], task["scheduled_event_id"]) == ("wf-1", 2)


async def test_completing_the_workflow_task_closes_the_run_and_wakes_waiters(engine: EngineService) -> None:
    start(engine, "wf-2", "q2")
    await wait_history(engine, "wf-2", "WorkflowTaskScheduled")
    state = engine.describe("wf-2")
    assert state is not None
    run_id = state["run_id"]
    waiter = asyncio.create_task(engine.wait_for_change("wf-2", 20))
    send(
        engine,
        "kronicle.workflow.CompleteWorkflowTask",
        {
            "workflow_id": "wf-2",
            "run_id": run_id,
            "scheduled_event_id": 2,
            "attempt": 1,
            "commands": [
                {
                    "command_type": "CompleteWorkflowExecution",
                    "complete_workflow_execution_command_attributes": {"result": [b"done"]},
                }
            ],
        },
    )
    assert await waiter
    events = await wait_history(engine, "wf-2", "WorkflowExecutionCompleted")
    assert [e["event_type"] for e in events][-3:] == [
        "WorkflowTaskStarted",
        "WorkflowTaskCompleted",
        "WorkflowExecutionCompleted",
    ]
    assert engine.describe("wf-2")["status"] == "COMPLETED"  # type: ignore[index]


async def test_unknown_workflows_read_as_none_and_waits_time_out(engine: EngineService) -> None:
    assert engine.describe("nobody") is None
    assert engine.read_history("nobody") == []
    assert await engine.wait_for_change("nobody", 0.2) is False


def test_a_stopped_engine_does_not_serve_reads(kafka_bootstrap: str, tmp_path: Path) -> None:
    service = EngineService(kafka_bootstrap, f"svc{uuid.uuid4().hex[:8]}", state_dir=tmp_path / "s", partitions=1)
    service.start()
    service.stop()
    with pytest.raises(NotServingError):
        service.describe("wf")


async def test_a_close_waiter_sleeps_through_other_commits_and_wakes_when_the_run_closes(
    engine: EngineService,
) -> None:
    closing = asyncio.create_task(engine.wait_for_close("wf-3", 20))
    changed = asyncio.create_task(engine.wait_for_change("wf-3", 20))
    await asyncio.sleep(0)  # both registered before the start is produced
    start(engine, "wf-3", "q3")
    assert await changed
    await wait_history(engine, "wf-3", "WorkflowTaskScheduled")
    assert not closing.done()  # the start committed, the run did not close
    state = engine.describe("wf-3")
    assert state is not None
    send(
        engine,
        "kronicle.workflow.CompleteWorkflowTask",
        {
            "workflow_id": "wf-3",
            "run_id": state["run_id"],
            "scheduled_event_id": 2,
            "attempt": 1,
            "commands": [
                {
                    "command_type": "CompleteWorkflowExecution",
                    "complete_workflow_execution_command_attributes": {"result": [b"done"]},
                }
            ],
        },
    )
    assert await closing
    assert engine.describe("wf-3")["status"] == "COMPLETED"  # type: ignore[index]
    assert await engine.wait_for_close("wf-3", 0.2) is False  # nothing closes it again


async def test_a_watch_registered_before_the_commands_sees_their_commits_and_only_closes_when_asked(
    engine: EngineService,
) -> None:
    with (
        engine.watch_change("wf-4") as changed,
        engine.watch_change("wf-4", closed_only=True) as closed,
    ):
        start(engine, "wf-4", "q4")
        async with asyncio.timeout(20):
            await changed.wait()
        await wait_history(engine, "wf-4", "WorkflowTaskScheduled")
        assert not closed.is_set()  # the start committed, the run did not close
        state = engine.describe("wf-4")
        assert state is not None
        send(
            engine,
            "kronicle.workflow.CompleteWorkflowTask",
            {
                "workflow_id": "wf-4",
                "run_id": state["run_id"],
                "scheduled_event_id": 2,
                "attempt": 1,
                "commands": [
                    {
                        "command_type": "CompleteWorkflowExecution",
                        "complete_workflow_execution_command_attributes": {"result": [b"done"]},
                    }
                ],
            },
        )
        async with asyncio.timeout(20):
            await closed.wait()
        # Set once the close is in the store: a read right after sees it.
        assert engine.describe("wf-4")["status"] == "COMPLETED"  # type: ignore[index]
    with engine.watch_change("wf-4", closed_only=True) as again:
        await asyncio.sleep(0.3)
        assert not again.is_set()  # a watch sees only commits after it was registered
