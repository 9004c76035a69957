"""Continue-as-new: a long-running loop that starts a fresh run (and history) every few iterations.

``workflow.continue_as_new`` ends the run and starts a new one with the given
arguments and an empty history, so a workflow can run forever without its
history growing without bound. ``handle.result()`` follows the chain of runs.
Run against ``make dev``: ``python -m samples.continue_as_new``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kronicle import workflow
from kronicle.client import Client
from kronicle.worker import Worker
from samples._common import run_sample, unique_id

TASK_QUEUE = "samples-continue-as-new"
ITERATIONS_PER_RUN = 3


@dataclass
class Progress:
    done: int = 0
    target: int = 10
    runs: list[str] = field(default_factory=list)


@workflow.defn
class CountInRuns:
    @workflow.run
    async def run(self, progress: Progress) -> Progress:
        progress.runs.append(workflow.info().run_id)
        for _ in range(ITERATIONS_PER_RUN):
            if progress.done >= progress.target:
                return progress
            progress.done += 1
            await workflow.sleep(0.01)  # a real step would do work here
        workflow.continue_as_new(progress)


async def main(client: Client, *, task_queue: str = TASK_QUEUE) -> str:
    async with Worker(client, task_queue=task_queue, workflows=[CountInRuns]):
        result: Progress = await client.execute_workflow(
            CountInRuns.run, Progress(target=7), id=unique_id("continue-as-new"), task_queue=task_queue
        )
        return f"counted to {result.done} in {len(set(result.runs))} runs"


if __name__ == "__main__":
    run_sample(main)
