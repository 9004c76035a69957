"""Cancellation: cancelling a workflow reaches its running activity through heartbeats, then it cleans up.

The activity heartbeats; cancellation is delivered to it as
``asyncio.CancelledError`` at its next ``await`` once the engine has answered a
heartbeat. The workflow catches the cancellation, runs a cleanup activity, and
ends cancelled. Run against ``make dev``: ``python -m samples.cancellation``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from kronicle import activity, workflow
from kronicle.client import Client, WorkflowHandle
from kronicle.exceptions import ActivityError, CancelledError, WorkflowFailureError
from kronicle.worker import Worker
from samples._common import run_sample, unique_id

TASK_QUEUE = "samples-cancellation"


@activity.defn
async def process_forever() -> str:
    try:
        while True:
            activity.heartbeat("still working")
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:
        print("activity: cancelled, stopping")
        raise


@activity.defn
async def clean_up() -> str:
    return "cleaned up"


@workflow.defn
class CancellableWork:
    @workflow.run
    async def run(self) -> str:
        try:
            result: str = await workflow.execute_activity(
                process_forever, start_to_close_timeout=timedelta(hours=1), heartbeat_timeout=timedelta(seconds=2)
            )
            return result
        except (ActivityError, asyncio.CancelledError) as err:
            if isinstance(err, ActivityError) and not isinstance(err.cause, CancelledError):
                raise
            # The workflow is being cancelled: clean up (activities still run), then end cancelled.
            await workflow.execute_activity(clean_up, start_to_close_timeout=timedelta(seconds=10))
            raise


async def wait_until_running(handle: WorkflowHandle[str], timeout: float = 20.0) -> None:
    """Wait until the workflow has scheduled its activity (so the cancellation has something to reach)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not any(e["event_type"] == "ActivityTaskScheduled" for e in (await handle.fetch_history()).events):
        if loop.time() > deadline:
            raise TimeoutError("the workflow did not schedule its activity")
        await asyncio.sleep(0.05)


async def main(client: Client, *, task_queue: str = TASK_QUEUE) -> str:
    async with Worker(
        client, task_queue=task_queue, workflows=[CancellableWork], activities=[process_forever, clean_up]
    ):
        handle = await client.start_workflow(CancellableWork.run, id=unique_id("cancellation"), task_queue=task_queue)
        await wait_until_running(handle)
        await asyncio.sleep(0.3)  # let the activity heartbeat a few times
        await handle.cancel()
        try:
            await handle.result()
        except WorkflowFailureError as err:
            return f"workflow ended with {type(err.cause).__name__}"
        raise RuntimeError("the workflow should have been cancelled")


if __name__ == "__main__":
    run_sample(main)
