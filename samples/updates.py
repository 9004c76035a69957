"""Updates with validation: a counter that changes on request, rejecting bad requests before they are recorded.

An update is a request that the workflow handles and answers (unlike a
signal); its validator runs first and can reject it, in which case nothing is
written to history. Run against ``make dev``: ``python -m samples.updates``.
"""

from __future__ import annotations

from kronicle import workflow
from kronicle.client import Client
from kronicle.worker import Worker
from samples._common import run_sample, unique_id

TASK_QUEUE = "samples-updates"


@workflow.defn
class Counter:
    def __init__(self) -> None:
        self._total = 0
        self._closed = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self._closed)
        return self._total

    @workflow.update
    def add(self, amount: int) -> int:
        self._total += amount
        return self._total

    @add.validator
    def _check_add(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError(f"amount must be positive, not {amount}")

    @workflow.signal
    def close(self) -> None:
        self._closed = True


async def main(client: Client, *, task_queue: str = TASK_QUEUE) -> str:
    async with Worker(client, task_queue=task_queue, workflows=[Counter]):
        handle = await client.start_workflow(Counter.run, id=unique_id("updates"), task_queue=task_queue)
        print("after +5:", await handle.execute_update(Counter.add, 5))
        print("after +3:", await handle.execute_update(Counter.add, 3))
        try:
            await handle.execute_update(Counter.add, -1)
        except Exception as err:  # noqa: BLE001 - the sample shows what a rejection looks like
            print("rejected:", err)
        await handle.signal(Counter.close)
        return f"total: {await handle.result()}"


if __name__ == "__main__":
    run_sample(main)
