"""An SDK worker for the worker-kill scenario, run as ``python -m tests.chaos.sdk_worker`` so it can be killed -9.

``WorkerChaos(x)`` runs activity ``chaos_double(x)``, sleeps 300 ms (a timer),
runs ``chaos_double`` on the result, waits for the ``bonus`` signal and
returns ``4x + bonus``. The activity takes about a second and heartbeats, so a
kill -9 usually lands in the middle of some attempts; the heartbeat timeout
(2 s) makes the engine retry them on a surviving worker.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from datetime import timedelta

from kronicle import activity, workflow
from kronicle.client import Client
from kronicle.common import RetryPolicy
from kronicle.worker import Worker

WORKFLOW_TYPE = "WorkerChaos"
ACTIVITY_STEPS = 10
ACTIVITY_STEP_S = 0.1


def expected_result(x: int) -> int:
    return 4 * x + bonus_for(x)


def bonus_for(x: int) -> int:
    return x % 7 + 1


@activity.defn(name="chaos_double")
async def chaos_double(x: int) -> int:
    for step in range(ACTIVITY_STEPS):
        activity.heartbeat(step)
        await asyncio.sleep(ACTIVITY_STEP_S)
    return 2 * x


_ACTIVITY_OPTIONS = {
    "start_to_close_timeout": timedelta(seconds=10),
    "heartbeat_timeout": timedelta(seconds=2),
    "retry_policy": RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=1)),
}


@workflow.defn(name=WORKFLOW_TYPE)
class WorkerChaos:
    def __init__(self) -> None:
        self._bonus: int | None = None

    @workflow.run
    async def run(self, x: int) -> int:
        once: int = await workflow.execute_activity(chaos_double, x, **_ACTIVITY_OPTIONS)  # type: ignore[arg-type]
        await workflow.sleep(timedelta(milliseconds=300))
        twice: int = await workflow.execute_activity(chaos_double, once, **_ACTIVITY_OPTIONS)  # type: ignore[arg-type]
        await workflow.wait_condition(lambda: self._bonus is not None)
        assert self._bonus is not None
        return twice + self._bonus

    @workflow.signal
    def bonus(self, value: int) -> None:
        self._bonus = value


async def _main(frontend: str, namespace: str, queue: str, identity: str) -> None:
    client = await Client.connect(frontend, namespace=namespace, identity=identity)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[WorkerChaos],
        activities=[chaos_double],
        max_concurrent_activities=200,
    ):
        print("worker ready", flush=True)
        await stop.wait()
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frontend", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--identity", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(_main(args.frontend, args.namespace, args.queue, args.identity))


if __name__ == "__main__":
    main()
