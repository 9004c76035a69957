"""A worker with eager activities against the engine handler in memory (no Kafka).

:class:`EagerLoop` is :class:`~tests.unit.worker.memory.MemoryLoop` with the
worker's real activity runner and eager-activity starter: workflow-task answers
(the completion and the results behind it) and every later activity result go
to the engine in the order the worker would produce them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from kronicle.worker._activities import ActivityRunner, EagerActivity
from kronicle.worker._eager import EagerActivities
from kronicle.worker._workflow_tasks import Answer, WorkflowTaskRunner
from tests.unit.worker.memory import CONVERTER, QUEUE, MemoryLoop


class EagerLoop(MemoryLoop):
    """Drives the engine and a worker whose completions may run activities eagerly.

    Args:
        workflows: Workflow classes.
        activities: ``@activity.defn`` functions.
        hold: The eager hold.
        slots: Activity slots (eager attempts take them).
        eager: False: a worker with eager execution disabled.
        deliver: False: records are only collected in :attr:`sent`, never applied to the engine.
    """

    def __init__(
        self,
        workflows: list[type],
        activities: list[Callable[..., Any]],
        *,
        hold: timedelta = timedelta(milliseconds=200),
        slots: int = 100,
        eager: bool = True,
        deliver: bool = True,
    ) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.answers: list[Answer] = []
        self.deliver = deliver
        self.free = slots
        self.started: list[EagerActivity] = []
        self.act_runner = ActivityRunner(
            activities=activities,
            executor=None,
            data_converter=CONVERTER,
            namespace="default",
            identity="eager-worker",
            reply_to="control",
            send=self._send,
        )
        self.eager = (
            EagerActivities(
                task_queue=QUEUE,
                activities=self.act_runner,
                acquire_slot=self._acquire,
                release_slot=self._release,
                hold=hold,
                on_start=self.started.append,
            )
            if eager
            else None
        )
        super().__init__(workflows)

    def make_runner(self, workflows: list[type], max_cached_workflows: int = 1000) -> WorkflowTaskRunner:
        return self._runner(workflows, max_cached_workflows, identity="eager-worker", eager=self.eager)

    def _acquire(self) -> bool:
        if self.free <= 0:
            return False
        self.free -= 1
        return True

    def _release(self) -> None:
        self.free += 1

    def _send(self, name: str, datum: dict[str, Any]) -> None:
        self.sent.append((name, datum))
        if self.deliver:
            self.bench.send(name, datum)

    async def answer(self, task: dict[str, Any]) -> Answer | None:
        """Answer one task and send its records, as the worker does."""
        answer = await self.runner.answer(task)
        if answer is not None:
            self.answers.append(answer)
            for record in answer.records:
                self._send(*record)
            answer.sent()
        return answer

    async def step(self) -> bool:
        progressed = False
        for task in self.bench.workflow_tasks(QUEUE)[self._wft_seen :]:
            self._wft_seen += 1
            await self.answer(task)
            progressed = True
        for task in self.bench.activity_tasks(QUEUE)[self._act_seen :]:
            self._act_seen += 1
            await self.act_runner.run(task)
            progressed = True
        running = [e.runner for e in self.started if e.runner is not None and not e.runner.done()]
        if running:
            await asyncio.gather(*running)
            progressed = True
        return progressed
