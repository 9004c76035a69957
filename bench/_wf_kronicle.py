"""The benchmark workflows on Kronicle's SDK.

The class bodies are identical to ``bench/_wf_temporal.py`` line for line; only
the imports differ (``tests/bench`` checks this), so both engines run the same
workflow code.
"""

from __future__ import annotations

from datetime import timedelta

from bench._activities import ACTIVITY_TIMEOUT_S, SIGNAL_COUNT, STEP_COUNT, echo_body
from kronicle import activity, workflow

# --- identical below this line ---

echo = activity.defn(name="bench_echo")(echo_body)


@workflow.defn(name="BenchOneActivity")
class OneActivity:
    @workflow.run
    async def run(self, value: str) -> str:
        result: str = await workflow.execute_activity(
            echo, value, start_to_close_timeout=timedelta(seconds=ACTIVITY_TIMEOUT_S)
        )
        return result


@workflow.defn(name="BenchTenActivities")
class TenActivities:
    @workflow.run
    async def run(self, value: str) -> str:
        for _ in range(STEP_COUNT):
            value = await workflow.execute_activity(
                echo, value, start_to_close_timeout=timedelta(seconds=ACTIVITY_TIMEOUT_S)
            )
        return value


@workflow.defn(name="BenchSignals")
class Signals:
    def __init__(self) -> None:
        self._received = 0

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self._received >= SIGNAL_COUNT)
        return self._received

    @workflow.signal
    def ping(self) -> None:
        self._received += 1
