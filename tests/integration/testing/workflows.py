"""Workflows and activities of the time-skipping tests (module level, so type hints resolve)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from kronicle import activity, workflow
from kronicle.common import RetryPolicy
from kronicle.exceptions import ActivityError


@workflow.defn
class LongSleep:
    """Sleeps ``days`` and reports how much workflow time passed."""

    @workflow.run
    async def run(self, days: float) -> float:
        before = workflow.now()
        await workflow.sleep(timedelta(days=days))
        return (workflow.now() - before).total_seconds()


@workflow.defn
class WaitForSignal:
    """Waits (forever) for a signal; used for execution timeouts and env.sleep."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return "signalled"

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@workflow.defn
class TimerThenSignal:
    """Counts timer ticks of one hour until signalled; the result is how many fired."""

    def __init__(self) -> None:
        self.stop = False

    @workflow.run
    async def run(self) -> int:
        ticks = 0
        while not self.stop:
            await workflow.sleep(timedelta(hours=1))
            ticks += 1
        return ticks

    @workflow.signal
    def halt(self) -> None:
        self.stop = True


SKIPPING_ENV: list[object] = []
"""Set by the test module to its environment, for the activity below to call ``env.sleep``."""


@activity.defn
async def outlive_start_to_close(hours: float) -> str:
    env = SKIPPING_ENV[0]
    await env.sleep(timedelta(hours=hours))  # type: ignore[attr-defined]
    return "finished late"


@activity.defn
async def quick() -> str:
    await asyncio.sleep(0.5)  # long enough that a skip during it would time it out
    return "quick"


@workflow.defn
class ActivityTimeout:
    """Runs an activity that outlives its one-hour start-to-close timeout; returns the failure type."""

    @workflow.run
    async def run(self, hours: float) -> str:
        try:
            return await workflow.execute_activity(
                outlive_start_to_close,
                hours,
                start_to_close_timeout=timedelta(hours=1),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as err:
            timeout_type = getattr(err.cause, "type", None)
            return f"{type(err.cause).__name__}: {getattr(timeout_type, 'name', timeout_type)}"


@workflow.defn
class ActivityThenSleep:
    """An activity (real time), then a day-long sleep: the skipper must wait for the activity first."""

    @workflow.run
    async def run(self) -> list[str]:
        first = await workflow.execute_activity(
            quick, start_to_close_timeout=timedelta(seconds=30), retry_policy=RetryPolicy(maximum_attempts=1)
        )
        start = workflow.now()
        await workflow.sleep(timedelta(days=1))
        return [first, str((workflow.now() - start).total_seconds())]


@activity.defn
async def heartbeat_then_stall(hours: float) -> str:
    activity.heartbeat("started")
    env = SKIPPING_ENV[0]
    await env.sleep(timedelta(hours=hours))  # type: ignore[attr-defined]
    return "finished late"


@workflow.defn
class HeartbeatTimeout:
    """An activity that stops heartbeating for longer than its 10-minute heartbeat timeout."""

    @workflow.run
    async def run(self, hours: float) -> str:
        try:
            return await workflow.execute_activity(
                heartbeat_then_stall,
                hours,
                start_to_close_timeout=timedelta(days=1),
                heartbeat_timeout=timedelta(minutes=10),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as err:
            timeout_type = getattr(err.cause, "type", None)
            return f"{type(err.cause).__name__}: {getattr(timeout_type, 'name', timeout_type)}"
