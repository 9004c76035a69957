"""The worker's workflow-task runner against the real engine handler in memory (no Kafka).

:class:`MemoryLoop` drives the engine's WorkflowHandler (the test bench of
tests/unit/engine/workflow) and a :class:`WorkflowTaskRunner`: it answers
every workflow task the engine dispatches and runs activity tasks with plain
functions, so tests get real engine histories in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from kronicle import _wire
from kronicle.converter import DataConverter
from kronicle.worker._history import ms_to_datetime
from kronicle.worker._workflow_tasks import WorkflowTaskRunner
from tests.unit.engine.workflow.harness import Bench, failure

QUEUE = "q"
CONVERTER = DataConverter.default


def payloads(*values: Any) -> list[bytes]:
    return _wire.payloads_to_bytes(CONVERTER.payload_converter.to_payloads(values))


def value(items: list[bytes]) -> Any:
    return CONVERTER.payload_converter.from_payload(_wire.payload_from_bytes(items[0]))


class MemoryLoop:
    def __init__(
        self,
        workflows: list[type],
        activities: dict[str, Callable[..., Any]] | None = None,
        *,
        max_cached_workflows: int = 1000,
        bench: Bench | None = None,
        executor: Executor | None = None,
        converter: DataConverter = CONVERTER,
    ) -> None:
        self.converter = converter
        self.bench = bench or Bench()
        self.activities = activities or {}
        self.executor = executor
        self.runner = self.make_runner(workflows, max_cached_workflows)
        self._wft_seen = 0
        self._act_seen = 0
        self.responses: list[tuple[str, dict[str, Any]]] = []

    def make_runner(self, workflows: list[type], max_cached_workflows: int = 1000) -> WorkflowTaskRunner:
        return self._runner(workflows, max_cached_workflows, identity="memory-worker")

    def _runner(
        self, workflows: list[type], max_cached_workflows: int, *, identity: str, **options: Any
    ) -> WorkflowTaskRunner:
        """A runner on this bench's clock and history (``options``: more WorkflowTaskRunner arguments)."""
        return WorkflowTaskRunner(
            workflows=workflows,
            namespace="default",
            identity=identity,
            data_converter=self.converter,
            fetch_history=self._fetch,
            max_cached_workflows=max_cached_workflows,
            clock=lambda: ms_to_datetime(self.bench.now),
            executor=self.executor,
            **options,
        )

    async def _fetch(self, workflow_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.bench.history(workflow_id, run_id)

    def start(self, workflow_id: str, workflow_type: str, *args: Any, **fields: Any) -> str:
        return self.bench.start(
            workflow_id, workflow_type=workflow_type, task_queue=QUEUE, input=payloads(*args), **fields
        )

    def signal(self, workflow_id: str, name: str, *args: Any) -> None:
        self.bench.send("SignalWorkflow", {"workflow_id": workflow_id, "signal_name": name, "input": payloads(*args)})

    async def step(self) -> bool:
        progressed = False
        tasks = self.bench.workflow_tasks(QUEUE)
        for task in tasks[self._wft_seen :]:
            self._wft_seen += 1
            answer = await self.runner.handle(task)
            if answer is not None:
                self.responses.append(answer)
                self.bench.send(*answer)
            progressed = True
        acts = self.bench.activity_tasks(QUEUE)
        for task in acts[self._act_seen :]:
            self._act_seen += 1
            fn = self.activities[task["activity_type"]]
            args = CONVERTER.payload_converter.from_payloads(_wire.payloads_from_bytes(task["input"]))
            try:
                result = fn(*args)
            except Exception as err:  # noqa: BLE001 - reported to the engine like a worker would
                self.bench.activity_result(
                    "FailActivityTask", task, failure=failure(str(err), type_=type(err).__name__)
                )
            else:
                self.bench.activity_result("CompleteActivityTask", task, result=payloads(result))
            progressed = True
        return progressed

    async def run_until_idle(self) -> None:
        while await self.step():
            pass

    def history(self, workflow_id: str) -> list[dict[str, Any]]:
        return self.bench.history(workflow_id)

    def types(self, workflow_id: str) -> list[str]:
        return self.bench.types(workflow_id)
