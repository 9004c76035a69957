"""A real engine (EngineService on the session broker) and a frontend over it, shared per test module."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from confluent_kafka import Producer

from kronicle.engine.service import EngineService


@pytest.fixture(scope="module")
def engine_namespace_prefix() -> str:
    return "fe"


def produce(engine: EngineService, name: str, datum: dict[str, Any]) -> None:
    """Produce a command the way a worker does (murmur2 placement by workflow id)."""
    producer = Producer({"bootstrap.servers": engine.bootstrap_servers, "partitioner": "murmur2_random"})
    producer.produce(engine.topics.commands, engine.registry.encode(name, datum), datum["workflow_id"].encode())
    assert producer.flush(10) == 0


async def wait_event(engine: EngineService, workflow_id: str, event_type: str, timeout: float = 20) -> dict[str, Any]:
    """The first event of ``event_type`` in the workflow's current run, waiting for it to be written."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        events = engine.read_history(workflow_id)
        for event in events:
            if event["event_type"] == event_type:
                return event
        assert loop.time() < deadline, f"no {event_type} in {[e['event_type'] for e in events]}"
        await engine.wait_for_change(workflow_id, 0.5)


async def complete_task(engine: EngineService, workflow_id: str, *commands: dict[str, Any]) -> None:
    """Act as the workflow worker: answer the run's outstanding workflow task with ``commands``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while True:
        run = engine.describe(workflow_id)
        if run is not None and run.get("wft"):
            break
        assert loop.time() < deadline, f"no outstanding workflow task for {workflow_id}: {run}"
        await engine.wait_for_change(workflow_id, 0.5)
    wft = run["wft"]
    produce(
        engine,
        "kronicle.workflow.CompleteWorkflowTask",
        {
            "workflow_id": workflow_id,
            "run_id": run["run_id"],
            "scheduled_event_id": wft["scheduled_event_id"],
            "attempt": wft["attempt"],
            "commands": list(commands),
        },
    )


def complete_command(result: list[bytes]) -> dict[str, Any]:
    return {
        "command_type": "CompleteWorkflowExecution",
        "complete_workflow_execution_command_attributes": {"result": result},
    }
