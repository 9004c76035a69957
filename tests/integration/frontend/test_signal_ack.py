"""When a signal call answers: once the signal is durably in the log (an open run), or once the engine applied it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from kronicle.connectors.frontend import Frontend
from kronicle.engine.service import EngineService
from tests.integration.conftest import new_id
from tests.integration.frontend.conftest import complete_task, wait_event
from tests.integration.frontend.test_api import HELLO, assert_error, call, start, wf

pytestmark = pytest.mark.asyncio(loop_scope="module")


class _EveryRunLooksOpen:
    """The engine's read side, except that every workflow looks like an open run.

    Stands for the moment the fast path is exposed to: the frontend read an open run,
    and the run closes (here: never existed) before the engine applies the signal.
    """

    def __init__(self, engine: EngineService) -> None:
        self._engine = engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def describe(self, workflow_id: str, run_id: str = "") -> dict[str, Any] | None:
        return {"workflow_id": workflow_id, "run_id": run_id or "looks-open", "status": "RUNNING"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fooled(engine: EngineService) -> AsyncIterator[Frontend]:
    server = Frontend(_EveryRunLooksOpen(engine), port=0)  # type: ignore[arg-type]
    await server.start()
    yield server
    await server.stop()


def _signaled(engine: EngineService, workflow_id: str) -> list[str]:
    return [
        e["workflow_execution_signaled_event_attributes"]["request_id"]
        for e in engine.read_history(workflow_id)
        if e["event_type"] == "WorkflowExecutionSignaled"
    ]


async def test_an_open_runs_signal_is_answered_before_the_engine_applies_it(
    fooled: Frontend, frontend: Frontend, engine: EngineService
) -> None:
    workflow_id = new_id()
    status, body = await call(fooled, "POST", wf(engine, workflow_id, "/signal/approve"), {"request_id": "s1"})
    # The engine rejects this signal (no such workflow): a 200 shows the call did not wait for it.
    assert status == 200, body
    assert body == {"workflow_id": workflow_id, "run_id": "looks-open"}
    # Waiting for the engine's answer to a later signal (same partition, later offset) means
    # the first one was read and rejected: it created nothing.
    status, body = await call(
        frontend, "POST", wf(engine, workflow_id, "/signal/approve"), {"request_id": "s2"}, wait_applied="true"
    )
    assert_error(status, body, 404, "WorkflowNotFound")
    assert engine.describe(workflow_id) is None


async def test_signals_answered_from_the_log_are_applied_once_each_in_order(
    frontend: Frontend, engine: EngineService
) -> None:
    workflow_id = new_id()
    await start(frontend, engine, workflow_id)
    for request_id in ("a", "a", "b", "a", "c"):
        status, body = await call(
            frontend, "POST", wf(engine, workflow_id, "/signal/approve"), {"input": [HELLO], "request_id": request_id}
        )
        assert status == 200, body
        assert body["run_id"] == engine.describe(workflow_id)["run_id"]  # type: ignore[index]
    await complete_task(engine, workflow_id)  # the signals were buffered behind the first task
    await wait_event(engine, workflow_id, "WorkflowTaskCompleted")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while len(_signaled(engine, workflow_id)) < 3 and loop.time() < deadline:
        await engine.wait_for_change(workflow_id, 0.5)
    assert _signaled(engine, workflow_id) == ["a", "b", "c"]


async def test_wait_applied_answers_after_the_engine_applied_the_signal(
    frontend: Frontend, engine: EngineService
) -> None:
    workflow_id = new_id()
    await start(frontend, engine, workflow_id)
    for n in (1, 2):
        status, body = await call(
            frontend, "POST", wf(engine, workflow_id, "/signal/approve"), {"request_id": f"w{n}"}, wait_applied="true"
        )
        assert status == 200, body
        assert engine.describe(workflow_id)["signal_count"] == n  # type: ignore[index]


async def test_a_retried_signal_is_still_accepted_after_the_run_closed(
    frontend: Frontend, engine: EngineService
) -> None:
    workflow_id = new_id()
    await start(frontend, engine, workflow_id)
    await complete_task(engine, workflow_id)  # no task out: the signal goes straight to history
    await wait_event(engine, workflow_id, "WorkflowTaskCompleted")
    status, _ = await call(frontend, "POST", wf(engine, workflow_id, "/signal/approve"), {"request_id": "once"})
    assert status == 200
    status, body = await call(frontend, "POST", wf(engine, workflow_id, "/terminate"), {"reason": "done"})
    assert status == 200, body
    # The frontend waits up to 2 s for its store to show the terminate; on a loaded machine, wait on.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while engine.describe(workflow_id)["status"] == "RUNNING" and loop.time() < deadline:  # type: ignore[index]
        await engine.wait_for_change(workflow_id, 0.5)
    # The first attempt was applied before the run closed: a retry of it succeeds (the engine
    # remembers its request id), while a new signal is refused.
    status, body = await call(frontend, "POST", wf(engine, workflow_id, "/signal/approve"), {"request_id": "once"})
    assert status == 200, body
    status, body = await call(frontend, "POST", wf(engine, workflow_id, "/signal/approve"), {"request_id": "new"})
    assert_error(status, body, 404, "WorkflowNotFound")
    assert body["details"]["closed"] is True
    assert _signaled(engine, workflow_id) == ["once"]


async def test_wait_applied_must_be_a_boolean(frontend: Frontend, engine: EngineService) -> None:
    status, body = await call(frontend, "POST", wf(engine, new_id(), "/signal/approve"), {}, wait_applied="sometimes")
    assert_error(status, body, 400, "InvalidArgument", "wait_applied")
