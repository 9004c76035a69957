"""Timers: a reminder that waits (durably) before it sends itself, then reports how long it waited.

The wait is a durable timer in the engine: the workflow survives restarts of
workers and of the engine while it sleeps. The test runs it with a 30-day
delay under ``WorkflowEnvironment.start_time_skipping``; run against ``make
dev`` it waits a few seconds: ``python -m samples.timers``.
"""

from __future__ import annotations

from datetime import timedelta

from kronicle import activity, workflow
from kronicle.client import Client
from kronicle.worker import Worker
from samples._common import run_sample, unique_id

TASK_QUEUE = "samples-timers"


@activity.defn
async def send_reminder(text: str) -> str:
    return f"reminder sent: {text}"


@workflow.defn
class Reminder:
    @workflow.run
    async def run(self, text: str, delay_seconds: float) -> str:
        started = workflow.now()
        await workflow.sleep(timedelta(seconds=delay_seconds))
        sent = await workflow.execute_activity(send_reminder, text, start_to_close_timeout=timedelta(seconds=10))
        waited = workflow.now() - started
        return f"{sent} (after {waited.days} days, {waited.seconds} seconds)"


async def main(client: Client, *, task_queue: str = TASK_QUEUE, delay: timedelta = timedelta(seconds=3)) -> str:
    async with Worker(client, task_queue=task_queue, workflows=[Reminder], activities=[send_reminder]):
        result: str = await client.execute_workflow(
            Reminder.run,
            "renew the passport",
            delay.total_seconds(),
            id=unique_id("timers"),
            task_queue=task_queue,
        )
        return result


if __name__ == "__main__":
    run_sample(main)
