"""The Worker on a real broker with the real engine in-process: workflows and activities end to end."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from confluent_kafka import Producer

from kronicle import _wire
from kronicle.converter import DataConverter
from kronicle.engine.service import EngineService
from kronicle.worker import Worker
from kronicle.worker._history import attrs
from tests.integration.worker import workflows as iw
from tests.kafka_helpers import drain
from tests.unit.worker.workflows import Approval, Greeting, Sleeper, TwoSteps, compose

pytestmark = pytest.mark.timeout(60)
CONVERTER = DataConverter.default


class EngineClient:
    """The WorkerClient protocol over an in-process EngineService (a real engine, not a mock)."""

    def __init__(self, engine: EngineService, identity: str = "test-worker") -> None:
        self.engine = engine
        self.namespace = engine.namespace
        self.identity = identity
        self.data_converter = CONVERTER
        self.kafka_bootstrap_servers = engine.bootstrap_servers

    async def fetch_history_events(self, workflow_id: str, run_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            first = events[-1]["event_id"] + 1 if events else 1
            page = await asyncio.to_thread(self.engine.read_history, workflow_id, run_id, first, 1000)
            events.extend(page)
            if len(page) < 1000:
                return events


@pytest.fixture
async def executor() -> AsyncIterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as pool:
        yield pool


def send(engine: EngineService, name: str, datum: dict[str, Any]) -> None:
    producer = Producer({"bootstrap.servers": engine.bootstrap_servers, "partitioner": "murmur2_random"})
    producer.produce(engine.topics.commands, engine.registry.encode(name, datum), datum["workflow_id"].encode())
    assert producer.flush(10) == 0


def start(
    engine: EngineService, workflow_id: str, workflow_type: str, queue: str, *args: Any, task_timeout_ms: int = 5000
) -> None:
    send(
        engine,
        "kronicle.workflow.StartWorkflow",
        {
            "workflow_id": workflow_id,
            "workflow_type": workflow_type,
            "task_queue": queue,
            "request_id": uuid.uuid4().hex,
            "input": _wire.payloads_to_bytes(CONVERTER.payload_converter.to_payloads(args)),
            "task_timeout_ms": task_timeout_ms,
        },
    )


async def wait_closed(engine: EngineService, workflow_id: str, timeout: float = 30) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        events = await asyncio.to_thread(engine.read_history, workflow_id)
        if (
            events
            and events[-1]["event_type"].startswith("WorkflowExecution")
            and events[-1]["event_type"]
            not in (
                "WorkflowExecutionStarted",
                "WorkflowExecutionSignaled",
                "WorkflowExecutionCancelRequested",
            )
        ):
            return events
        assert loop.time() < deadline, f"not closed: {[e['event_type'] for e in events]}"
        await engine.wait_for_change(workflow_id, 0.5)


async def wait_for(engine: EngineService, workflow_id: str, event_type: str, timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not any(e["event_type"] == event_type for e in await asyncio.to_thread(engine.read_history, workflow_id)):
        assert loop.time() < deadline, f"no {event_type}"
        await engine.wait_for_change(workflow_id, 0.5)


def result(events: list[dict[str, Any]]) -> Any:
    assert events[-1]["event_type"] == "WorkflowExecutionCompleted", events[-1]
    return CONVERTER.payload_converter.from_payload(_wire.payload_from_bytes(attrs(events[-1])["result"][0]))


async def test_workflow_runs_an_activity_end_to_end(engine: EngineService, queue: str) -> None:
    async with Worker(EngineClient(engine), task_queue=queue, workflows=[Greeting], activities=[compose]):
        t0 = time.monotonic()
        start(engine, "greet-1", "Greeting", queue, "World")
        events = await wait_closed(engine, "greet-1")
        elapsed = time.monotonic() - t0
    assert result(events) == "Hello, World!"
    print(f"start-to-result {elapsed * 1000:.0f} ms")


async def test_timer_fires_through_the_engine(engine: EngineService, queue: str) -> None:
    async with Worker(EngineClient(engine), task_queue=queue, workflows=[Sleeper]):
        t0 = time.monotonic()
        start(engine, "sleep-1", "Sleeper", queue, 0.5)
        events = await wait_closed(engine, "sleep-1")
    # Workflow time is the wall clock at each task's start: at least the timer's duration passed.
    assert 0.5 <= float(result(events).split()[1]) < 5
    assert time.monotonic() - t0 >= 0.5
    assert "TimerFired" in [e["event_type"] for e in events]


async def test_signals_reach_the_workflow(engine: EngineService, queue: str) -> None:
    async with Worker(EngineClient(engine), task_queue=queue, workflows=[Approval]):
        start(engine, "sig-1", "Approval", queue)
        await wait_for(engine, "sig-1", "WorkflowTaskCompleted")
        for who in ("ann", "bob"):
            send(
                engine,
                "kronicle.workflow.SignalWorkflow",
                {
                    "workflow_id": "sig-1",
                    "signal_name": "approve",
                    "input": _wire.payloads_to_bytes([CONVERTER.payload_converter.to_payload(who)]),
                },
            )
        events = await wait_closed(engine, "sig-1")
    assert result(events) == ["ann", "bob"]


async def test_activity_retries_with_backoff_visible_in_history(
    engine: EngineService, queue: str, executor: ThreadPoolExecutor
) -> None:
    async with Worker(
        EngineClient(engine),
        task_queue=queue,
        workflows=[iw.Retrying],
        activities=[iw.flaky],
        activity_executor=executor,
    ):
        start(engine, "retry-1", "Retrying", queue, 2)
        events = await wait_closed(engine, "retry-1")
    assert result(events) == "ok on attempt 3"
    assert iw.CALLS["retry-1"] == 3
    by_type = {e["event_type"]: e for e in events}
    started = attrs(by_type["ActivityTaskStarted"])
    assert started["attempt"] == 3 and started["last_failure"]["message"] == "attempt 2 failed"
    policy = attrs(by_type["ActivityTaskScheduled"])["retry_policy"]
    assert policy["initial_interval_ms"] == 300 and policy["backoff_coefficient"] == 2.0
    # Two backoffs, 300 ms then 600 ms, lie between scheduling and completion.
    span = by_type["ActivityTaskCompleted"]["event_time"] - by_type["ActivityTaskScheduled"]["event_time"]
    assert span >= 900


async def test_heartbeat_timeout_triggers_a_retry(engine: EngineService, queue: str) -> None:
    async with Worker(
        EngineClient(engine), task_queue=queue, workflows=[iw.HeartbeatTimeout], activities=[iw.stall_once]
    ):
        start(engine, "hb-1", "HeartbeatTimeout", queue)
        events = await wait_closed(engine, "hb-1")
    assert result(events) == "done on attempt 2 after ['started']"
    started = attrs(next(e for e in events if e["event_type"] == "ActivityTaskStarted"))
    assert started["attempt"] == 2
    assert (
        started["last_failure"]["failure_type"] == "timeout" and started["last_failure"]["timeout_type"] == "HEARTBEAT"
    )


async def test_cancellation_reaches_a_heartbeating_activity(engine: EngineService, queue: str) -> None:
    async with Worker(EngineClient(engine), task_queue=queue, workflows=[iw.CancelActivity], activities=[iw.spin]):
        start(engine, "cancel-1", "CancelActivity", queue)
        events = await wait_closed(engine, "cancel-1")
    assert result(events) == "cancelled: CancelledError"
    assert "cancel-1" in iw.CANCELLED
    types = [e["event_type"] for e in events]
    assert types.index("ActivityTaskCancelRequested") < types.index("ActivityTaskCanceled")


async def test_workflow_finishes_on_a_new_worker_after_the_first_stops(engine: EngineService, queue: str) -> None:
    first = Worker(EngineClient(engine, "worker-a"), task_queue=queue, workflows=[TwoSteps], activities=[compose])
    async with first:
        start(engine, "move-1", "TwoSteps", queue, "A")
        await wait_for(engine, "move-1", "TimerStarted")
    second = Worker(EngineClient(engine, "worker-b"), task_queue=queue, workflows=[TwoSteps], activities=[compose])
    async with second:
        events = await wait_closed(engine, "move-1")
    assert result(events) == "Hello, Hello, A!!"
    assert second.workflow_task_stats.get("full_replay", 0) >= 1
    assert second.workflow_task_stats.get("nondeterminism", 0) == 0
    # The first worker committed what it answered: the second got no task twice.
    assert second.workflow_task_stats.get("stale_task", 0) == 0
    # After the timer, after the second activity: two workflow tasks, answered apart or (eager) chained into one.
    stats = second.workflow_task_stats
    assert stats["completed"] + stats.get("eager_step", 0) == 2


async def test_two_workers_for_two_queues_in_one_process(engine: EngineService) -> None:
    queues = [f"q{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for q in queues:
        engine.ensure_task_queue(q)
    workers = [Worker(EngineClient(engine), task_queue=q, workflows=[Greeting], activities=[compose]) for q in queues]
    async with workers[0], workers[1]:
        for i, q in enumerate(queues):
            start(engine, f"multi-{i}", "Greeting", q, str(i))
        results = [result(await wait_closed(engine, f"multi-{i}")) for i in range(2)]
    assert results == ["Hello, 0!", "Hello, 1!"]


async def test_a_task_lost_with_a_dead_worker_is_retried_and_finished_by_another(
    engine: EngineService, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Worker(
        EngineClient(engine, "worker-dies"),
        task_queue=queue,
        workflows=[TwoSteps],
        activities=[compose],
        disable_eager_activity_execution=True,  # three workflow tasks, not chained: the third is the one lost
    )
    real_send = first._send

    def dying_send(name: str, datum: dict[str, Any]) -> None:
        # The third workflow task (after the timer) is taken but never answered, as if the process died.
        if name == "CompleteWorkflowTask" and first.workflow_task_stats.get("completed", 0) >= 3:
            return
        real_send(name, datum)

    monkeypatch.setattr(first, "_send", dying_send)
    async with first:
        start(engine, "crash-1", "TwoSteps", queue, "A", task_timeout_ms=1000)
        while first.workflow_task_stats.get("completed", 0) < 3:
            await asyncio.sleep(0.05)
    second = Worker(EngineClient(engine, "worker-b"), task_queue=queue, workflows=[TwoSteps], activities=[compose])
    async with second:
        events = await wait_closed(engine, "crash-1")
    assert result(events) == "Hello, Hello, A!!"
    assert "WorkflowTaskTimedOut" in [e["event_type"] for e in events]
    assert second.workflow_task_stats.get("full_replay", 0) >= 1


async def test_graceful_shutdown_lets_a_running_activity_finish(engine: EngineService, queue: str) -> None:
    worker = Worker(
        EngineClient(engine),
        task_queue=queue,
        workflows=[iw.Slow],
        activities=[iw.slow],
        graceful_shutdown_timeout=timedelta(seconds=10),
    )
    run = asyncio.ensure_future(worker.run())
    start(engine, "graceful-1", "Slow", queue, 1.0)
    await wait_for(engine, "graceful-1", "ActivityTaskScheduled")
    await asyncio.sleep(0.3)  # the attempt is running
    await asyncio.gather(worker.shutdown(), worker.shutdown())  # idempotent, concurrent calls wait together
    await asyncio.wait_for(run, 5)
    assert not worker.is_running
    await wait_for(engine, "graceful-1", "ActivityTaskCompleted", timeout=5)
    with pytest.raises(RuntimeError, match="create a new Worker"):
        await worker.start()


async def test_shutdown_without_grace_cancels_activities_and_reports_a_retryable_failure(
    engine: EngineService, queue: str
) -> None:
    async with Worker(EngineClient(engine), task_queue=queue, workflows=[iw.Slow], activities=[iw.slow]):
        start(engine, "abrupt-1", "Slow", queue, 30.0)
        await wait_for(engine, "abrupt-1", "ActivityTaskScheduled")
        await asyncio.sleep(0.3)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        state = await asyncio.to_thread(engine.describe, "abrupt-1")
        assert state is not None
        pending = list(state["activities"].values())
        if pending and pending[0]["attempt"] >= 2:
            break
        assert loop.time() < deadline, pending
        await engine.wait_for_change("abrupt-1", 0.5)
    assert "Worker shutting down" in str(pending[0])


async def test_query_through_the_engine_is_answered_on_reply_to(
    engine: EngineService, queue: str, topic_factory: Any
) -> None:
    replies = topic_factory("replies")
    async with Worker(EngineClient(engine), task_queue=queue, workflows=[Approval]):
        start(engine, "query-1", "Approval", queue)
        await wait_for(engine, "query-1", "WorkflowTaskCompleted")
        send(
            engine,
            "kronicle.workflow.SignalWorkflow",
            {
                "workflow_id": "query-1",
                "signal_name": "approve",
                "input": _wire.payloads_to_bytes([CONVERTER.payload_converter.to_payload("ann")]),
            },
        )
        await wait_for(engine, "query-1", "WorkflowExecutionSignaled")
        while [e["event_type"] for e in await asyncio.to_thread(engine.read_history, "query-1")][-1] != (
            "WorkflowTaskCompleted"
        ):
            await engine.wait_for_change("query-1", 0.5)
        send(
            engine,
            "kronicle.workflow.QueryWorkflow",
            {"workflow_id": "query-1", "query_id": "qq", "query_type": "approved_by", "reply_to": replies},
        )
        (msg,) = await asyncio.to_thread(drain, engine.bootstrap_servers, replies, expect=1)
    name, reply = engine.registry.decode(msg.value())
    assert name == "kronicle.workflow.QueryResult" and reply["query_id"] == "qq" and reply["failure"] is None
    assert msg.key() == b"query-1"
    assert CONVERTER.payload_converter.from_payload(_wire.payload_from_bytes(reply["answer"][0])) == ["ann"]
