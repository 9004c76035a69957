"""Signals and queries: a workflow collects names sent as signals, answers a query, and ends on a signal.

Run against ``make dev``: ``python -m samples.signals_and_queries``.
"""

from __future__ import annotations

from kronicle import workflow
from kronicle.client import Client
from kronicle.worker import Worker
from samples._common import run_sample, unique_id

TASK_QUEUE = "samples-signals-and-queries"


@workflow.defn
class GreetingCollector:
    def __init__(self) -> None:
        self._names: list[str] = []
        self._done = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self._done)
        return "Hello, " + " and ".join(self._names) + "!"

    @workflow.signal
    def add_name(self, name: str) -> None:
        self._names.append(name)

    @workflow.signal
    def finish(self) -> None:
        self._done = True

    @workflow.query
    def names(self) -> list[str]:
        return list(self._names)


async def main(client: Client, *, task_queue: str = TASK_QUEUE) -> str:
    async with Worker(client, task_queue=task_queue, workflows=[GreetingCollector]):
        handle = await client.start_workflow(
            GreetingCollector.run, id=unique_id("signals-and-queries"), task_queue=task_queue
        )
        await handle.signal(GreetingCollector.add_name, "Ada")
        await handle.signal(GreetingCollector.add_name, "Grace")
        print("names so far:", await handle.query(GreetingCollector.names))
        await handle.signal(GreetingCollector.finish)
        result: str = await handle.result()
        return result


if __name__ == "__main__":
    run_sample(main)
