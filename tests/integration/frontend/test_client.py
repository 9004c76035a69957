"""The Python Client over HTTP against a real engine on a real broker (the worker is played by the test)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from kronicle import workflow
from kronicle._wire import failure_to_wire, payloads_to_bytes
from kronicle.client import (
    Client,
    WorkflowContinuedAsNewError,
    WorkflowExecutionStatus,
    WorkflowHistory,
)
from kronicle.common import RetryPolicy, WorkflowIDConflictPolicy
from kronicle.converter import DataConverter
from kronicle.engine.service import EngineService
from kronicle.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    RetryState,
    RPCError,
    RPCStatusCode,
    TerminatedError,
    WorkflowAlreadyStartedError,
    WorkflowFailureError,
)
from tests.integration.conftest import new_id
from tests.integration.frontend.conftest import complete_command, complete_task, wait_event

pytestmark = pytest.mark.asyncio(loop_scope="module")


@workflow.defn(name="Greeting")
class GreetingWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"Hello, {name}!"

    @workflow.signal
    def approve(self, who: str) -> None:
        pass

    @workflow.query
    def approved(self) -> bool:
        return True


async def result_bytes(value: object) -> list[bytes]:
    return payloads_to_bytes(await DataConverter.default.encode([value]))


async def test_connect_learns_kafka_and_checks_the_namespace(client: Client, engine: EngineService) -> None:
    assert client.kafka_bootstrap_servers == engine.bootstrap_servers
    assert client.namespace == engine.namespace and client.identity
    with pytest.raises(RPCError) as info:
        await Client.connect(client.target, namespace="elsewhere")
    assert info.value.status == RPCStatusCode.NOT_FOUND


async def test_connect_to_nothing_is_unavailable() -> None:
    with pytest.raises(RPCError) as info:
        await Client.connect("127.0.0.1:1")
    assert info.value.status == RPCStatusCode.UNAVAILABLE


async def test_start_describe_and_fetch_history(client: Client, engine: EngineService) -> None:
    workflow_id = new_id()
    handle = await client.start_workflow(
        GreetingWorkflow.run, "World", id=workflow_id, task_queue="cq", execution_timeout=timedelta(hours=1)
    )
    assert handle.id == workflow_id and handle.result_run_id
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    assert description.workflow_type == "Greeting" and description.run_id == handle.result_run_id
    assert description.start_time is not None and description.close_time is None
    history = await handle.fetch_history()
    assert [e["event_type"] for e in history.events] == ["WorkflowExecutionStarted", "WorkflowTaskScheduled"]
    started = history.events[0]["workflow_execution_started_event_attributes"]
    assert started["workflow_execution_timeout_ms"] == 3_600_000
    assert isinstance(started["input"][0], bytes)
    assert history.events == engine.read_history(workflow_id)
    assert WorkflowHistory.from_json(history.to_json()) == history
    # What the worker calls on a cache miss: the same events, payloads as raw bytes.
    assert await client.fetch_history_events(workflow_id, handle.result_run_id or "") == list(history.events)


async def test_starting_a_running_id_raises_already_started(client: Client) -> None:
    workflow_id = new_id()
    first = await client.start_workflow("Greeting", "a", id=workflow_id, task_queue="cq")
    with pytest.raises(WorkflowAlreadyStartedError) as info:
        await client.start_workflow("Greeting", "b", id=workflow_id, task_queue="cq")
    assert info.value.workflow_id == workflow_id
    same = await client.start_workflow(
        "Greeting", "c", id=workflow_id, task_queue="cq", id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING
    )
    assert same.result_run_id == first.result_run_id


async def test_result_returns_the_completed_value(client: Client, engine: EngineService) -> None:
    workflow_id = new_id()
    handle = await client.start_workflow(GreetingWorkflow.run, "World", id=workflow_id, task_queue="cq")
    waiting = asyncio.create_task(handle.result())
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await complete_task(engine, workflow_id, complete_command(await result_bytes("Hello, World!")))
    assert await asyncio.wait_for(waiting, 15) == "Hello, World!"
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_a_failed_workflow_raises_with_the_cause_chain(client: Client, engine: EngineService) -> None:
    workflow_id = new_id()
    handle = await client.start_workflow("Greeting", id=workflow_id, task_queue="cq")
    error = ActivityError(
        "activity failed",
        scheduled_event_id=5,
        started_event_id=6,
        identity="worker-1",
        activity_type="compose_greeting",
        activity_id="1",
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    error.__cause__ = ApplicationError("no greeting today", "detail", type="GreetingError", non_retryable=True)
    failure = failure_to_wire(await DataConverter.default.encode_failure(error))
    await complete_task(
        engine,
        workflow_id,
        {"command_type": "FailWorkflowExecution", "fail_workflow_execution_command_attributes": {"failure": failure}},
    )
    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(handle.result(), 20)
    cause = info.value.cause
    assert isinstance(cause, ActivityError) and cause.activity_type == "compose_greeting"
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "GreetingError" and cause.cause.non_retryable
    assert cause.cause.details == ("detail",)


async def test_a_cancelled_workflow_raises_cancelled(client: Client, engine: EngineService) -> None:
    workflow_id = new_id()
    handle = await client.start_workflow("Greeting", id=workflow_id, task_queue="cq")
    # Answer the first task so the cancel request is written at once (not buffered behind the task).
    await complete_task(engine, workflow_id)
    await wait_event(engine, workflow_id, "WorkflowTaskCompleted")
    await handle.cancel()
    assert (await handle.describe()).raw["cancel_requested"] is True
    await wait_event(engine, workflow_id, "WorkflowExecutionCancelRequested")
    await complete_task(
        engine,
        workflow_id,
        {"command_type": "CancelWorkflowExecution", "cancel_workflow_execution_command_attributes": {"details": []}},
    )
    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(handle.result(), 20)
    assert isinstance(info.value.cause, CancelledError)


async def test_a_terminated_workflow_raises_terminated(client: Client) -> None:
    handle = await client.start_workflow("Greeting", id=new_id(), task_queue="cq")
    await handle.terminate("why", reason="operator said so")
    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(handle.result(), 20)
    assert isinstance(info.value.cause, TerminatedError)
    assert info.value.cause.message == "operator said so" and info.value.cause.details == ("why",)
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED


async def test_signals_reach_the_workflow_and_dedup_by_request_id(client: Client, engine: EngineService) -> None:
    workflow_id = new_id()
    handle = await client.start_workflow("Greeting", id=workflow_id, task_queue="cq")
    await complete_task(engine, workflow_id)
    await wait_event(engine, workflow_id, "WorkflowTaskCompleted")
    await handle.signal(GreetingWorkflow.approve, "me", request_id="once")
    await handle.signal("approve", "me", request_id="once")
    event = await wait_event(engine, workflow_id, "WorkflowExecutionSignaled")
    assert event["workflow_execution_signaled_event_attributes"]["signal_name"] == "approve"
    signaled = [e for e in engine.read_history(workflow_id) if e["event_type"] == "WorkflowExecutionSignaled"]
    assert len(signaled) == 1
    with pytest.raises(RPCError) as info:
        await client.get_workflow_handle(new_id()).signal("approve")
    assert info.value.status == RPCStatusCode.NOT_FOUND


async def test_signal_with_start_starts_with_the_signal(client: Client, engine: EngineService) -> None:
    workflow_id = new_id()
    handle = await client.start_workflow(
        "Greeting", id=workflow_id, task_queue="cq", start_signal="approve", start_signal_args=["me"]
    )
    history = await handle.fetch_history()
    assert [e["event_type"] for e in history.events][:2] == ["WorkflowExecutionStarted", "WorkflowExecutionSignaled"]


async def test_result_follows_continue_as_new(client: Client, engine: EngineService) -> None:
    workflow_id = new_id()
    handle = await client.start_workflow("Greeting", "one", id=workflow_id, task_queue="cq")
    await complete_task(
        engine,
        workflow_id,
        {
            "command_type": "ContinueAsNewWorkflowExecution",
            "continue_as_new_workflow_execution_command_attributes": {
                "workflow_type": "Greeting",
                "task_queue": "cq",
                "input": await result_bytes("two"),
            },
        },
    )
    with pytest.raises(WorkflowContinuedAsNewError) as info:
        await asyncio.wait_for(handle.result(follow_runs=False), 20)
    new_run = info.value.new_execution_run_id
    assert new_run and new_run != handle.result_run_id
    await complete_task(engine, workflow_id, complete_command(await result_bytes("second run")))
    assert await asyncio.wait_for(handle.result(), 20) == "second run"
    assert (await client.get_workflow_handle(workflow_id).describe()).run_id == new_run


async def test_result_follows_the_retry_policy_to_the_attempt_that_succeeds(
    client: Client, engine: EngineService
) -> None:
    workflow_id = new_id()
    policy = RetryPolicy(initial_interval=timedelta(milliseconds=50), maximum_attempts=3)
    handle = await client.start_workflow("Greeting", id=workflow_id, task_queue="cq", retry_policy=policy)
    first_run = handle.result_run_id
    failure = failure_to_wire(await DataConverter.default.encode_failure(ApplicationError("flaky", type="Flaky")))
    fail = {"command_type": "FailWorkflowExecution", "fail_workflow_execution_command_attributes": {"failure": failure}}
    await complete_task(engine, workflow_id, fail)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while (run := engine.describe(workflow_id)) is None or run["run_id"] == first_run:
        assert loop.time() < deadline, "the retry policy started no second attempt"
        await engine.wait_for_change(workflow_id, 0.5)
    assert run["attempt"] == 2 and run["retry_policy"]["maximum_attempts"] == 3
    # Run-pinned, without following, the first run's own outcome is the failure.
    pinned = client.get_workflow_handle(workflow_id, run_id=first_run)
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(pinned.result(follow_runs=False), 20)
    await complete_task(engine, workflow_id, complete_command(await result_bytes("second attempt")))
    assert await asyncio.wait_for(handle.result(), 20) == "second attempt"
    assert await asyncio.wait_for(pinned.result(), 20) == "second attempt"


async def test_execute_workflow_takes_one_request_when_the_run_closes_within_the_wait(
    client: Client, engine: EngineService, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    transport = client._transport
    real = transport.request

    async def counted(method: str, path: str, **kwargs: Any) -> Any:
        calls.append((method, path))
        return await real(method, path, **kwargs)

    monkeypatch.setattr(transport, "request", counted)
    workflow_id = new_id()
    running = asyncio.create_task(
        client.execute_workflow(GreetingWorkflow.run, "World", id=workflow_id, task_queue="cq")
    )
    await complete_task(engine, workflow_id, complete_command(await result_bytes("Hello, World!")))
    assert await asyncio.wait_for(running, 15) == "Hello, World!"
    assert calls == [("POST", f"/api/v1/namespaces/{client.namespace}/workflows")]


async def test_execute_workflow_falls_back_to_the_result_long_poll(
    client: Client, engine: EngineService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kronicle.client._client._POLL_S", 0.2)
    workflow_id = new_id()
    running = asyncio.create_task(client.execute_workflow("Greeting", "x", id=workflow_id, task_queue="cq"))
    await asyncio.sleep(0.6)  # past the start's wait: the client is long-polling the result now
    assert not running.done()
    await complete_task(engine, workflow_id, complete_command(await result_bytes("late")))
    assert await asyncio.wait_for(running, 15) == "late"


async def test_execute_workflow_raises_the_failure_of_a_failed_run(client: Client, engine: EngineService) -> None:
    workflow_id = new_id()
    running = asyncio.create_task(client.execute_workflow("Greeting", id=workflow_id, task_queue="cq"))
    failure = failure_to_wire(await DataConverter.default.encode_failure(ApplicationError("nope", type="Nope")))
    await complete_task(
        engine,
        workflow_id,
        {"command_type": "FailWorkflowExecution", "fail_workflow_execution_command_attributes": {"failure": failure}},
    )
    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(running, 15)
    assert isinstance(info.value.cause, ApplicationError) and info.value.cause.type == "Nope"


async def test_execute_workflow_follows_continue_as_new(client: Client, engine: EngineService) -> None:
    workflow_id = new_id()
    running = asyncio.create_task(client.execute_workflow("Greeting", "one", id=workflow_id, task_queue="cq"))
    await wait_event(engine, workflow_id, "WorkflowTaskScheduled")
    first = engine.describe(workflow_id)
    assert first is not None
    first_run = first["run_id"]
    await complete_task(
        engine,
        workflow_id,
        {
            "command_type": "ContinueAsNewWorkflowExecution",
            "continue_as_new_workflow_execution_command_attributes": {"workflow_type": "Greeting", "task_queue": "cq"},
        },
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while (run := engine.describe(workflow_id)) is None or run["run_id"] == first_run:
        assert loop.time() < deadline, "no second run"
        await engine.wait_for_change(workflow_id, 0.5)
    await complete_task(engine, workflow_id, complete_command(await result_bytes("second run")))
    assert await asyncio.wait_for(running, 15) == "second run"


async def test_execute_workflow_of_a_running_id_raises_already_started(client: Client) -> None:
    workflow_id = new_id()
    await client.start_workflow("Greeting", id=workflow_id, task_queue="cq")
    with pytest.raises(WorkflowAlreadyStartedError):
        await asyncio.wait_for(client.execute_workflow("Greeting", id=workflow_id, task_queue="cq"), 10)


async def test_a_malformed_retry_policy_is_a_clear_invalid_argument(client: Client) -> None:
    for policy, field in (
        ({"maximum_attempts": -1}, "maximum_attempts"),
        ({"backoff_coefficient": 0.5}, "backoff_coefficient"),
        ({"initial_interval_ms": 1000, "maximum_interval_ms": 10}, "maximum_interval_ms"),
        ({"non_retryable_error_types": [1]}, "non_retryable_error_types"),
        ({"maximum_attempt": 3}, "unknown keys"),
        ("3 times", "retry_policy"),
    ):
        with pytest.raises(RPCError) as info:
            await client._transport.request(
                "POST",
                client._ns_path("workflows"),
                body={"workflow_id": new_id(), "workflow_type": "Greeting", "task_queue": "cq", "retry_policy": policy},
            )
        assert info.value.status == RPCStatusCode.INVALID_ARGUMENT and field in info.value.message, policy


async def test_list_and_count_without_a_visibility_store_are_unimplemented(client: Client) -> None:
    with pytest.raises(RPCError) as info:
        async for _ in client.list_workflows("WorkflowType = 'Greeting'"):
            pass
    assert info.value.status == RPCStatusCode.UNIMPLEMENTED
    with pytest.raises(RPCError) as info:
        await client.count_workflows()
    assert info.value.status == RPCStatusCode.UNIMPLEMENTED and "visibility store" in info.value.message


async def test_describe_of_an_unknown_workflow_is_not_found(client: Client) -> None:
    with pytest.raises(RPCError) as info:
        await client.get_workflow_handle(new_id()).describe()
    assert info.value.status == RPCStatusCode.NOT_FOUND and info.value.code == "WorkflowNotFound"
