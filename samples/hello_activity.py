"""Hello activity: a workflow that calls one activity and returns its result.

Run against ``make dev``: ``python -m samples.hello_activity``.
"""

from __future__ import annotations

from datetime import timedelta

from kronicle import activity, workflow
from kronicle.client import Client
from kronicle.worker import Worker
from samples._common import run_sample, unique_id

TASK_QUEUE = "samples-hello-activity"


@activity.defn
async def compose_greeting(greeting: str, name: str) -> str:
    return f"{greeting}, {name}!"


@workflow.defn
class GreetingWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        greeting: str = await workflow.execute_activity(
            compose_greeting, args=["Hello", name], start_to_close_timeout=timedelta(seconds=10)
        )
        return greeting


async def main(client: Client, *, task_queue: str = TASK_QUEUE) -> str:
    async with Worker(client, task_queue=task_queue, workflows=[GreetingWorkflow], activities=[compose_greeting]):
        result: str = await client.execute_workflow(
            GreetingWorkflow.run, "World", id=unique_id("hello-activity"), task_queue=task_queue
        )
        return result


if __name__ == "__main__":
    run_sample(main)
