"""Child workflows: a parent starts one child per name, in parallel, and joins their results.

Run against ``make dev``: ``python -m samples.child_workflows``.
"""

from __future__ import annotations

import asyncio

from kronicle import workflow
from kronicle.client import Client
from kronicle.worker import Worker
from samples._common import run_sample, unique_id

TASK_QUEUE = "samples-child-workflows"


@workflow.defn
class ComposeGreeting:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"Hello, {name}!"


@workflow.defn
class GreetEveryone:
    @workflow.run
    async def run(self, names: list[str]) -> list[str]:
        parent = workflow.info().workflow_id
        children = [
            workflow.execute_child_workflow(ComposeGreeting.run, name, id=f"{parent}-child-{i}")
            for i, name in enumerate(names)
        ]
        return list(await asyncio.gather(*children))


async def main(client: Client, *, task_queue: str = TASK_QUEUE) -> list[str]:
    async with Worker(client, task_queue=task_queue, workflows=[GreetEveryone, ComposeGreeting]):
        result: list[str] = await client.execute_workflow(
            GreetEveryone.run, ["Ada", "Grace", "Barbara"], id=unique_id("child-workflows"), task_queue=task_queue
        )
        return result


if __name__ == "__main__":
    run_sample(main)
