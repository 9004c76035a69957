"""A real engine (EngineService on the session broker) and a frontend over it, shared per test module."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from confluent_kafka import Producer

from kronicle.client import Client
from kronicle.connectors.frontend import Frontend
from kronicle.engine.service import EngineService


@pytest.fixture(scope="module")
def engine(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineService]:
    service = EngineService(
        kafka_bootstrap,
        f"fe{uuid.uuid4().hex[:8]}",
        state_dir=tmp_path_factory.mktemp("engine"),
        partitions=2,
    )
    service.start()
    yield service
    service.stop()
    assert service.failure is None


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def frontend(engine: EngineService) -> AsyncIterator[Frontend]:
    server = Frontend(engine, port=0)
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(frontend: Frontend, engine: EngineService) -> AsyncIterator[Client]:
    c = await Client.connect(frontend.url, namespace=engine.namespace)
    yield c
    await c.close()


def new_id(prefix: str = "wf") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


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
