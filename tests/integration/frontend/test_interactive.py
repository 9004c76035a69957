"""Queries and updates through the frontend, answered by a real Worker, on a real engine and broker."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from kronicle import workflow
from kronicle.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from kronicle.connectors.frontend import Frontend
from kronicle.engine.service import EngineService
from kronicle.exceptions import ApplicationError, RPCError, RPCStatusCode
from kronicle.worker import Worker
from tests.integration.conftest import new_id
from tests.integration.frontend.test_api import assert_error, call, wf
from tests.integration.frontend.test_cli import cli

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(90)]


@workflow.defn(name="Counter")
class Counter:
    def __init__(self) -> None:
        self.value = 0
        self.done = False
        self.released = False

    @workflow.run
    async def run(self, start: int) -> int:
        self.value = start
        await workflow.wait_condition(lambda: self.done)
        return self.value

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.query
    def current(self) -> int:
        return self.value

    @workflow.query
    def broken(self) -> int:
        raise ValueError("no can do")

    @workflow.update
    async def add(self, n: int) -> int:
        self.value += n
        return self.value

    @add.validator
    def check_add(self, n: int) -> None:
        if n < 0:
            raise ValueError("n must not be negative")

    @workflow.update
    async def explode(self) -> None:
        raise ApplicationError("the handler gave up", type="Gave")

    @workflow.update
    async def add_later(self, n: int) -> int:
        await workflow.wait_condition(lambda: self.released)
        self.value += n
        return self.value


@pytest.fixture(scope="module")
def queue(engine: EngineService) -> str:
    name = f"iq{uuid.uuid4().hex[:8]}"
    engine.ensure_task_queue(name)
    return name


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def worker(client: Client, queue: str) -> AsyncIterator[Worker]:
    async with Worker(client, task_queue=queue, workflows=[Counter]) as running:
        yield running


async def started(client: Client, queue: str, value: int = 5) -> WorkflowHandle[Any]:
    handle = await client.start_workflow(Counter.run, value, id=new_id("ctr"), task_queue=queue)
    # The worker answers queries by replaying history: wait until the first workflow task ran.
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        events = (await handle.fetch_history()).events
        if any(e["event_type"] == "WorkflowTaskCompleted" for e in events):
            return handle
        assert asyncio.get_running_loop().time() < deadline, [e["event_type"] for e in events]
        await asyncio.sleep(0.1)


# -- queries ----------------------------------------------------------------------


async def test_query_of_a_running_workflow_answers_its_state(client: Client, queue: str, worker: Worker) -> None:
    handle = await started(client, queue, 7)
    assert await handle.query(Counter.current) == 7
    assert await handle.query("current") == 7  # by name


async def test_a_query_right_after_the_start_waits_for_the_first_workflow_task(
    client: Client, queue: str, worker: Worker
) -> None:
    handle = await client.start_workflow(Counter.run, 9, id=new_id("early"), task_queue=queue)
    assert await handle.query(Counter.current) == 9


async def test_query_of_a_closed_workflow_is_answered_by_replay(client: Client, queue: str, worker: Worker) -> None:
    handle = await started(client, queue, 3)
    await handle.signal(Counter.finish)
    assert await asyncio.wait_for(handle.result(), 30) == 3
    assert await handle.query(Counter.current) == 3


async def test_a_failing_query_raises_query_failed(client: Client, queue: str, worker: Worker) -> None:
    handle = await started(client, queue)
    with pytest.raises(WorkflowQueryFailedError, match="no can do") as info:
        await handle.query(Counter.broken)
    assert isinstance(info.value.__cause__, ApplicationError)
    with pytest.raises(WorkflowQueryFailedError):
        await handle.query("no_such_query")


async def test_query_http_contract(
    frontend: Frontend, engine: EngineService, client: Client, queue: str, worker: Worker
) -> None:
    handle = await started(client, queue, 11)
    status, body = await call(frontend, "POST", wf(engine, handle.id, "/query/current"), {})
    assert status == 200 and body["workflow_id"] == handle.id and body["run_id"]
    assert len(body["result"]) == 1 and "data" in body["result"][0]
    status, body = await call(frontend, "POST", wf(engine, handle.id, "/query/broken"), {})
    assert_error(status, body, 400, "QueryFailed")
    assert body["details"]["failure"]["message"] == "no can do"
    status, body = await call(frontend, "POST", wf(engine, new_id(), "/query/current"), {})
    assert_error(status, body, 404, "WorkflowNotFound")
    status, body = await call(frontend, "POST", wf(engine, handle.id, "/query/current"), {"timeout_ms": -1})
    assert_error(status, body, 400, "InvalidArgument", "timeout_ms")


async def test_a_query_nobody_answers_times_out(frontend: Frontend, engine: EngineService, client: Client) -> None:
    # A queue without a worker: the engine forwards the query, nobody answers.
    handle = await client.start_workflow("Counter", 1, id=new_id(), task_queue=f"nobody{uuid.uuid4().hex[:6]}")
    status, body = await call(frontend, "POST", wf(engine, handle.id, "/query/current"), {"timeout_ms": 800})
    assert_error(status, body, 504, "QueryTimeout")
    with pytest.raises(RPCError) as info:
        await handle.query("current", rpc_timeout=timedelta(milliseconds=800))
    assert info.value.status == RPCStatusCode.DEADLINE_EXCEEDED and info.value.code == "QueryTimeout"


# -- updates ----------------------------------------------------------------------


async def test_execute_update_returns_the_handlers_result(client: Client, queue: str, worker: Worker) -> None:
    handle = await started(client, queue, 10)
    assert await handle.execute_update(Counter.add, 5) == 15
    assert await handle.query(Counter.current) == 15
    history = await handle.fetch_history()
    types = [e["event_type"] for e in history.events]
    assert "WorkflowExecutionUpdateAccepted" in types and "WorkflowExecutionUpdateCompleted" in types


async def test_a_rejected_update_raises_update_failed_with_the_validators_error(
    client: Client, queue: str, worker: Worker
) -> None:
    handle = await started(client, queue, 10)
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(Counter.add, -1)
    assert isinstance(info.value.cause, ApplicationError) and "must not be negative" in str(info.value.cause)
    assert await handle.query(Counter.current) == 10  # nothing changed


async def test_an_update_whose_handler_raises_completes_with_the_failure(
    client: Client, queue: str, worker: Worker
) -> None:
    handle = await started(client, queue)
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(Counter.explode)
    assert isinstance(info.value.cause, ApplicationError) and info.value.cause.type == "Gave"


async def test_start_update_returns_at_accepted_and_the_handle_waits_for_completion(
    client: Client, queue: str, worker: Worker
) -> None:
    handle = await started(client, queue, 1)
    update = await handle.start_update(Counter.add_later, 4, wait_for_stage=WorkflowUpdateStage.ACCEPTED, id="later-1")
    assert update.id == "later-1" and update.workflow_id == handle.id
    waiting = asyncio.create_task(update.result())
    await asyncio.sleep(0.5)
    assert not waiting.done()
    await handle.signal(Counter.release)
    assert await asyncio.wait_for(waiting, 30) == 5
    # A handle made later from the id, and a retry with the same id, see the same outcome.
    assert await handle.get_update_handle("later-1", result_type=int).result() == 5
    assert await handle.execute_update(Counter.add_later, 4, id="later-1") == 5
    assert await handle.query(Counter.current) == 5  # applied once


async def test_update_http_contract(
    frontend: Frontend, engine: EngineService, client: Client, queue: str, worker: Worker
) -> None:
    handle = await started(client, queue, 2)
    one = (await client.data_converter.encode([1]))[0].to_dict()
    minus = (await client.data_converter.encode([-1]))[0].to_dict()
    status, body = await call(
        frontend, "POST", wf(engine, handle.id, "/update/add"), {"update_id": "u-1", "input": [one]}
    )
    assert status == 200 and body["stage"] == "COMPLETED" and body["update_id"] == "u-1" and body["result"]
    status, body = await call(frontend, "GET", wf(engine, handle.id, "/updates/u-1"))
    assert status == 200 and body["stage"] == "COMPLETED" and body["result"]
    status, body = await call(frontend, "POST", wf(engine, handle.id, "/update/add"), {"input": [minus]})
    assert_error(status, body, 400, "UpdateRejected")
    assert "must not be negative" in body["details"]["failure"]["message"]
    status, body = await call(
        frontend, "POST", wf(engine, handle.id, "/update/add_later"), {"input": [one], "wait_for_stage": "ACCEPTED"}
    )
    assert status == 200 and body["stage"] == "ACCEPTED" and "result" not in body
    status, polled = await call(frontend, "GET", wf(engine, handle.id, f"/updates/{body['update_id']}"), wait="0.2")
    assert status == 200 and polled["stage"] == "ACCEPTED"
    status, body = await call(frontend, "GET", wf(engine, handle.id, "/updates/never-sent"))
    assert_error(status, body, 404, "UpdateNotFound")
    status, body = await call(frontend, "POST", wf(engine, handle.id, "/update/add"), {"wait_for_stage": "SOON"})
    assert_error(status, body, 400, "InvalidArgument", "wait_for_stage")
    status, body = await call(frontend, "POST", wf(engine, new_id(), "/update/add"), {"input": [one]})
    assert_error(status, body, 404, "WorkflowNotFound")


async def test_a_rejected_update_can_be_polled_afterwards_and_answers_the_rejection(
    frontend: Frontend, engine: EngineService, client: Client, queue: str, worker: Worker
) -> None:
    handle = await started(client, queue, 2)
    minus = (await client.data_converter.encode([-1]))[0].to_dict()
    status, body = await call(
        frontend, "POST", wf(engine, handle.id, "/update/add"), {"update_id": "bad-1", "input": [minus]}
    )
    assert_error(status, body, 400, "UpdateRejected")
    run_id = body["details"]["run_id"]
    for params in ({}, {"run_id": run_id}, {"wait": "1", "wait_for_stage": "ACCEPTED"}):
        status, polled = await call(frontend, "GET", wf(engine, handle.id, "/updates/bad-1"), **params)
        assert_error(status, polled, 400, "UpdateRejected")
        assert "must not be negative" in polled["details"]["failure"]["message"]
        assert polled["details"]["run_id"] == run_id and polled["details"]["update_id"] == "bad-1"
    # The client's handle on it raises what execute_update raised.
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.get_update_handle("bad-1").result()
    assert isinstance(info.value.cause, ApplicationError) and "must not be negative" in str(info.value.cause)
    # The same id sent again is a new request (the validator runs again), as in Temporal.
    assert await handle.execute_update(Counter.add, 3, id="bad-1") == 5
    status, polled = await call(frontend, "GET", wf(engine, handle.id, "/updates/bad-1"))
    assert status == 200 and polled["stage"] == "COMPLETED"


async def test_a_poll_right_after_an_update_answer_sees_that_answer_even_if_the_store_lags(
    frontend: Frontend, engine: EngineService, client: Client, queue: str, worker: Worker, monkeypatch: Any
) -> None:
    # The reply is visible once the engine's transaction commits; the engine's store has the change
    # a moment later. Widen that moment: each commit reaches the store 0.3 s after it is visible.
    handle = await started(client, queue, 2)
    store = engine.processor.store
    apply = store.apply

    def late_apply(*args: Any, **kwargs: Any) -> None:
        time.sleep(0.3)
        apply(*args, **kwargs)

    monkeypatch.setattr(store, "apply", late_apply)
    one = (await client.data_converter.encode([1]))[0].to_dict()
    minus = (await client.data_converter.encode([-1]))[0].to_dict()
    status, body = await call(
        frontend, "POST", wf(engine, handle.id, "/update/add"), {"update_id": "late-bad", "input": [minus]}
    )
    assert_error(status, body, 400, "UpdateRejected")
    status, polled = await call(frontend, "GET", wf(engine, handle.id, "/updates/late-bad"), wait="0")
    assert_error(status, polled, 400, "UpdateRejected")
    status, body = await call(
        frontend, "POST", wf(engine, handle.id, "/update/add"), {"update_id": "late-ok", "input": [one]}
    )
    assert status == 200 and body["stage"] == "COMPLETED"
    status, polled = await call(frontend, "GET", wf(engine, handle.id, "/updates/late-ok"), wait="0")
    assert status == 200 and polled["stage"] == "COMPLETED", polled
    status, body = await call(
        frontend,
        "POST",
        wf(engine, handle.id, "/update/add_later"),
        {"update_id": "late-acc", "input": [one], "wait_for_stage": "ACCEPTED"},
    )
    assert status == 200 and body["stage"] == "ACCEPTED"
    status, polled = await call(
        frontend, "GET", wf(engine, handle.id, "/updates/late-acc"), wait="0", wait_for_stage="ACCEPTED"
    )
    assert status == 200 and polled["stage"] == "ACCEPTED", polled


async def test_an_update_left_in_flight_is_aborted_when_the_run_closes(
    frontend: Frontend, engine: EngineService, client: Client, queue: str, worker: Worker
) -> None:
    handle = await started(client, queue, 2)
    update = await handle.start_update(Counter.add_later, 1)
    await handle.terminate(reason="enough")
    with pytest.raises(RPCError) as info:
        await update.result()
    assert info.value.status == RPCStatusCode.NOT_FOUND
    # Updating a closed workflow is refused at once.
    with pytest.raises(RPCError) as info:
        await handle.execute_update(Counter.add, 1)
    assert info.value.status == RPCStatusCode.NOT_FOUND


async def test_an_update_with_no_worker_answers_admitted_and_can_be_polled(
    frontend: Frontend, engine: EngineService, client: Client
) -> None:
    handle = await client.start_workflow("Counter", 1, id=new_id(), task_queue=f"nobody{uuid.uuid4().hex[:6]}")
    status, body = await call(frontend, "POST", wf(engine, handle.id, "/update/add"), {"timeout_ms": 500})
    assert status == 200 and body["stage"] == "ADMITTED"
    status, polled = await call(frontend, "GET", wf(engine, handle.id, f"/updates/{body['update_id']}"))
    assert status == 200 and polled["stage"] == "ADMITTED"


async def test_cli_query_and_update(
    frontend: Frontend, engine: EngineService, client: Client, queue: str, worker: Worker
) -> None:
    handle = await started(client, queue, 4)
    out = await cli(frontend, engine, "query", "-w", handle.id, "--name", "current")
    assert out.exit_code == 0 and "Query result: 4" in out.stdout, out.output
    out = await cli(frontend, engine, "update", "-w", handle.id, "--name", "add", "-i", "3", "-o", "json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["result"] == 7 and json.loads(out.stdout)["stage"] == "COMPLETED"
    out = await cli(frontend, engine, "update", "-w", handle.id, "--name", "add", "-i", "-5")
    assert out.exit_code == 1 and "must not be negative" in out.output
    out = await cli(frontend, engine, "query", "-w", handle.id, "--name", "broken")
    assert out.exit_code == 1 and "no can do" in out.output
    out = await cli(
        frontend, engine, "update", "-w", handle.id, "--name", "add_later", "-i", "1", "--wait-for-stage", "accepted"
    )
    assert out.exit_code == 0 and "accepted" in out.stdout, out.output


async def test_an_update_waiting_when_the_run_closes_answers_409_aborted(
    frontend: Frontend, engine: EngineService, client: Client, queue: str, worker: Worker
) -> None:
    handle = await started(client, queue, 2)
    one = (await client.data_converter.encode([1]))[0].to_dict()
    waiting = asyncio.create_task(
        call(frontend, "POST", wf(engine, handle.id, "/update/add_later"), {"input": [one], "timeout_ms": 30000})
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not any(e["event_type"] == "WorkflowExecutionUpdateAccepted" for e in engine.read_history(handle.id)):
        assert loop.time() < deadline
        await engine.wait_for_change(handle.id, 0.5)
    await handle.terminate(reason="closing")
    status, body = await asyncio.wait_for(waiting, 20)
    assert_error(status, body, 409, "UpdateAborted")
    assert "TERMINATED" in body["details"]["failure"]["message"]


async def test_too_many_updates_in_flight_is_429_and_big_inputs_are_413(
    frontend: Frontend, engine: EngineService, client: Client
) -> None:
    handle = await client.start_workflow("Counter", 1, id=new_id(), task_queue=f"nobody{uuid.uuid4().hex[:6]}")
    for i in range(10):  # the engine's max_pending_updates
        status, body = await call(
            frontend, "POST", wf(engine, handle.id, "/update/add"), {"update_id": f"u{i}", "timeout_ms": 100}
        )
        assert status == 200 and body["stage"] == "ADMITTED", body
    # Time enough for the engine's verdict even on a loaded machine (after 100 ms the frontend would
    # answer with the stage it can see, ADMITTED).
    status, body = await call(frontend, "POST", wf(engine, handle.id, "/update/add"), {"timeout_ms": 10_000})
    assert_error(status, body, 429, "ResourceExhausted")
    huge = {"metadata": {}, "data": "A" * (3 * 1024 * 1024)}
    for suffix in ("/update/add", "/query/current"):
        status, body = await call(frontend, "POST", wf(engine, handle.id, suffix), {"input": [huge]})
        assert_error(status, body, 413, "PayloadTooLarge")
