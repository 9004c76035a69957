"""The activity runner without Kafka: results, failures, heartbeats (throttled) and cancellation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from kronicle import _wire, activity
from kronicle.converter import DataConverter
from kronicle.exceptions import ApplicationError
from kronicle.worker._activities import ActivityRunner

CONVERTER = DataConverter.default


def payloads(*values: Any) -> list[bytes]:
    return _wire.payloads_to_bytes(CONVERTER.payload_converter.to_payloads(values))


def decode(items: list[bytes]) -> list[Any]:
    return CONVERTER.payload_converter.from_payloads(_wire.payloads_from_bytes(items))


def task(activity_type: str, *args: Any, **fields: Any) -> dict[str, Any]:
    return {
        "workflow_id": "wf",
        "run_id": "run",
        "scheduled_event_id": 5,
        "attempt": 1,
        "workflow_type": "W",
        "activity_id": "1",
        "activity_type": activity_type,
        "task_queue": "q",
        "input": payloads(*args),
        "header": {},
        "scheduled_time_ms": 0,
        "current_attempt_scheduled_time_ms": 0,
        "schedule_to_close_timeout_ms": 0,
        "schedule_to_start_timeout_ms": 0,
        "start_to_close_timeout_ms": 10_000,
        "heartbeat_timeout_ms": 0,
        "heartbeat_details": [],
        **fields,
    }


@activity.defn(name="add")
async def add(a: int, b: int) -> int:
    return a + b


@activity.defn(name="refuse")
async def refuse() -> None:
    raise ApplicationError("no way", type="Refused", non_retryable=True)


@activity.defn(name="chatty")
async def chatty(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        activity.heartbeat(n)
        await asyncio.sleep(0.01)
    return "done"


@activity.defn(name="wait_cancel")
async def wait_cancel() -> None:
    activity.heartbeat("here")
    await asyncio.sleep(30)


@activity.defn(name="sync_wait_cancel")
def sync_wait_cancel() -> None:
    activity.heartbeat("here")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.01)


@activity.defn(name="sync_poll_cancel", no_thread_cancel_exception=True)
def sync_poll_cancel() -> str:
    activity.heartbeat("here")
    while not activity.is_cancelled():
        time.sleep(0.01)
    return "saw cancellation"


class Sent:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, datum: dict[str, Any]) -> None:
        self.records.append((name, datum))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [d for n, d in self.records if n == name]


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as pool:
        yield pool


def runner(sent: Sent, executor: ThreadPoolExecutor | None = None) -> ActivityRunner:
    return ActivityRunner(
        activities=[add, refuse, chatty, wait_cancel, sync_wait_cancel, sync_poll_cancel],
        executor=executor,
        data_converter=CONVERTER,
        namespace="default",
        identity="me",
        reply_to="kronicle.default.worker.me",
        send=sent,
    )


async def cancel_when_heartbeated(r: ActivityRunner, sent: Sent) -> None:
    while not sent.named("HeartbeatActivityTask"):
        await asyncio.sleep(0.01)
    r.on_control(
        {"workflow_id": "wf", "run_id": "run", "scheduled_event_id": 5, "attempt": 1, "cancel_requested": True}
    )


def test_sync_activities_need_an_executor() -> None:
    with pytest.raises(ValueError, match="activity_executor"):
        runner(Sent())


async def test_result_is_sent_as_complete_activity_task(executor: ThreadPoolExecutor) -> None:
    sent = Sent()
    await runner(sent, executor).run(task("add", 2, 3))
    (done,) = sent.named("CompleteActivityTask")
    assert decode(done["result"]) == [5] and done["identity"] == "me" and done["scheduled_event_id"] == 5


async def test_application_error_keeps_type_and_non_retryable(executor: ThreadPoolExecutor) -> None:
    sent = Sent()
    await runner(sent, executor).run(task("refuse"))
    (failed,) = sent.named("FailActivityTask")
    assert failed["failure"]["type"] == "Refused" and failed["failure"]["non_retryable"] is True
    assert failed["failure"]["message"] == "no way"


async def test_unknown_activity_type_fails_naming_the_registered_ones(executor: ThreadPoolExecutor) -> None:
    sent = Sent()
    await runner(sent, executor).run(task("nope"))
    (failed,) = sent.named("FailActivityTask")
    assert "'nope'" in failed["failure"]["message"] and "add" in failed["failure"]["message"]


async def test_heartbeats_are_throttled_to_most_of_the_heartbeat_timeout(executor: ThreadPoolExecutor) -> None:
    sent = Sent()
    # ~50 heartbeats in 0.5 s with a 0.25 s timeout: sent at most every 0.2 s.
    await runner(sent, executor).run(task("chatty", 0.5, heartbeat_timeout_ms=250))
    beats = sent.named("HeartbeatActivityTask")
    assert 2 <= len(beats) <= 4, len(beats)
    assert all(b["reply_to"] == "kronicle.default.worker.me" for b in beats)
    assert decode(beats[0]["details"]) == [1]


async def test_schedule_to_start_timeout_makes_the_attempt_heartbeat_at_once_keeping_old_details(
    executor: ThreadPoolExecutor,
) -> None:
    sent = Sent()
    await runner(sent, executor).run(
        task("add", 1, 1, schedule_to_start_timeout_ms=1000, heartbeat_details=payloads("resume-here"))
    )
    first = sent.records[0]
    assert first[0] == "HeartbeatActivityTask" and decode(first[1]["details"]) == ["resume-here"]


async def test_cancel_request_cancels_an_async_activity_and_reports_it(executor: ThreadPoolExecutor) -> None:
    sent = Sent()
    r = runner(sent, executor)
    await asyncio.wait_for(asyncio.gather(r.run(task("wait_cancel")), cancel_when_heartbeated(r, sent)), 5)
    (cancelled,) = sent.named("ReportActivityTaskCanceled")
    assert decode(cancelled["details"]) == ["here"]
    assert not sent.named("CompleteActivityTask") and not sent.named("FailActivityTask")


async def test_cancel_request_is_raised_into_a_sync_activity_thread(executor: ThreadPoolExecutor) -> None:
    sent = Sent()
    r = runner(sent, executor)
    t0 = time.monotonic()
    await asyncio.wait_for(asyncio.gather(r.run(task("sync_wait_cancel")), cancel_when_heartbeated(r, sent)), 5)
    assert time.monotonic() - t0 < 5
    assert len(sent.named("ReportActivityTaskCanceled")) == 1


async def test_sync_activity_without_thread_exception_sees_is_cancelled(executor: ThreadPoolExecutor) -> None:
    sent = Sent()
    r = runner(sent, executor)
    await asyncio.wait_for(asyncio.gather(r.run(task("sync_poll_cancel")), cancel_when_heartbeated(r, sent)), 5)
    # It chose to finish normally after seeing the request: the result is sent (the engine accepts it).
    (done,) = sent.named("CompleteActivityTask")
    assert decode(done["result"]) == ["saw cancellation"]


async def test_not_found_stops_the_attempt_silently(executor: ThreadPoolExecutor) -> None:
    sent = Sent()
    r = runner(sent, executor)

    async def not_found() -> None:
        while not sent.named("HeartbeatActivityTask"):
            await asyncio.sleep(0.01)
        r.on_control({"workflow_id": "wf", "run_id": "run", "scheduled_event_id": 5, "attempt": 1, "not_found": True})

    await asyncio.wait_for(asyncio.gather(r.run(task("wait_cancel")), not_found()), 5)
    assert [n for n, _ in sent.records] == ["HeartbeatActivityTask"]


async def test_control_for_another_attempt_is_ignored(executor: ThreadPoolExecutor) -> None:
    sent = Sent()
    r = runner(sent, executor)
    run = asyncio.ensure_future(r.run(task("wait_cancel", start_to_close_timeout_ms=300)))
    while not sent.named("HeartbeatActivityTask"):
        await asyncio.sleep(0.01)
    r.on_control(
        {"workflow_id": "wf", "run_id": "run", "scheduled_event_id": 5, "attempt": 2, "cancel_requested": True}
    )
    await asyncio.sleep(0.05)
    assert r.running == 1
    await asyncio.wait_for(run, 5)  # the local start-to-close timeout ends it, silently
    assert [n for n, _ in sent.records] == ["HeartbeatActivityTask"]
