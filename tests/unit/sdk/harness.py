"""Drives a WorkflowInstance with hand-built activations, recording them for replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kronicle.converter import DefaultPayloadConverter, FailureConverter, Payload
from kronicle.worker import _activation as act
from kronicle.worker._workflow_instance import WorkflowInstance
from kronicle.workflow import Info, WorkflowDefinition

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PC = DefaultPayloadConverter()
FC = FailureConverter()


def payload(value: Any) -> Payload:
    return PC.to_payload(value)


def value(p: Payload | None, hint: Any = None) -> Any:
    assert p is not None
    return PC.from_payload(p, hint)


def failure(error: BaseException) -> dict[str, Any]:
    return FC.to_failure(error, PC)


class Harness:
    """One workflow run; every activation it sends is kept in ``activations``."""

    def __init__(self, cls: type, *, deadlock_timeout: timedelta | None = timedelta(seconds=30)) -> None:
        self.cls = cls
        self.deadlock_timeout = deadlock_timeout
        self.instance = WorkflowInstance(WorkflowDefinition.from_class(cls), deadlock_timeout=deadlock_timeout)
        self.now = T0
        self.activations: list[act.Activation] = []

    def start(self, *args: Any, seed: int = 7, extra: tuple[act.Job, ...] = ()) -> act.Completion:
        definition = WorkflowDefinition.from_class(self.cls)
        info = Info(
            workflow_id="wf-1", run_id="run-1", workflow_type=definition.name or "", task_queue="q", start_time=T0
        )
        job = act.StartWorkflow(definition.name or "", [payload(a) for a in args], info, seed)
        return self.step(job, *extra)

    def step(self, *jobs: act.Job, advance: timedelta = timedelta(0), replaying: bool = False) -> act.Completion:
        self.now += advance
        activation = act.Activation("run-1", self.now, replaying, list(jobs))
        self.activations.append(activation)
        return self.instance.activate(activation)


def replay(cls: type, activations: list[act.Activation]) -> list[act.Completion]:
    """Run the same activations on a fresh instance of ``cls`` (marked as replaying)."""
    instance = WorkflowInstance(WorkflowDefinition.from_class(cls))
    return [
        instance.activate(act.Activation(a.run_id, a.timestamp, True, a.jobs, a.history_length)) for a in activations
    ]
