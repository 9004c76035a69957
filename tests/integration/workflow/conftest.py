"""The whole stack on the session broker: engine, frontend, Client and Worker, for workflow-semantics tests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kronicle.engine.service import EngineService
from kronicle.engine.workflow import WorkflowOptions

PAYLOAD_LIMIT = 64 * 1024
"""A small payload limit, so the limit tests need no megabytes."""


@pytest.fixture(scope="module")
def engine_namespace_prefix() -> str:
    return "sem"


@pytest.fixture(scope="module")
def engine_options() -> WorkflowOptions:
    return WorkflowOptions(max_payload_bytes=PAYLOAD_LIMIT)


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
