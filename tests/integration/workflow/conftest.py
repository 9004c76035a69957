"""The whole stack on the session broker: engine, frontend, Client and Worker, for workflow-semantics tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from kronicle.client import Client
from kronicle.connectors.frontend import Frontend
from kronicle.engine.service import EngineService
from kronicle.engine.workflow import WorkflowOptions

PAYLOAD_LIMIT = 64 * 1024
"""A small payload limit, so the limit tests need no megabytes."""


@pytest.fixture(scope="module")
def engine(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineService]:
    service = EngineService(
        kafka_bootstrap,
        f"sem{uuid.uuid4().hex[:8]}",
        state_dir=tmp_path_factory.mktemp("engine"),
        partitions=2,
        options=WorkflowOptions(max_payload_bytes=PAYLOAD_LIMIT),
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


async def wait_until(engine: EngineService, workflow_id: str, done: Any, timeout: float = 30) -> dict[str, Any]:
    """Wait until ``done(describe(workflow_id))`` is true; returns that state."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        run = engine.describe(workflow_id)
        if run is not None and done(run):
            return run
        summary = run and {k: run.get(k) for k in ("status", "next_event_id", "wft", "wft_attempt", "wft_backoff")}
        assert loop.time() < deadline, f"{workflow_id} did not get there: {summary}"
        await engine.wait_for_change(workflow_id, 0.5)


def assert_history_invariants(events: list[dict[str, Any]]) -> None:
    """Dense ids from 1 and non-decreasing event times."""
    assert [e["event_id"] for e in events] == list(range(1, len(events) + 1))
    times = [e["event_time"] for e in events]
    assert times == sorted(times)
