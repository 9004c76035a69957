"""The demo workflow that ``kronicle server start-dev`` runs: one activity, a signal, a result."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from kronicle import activity, workflow
from kronicle.client import Client
from kronicle.common import RetryPolicy
from kronicle.worker import Worker

TASK_QUEUE = "demo"


@activity.defn
async def compose_greeting(name: str) -> str:
    activity.heartbeat("composing")
    return f"Hello, {name}!"


@workflow.defn
class GreetingWorkflow:
    def __init__(self) -> None:
        self._approved = False

    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.wait_condition(lambda: self._approved, timeout=timedelta(minutes=1))
        greeting: str = await workflow.execute_activity(
            compose_greeting,
            name,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
        return greeting

    @workflow.signal
    def approve(self) -> None:
        self._approved = True


async def run_demo(address: str, namespace: str) -> tuple[str, str]:
    """Start the demo workflow, approve it, wait for its result; returns (workflow id, result)."""
    client = await Client.connect(address, namespace=namespace)
    async with client:
        return await _run(client)


async def _run(client: Client) -> tuple[str, str]:
    with ThreadPoolExecutor(4) as executor:
        async with Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[GreetingWorkflow],
            activities=[compose_greeting],
            activity_executor=executor,
        ):
            workflow_id = f"greet-{uuid.uuid4().hex[:8]}"
            handle = await client.start_workflow(GreetingWorkflow.run, "World", id=workflow_id, task_queue=TASK_QUEUE)
            await handle.signal(GreetingWorkflow.approve)
            result: str = await handle.result()
    return workflow_id, result
