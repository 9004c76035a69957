"""ActivityEnvironment: info, heartbeats and cancellation delivered as the worker delivers them."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from typing import Any

import pytest

from kronicle import activity
from kronicle.exceptions import CancelledError
from kronicle.testing import ActivityEnvironment


@activity.defn
async def describe_attempt(prefix: str) -> str:
    info = activity.info()
    return f"{prefix}:{info.activity_type}:{info.attempt}:{info.workflow_id}"


@activity.defn
async def heartbeat_three_times() -> int:
    for i in range(3):
        activity.heartbeat("step", i)
    return 3


@activity.defn
async def wait_for_cancel() -> str:
    activity.heartbeat("waiting")
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        assert activity.is_cancelled()
        return "cleaned up"
    return "not cancelled"


@activity.defn
def sync_until_cancelled() -> str:
    activity.heartbeat("started")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return "ran to the end"


@activity.defn(no_thread_cancel_exception=True)
def sync_polling() -> str:
    activity.heartbeat("started")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if activity.is_cancelled():
            return "saw the cancellation"
        time.sleep(0.01)
    return "ran to the end"


async def test_an_async_activity_sees_the_overridden_info() -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, activity_type="describe", attempt=3, workflow_id="wf-7")
    assert await env.run(describe_attempt, "x") == "x:describe:3:wf-7"


def test_a_sync_activity_runs_in_the_calling_thread_with_its_info() -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=2)

    def who() -> tuple[int, int]:
        return activity.info().attempt, threading.get_ident()

    assert env.run(who) == (2, threading.get_ident())


async def test_heartbeats_reach_on_heartbeat_in_order() -> None:
    env = ActivityEnvironment()
    beats: list[tuple[Any, ...]] = []
    env.on_heartbeat = lambda *details: beats.append(details)
    assert await env.run(heartbeat_three_times) == 3
    assert beats == [("step", 0), ("step", 1), ("step", 2)]


async def test_cancel_raises_asyncio_cancelled_error_into_an_async_activity() -> None:
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: env.cancel()
    assert await env.run(wait_for_cancel) == "cleaned up"
    assert env.cancelled


async def test_cancel_from_outside_reaches_a_waiting_async_activity() -> None:
    env = ActivityEnvironment()
    task = asyncio.ensure_future(env.run(wait_for_cancel))
    await asyncio.sleep(0.05)
    assert not task.done()
    env.cancel()
    assert await asyncio.wait_for(task, 5) == "cleaned up"


async def test_an_activity_started_after_cancel_starts_cancelled() -> None:
    env = ActivityEnvironment()
    env.cancel()

    async def check() -> bool:
        return activity.is_cancelled()

    with pytest.raises(asyncio.CancelledError):
        await env.run(check)


def test_cancel_raises_cancelled_error_into_a_sync_activity_thread() -> None:
    env = ActivityEnvironment()
    started = threading.Event()
    env.on_heartbeat = lambda *details: started.set()
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(env.run(sync_until_cancelled))
        except CancelledError as err:
            outcome.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(5)
    begun = time.monotonic()
    env.cancel()
    thread.join(5)
    assert len(outcome) == 1 and isinstance(outcome[0], CancelledError), outcome
    assert time.monotonic() - begun < 2


def test_a_sync_activity_with_no_thread_cancel_exception_polls_is_cancelled() -> None:
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: env.cancel("TIMED_OUT")
    assert env.run(sync_polling) == "saw the cancellation"


def test_activity_functions_outside_an_environment_say_where_they_work() -> None:
    with pytest.raises(RuntimeError, match="ActivityEnvironment"):
        activity.info()
