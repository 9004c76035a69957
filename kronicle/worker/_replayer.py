"""``Replayer``: run stored histories through today's workflow code and report non-determinism.

The tool for catching an incompatible workflow change before a deploy: feed it
histories (from ``handle.fetch_history()``, ``EngineService.read_history`` or
exported JSON) and it replays every completed workflow task with the same
adapter the worker uses, raising or reporting a
:class:`~kronicle.exceptions.NondeterminismError` that names the history event
and the command that disagree.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from kronicle.converter import DataConverter
from kronicle.worker._history import RunHistory, attrs
from kronicle.worker._workflow_instance import DEFAULT_DEADLOCK_TIMEOUT, WorkflowInstance
from kronicle.workflow._definition import WorkflowDefinition

__all__ = ["Replayer", "WorkflowReplayResult", "WorkflowReplayResults", "load_history"]


@dataclasses.dataclass(frozen=True)
class WorkflowReplayResult:
    """The outcome of replaying one history."""

    workflow_id: str
    """The workflow id (``"replay"`` if the history did not say)."""
    run_id: str
    """The run id."""
    workflow_type: str
    """The workflow type the history started."""
    events: int
    """Number of events in the history."""
    replayed_tasks: int
    """Workflow tasks replayed before the end or the failure."""
    replay_failure: Exception | None
    """None if the code reproduced the history; else the NondeterminismError (or the task's error)."""

    def describe(self) -> str:
        """One line: ``ok`` or what failed."""
        head = (
            f"{self.workflow_type} {self.workflow_id}/{self.run_id} ({self.events} events, {self.replayed_tasks} tasks)"
        )
        if self.replay_failure is None:
            return f"ok    {head}"
        return f"FAIL  {head}: {type(self.replay_failure).__name__}: {self.replay_failure}"


@dataclasses.dataclass(frozen=True)
class WorkflowReplayResults:
    """The outcome of replaying several histories."""

    results: Sequence[WorkflowReplayResult]
    """One per history, in input order."""

    @property
    def replay_failures(self) -> dict[str, Exception]:
        """Run id -> failure, for the histories that did not replay cleanly."""
        return {r.run_id: r.replay_failure for r in self.results if r.replay_failure is not None}

    def report(self) -> str:
        """A human-readable report: one line per workflow and a total."""
        lines = [r.describe() for r in self.results]
        failed = len(self.replay_failures)
        lines.append(f"{len(self.results) - failed} of {len(self.results)} histories replayed cleanly")
        return "\n".join(lines)


def _unjson(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$b"}:
            return base64.b64decode(value["$b"])
        return {k: _unjson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unjson(v) for v in value]
    return value


def load_history(history: Any) -> tuple[str, str, list[dict[str, Any]]]:
    """Normalise a history: a list of events, ``{"events": [...]}`` (optionally with ``workflow_id``
    and ``run_id``), or the JSON text of either. Bytes may be written ``{"$b": base64}``.

    Returns:
        ``(workflow_id, run_id, events)``; ids are ``""`` when the history does not carry them.

    Raises:
        ValueError: The value is not a history.
    """
    if isinstance(history, (str, bytes)):
        history = json.loads(history)
    workflow_id = run_id = ""
    if isinstance(history, Mapping):
        workflow_id = str(history.get("workflow_id") or "")
        run_id = str(history.get("run_id") or "")
        history = history.get("events")
    if not isinstance(history, list) or not all(isinstance(e, Mapping) and "event_type" in e for e in history):
        raise ValueError("a history is a list of HistoryEvent dicts or {'events': [...]}; got something else")
    events = [_unjson(dict(e)) for e in history]
    events.sort(key=lambda e: int(e["event_id"]))
    return workflow_id, run_id, events


class Replayer:
    """Replays histories against workflow classes (``kronicle.worker.Replayer``, as in temporalio).

    Args:
        workflows: The ``@workflow.defn`` classes the histories may use.
        namespace: Namespace reported by ``workflow.info()``.
        data_converter: Decodes the histories' payloads.
        deadlock_timeout: Deadlock threshold for replayed code (None: off).
    """

    def __init__(
        self,
        *,
        workflows: Sequence[type],
        namespace: str = "default",
        data_converter: DataConverter = DataConverter.default,
        deadlock_timeout: timedelta | None = DEFAULT_DEADLOCK_TIMEOUT,
    ) -> None:
        self._definitions: dict[str, WorkflowDefinition] = {}
        for cls in workflows:
            defn = WorkflowDefinition.from_class(cls)
            self._definitions[defn.name or ""] = defn
        self._namespace = namespace
        self._dc = data_converter
        self._deadlock_timeout = deadlock_timeout

    async def replay_workflow(self, history: Any, *, raise_on_replay_failure: bool = True) -> WorkflowReplayResult:
        """Replay one history.

        Raises:
            NondeterminismError: (with ``raise_on_replay_failure``) the code disagrees with history.
            WorkflowTaskFailedError: (likewise) the code failed a workflow task it had completed.
            ValueError: The history is malformed or uses a workflow type not given to the Replayer.
        """
        workflow_id, run_id, events = load_history(history)
        if not events or events[0]["event_type"] != "WorkflowExecutionStarted":
            raise ValueError("a history must start with WorkflowExecutionStarted")
        started = attrs(events[0])
        run_id = run_id or started.get("original_execution_run_id") or "replay-run"
        workflow_id = workflow_id or "replay"
        workflow_type = str(started.get("workflow_type", ""))
        defn = self._definitions.get(workflow_type) or self._definitions.get("")
        if defn is None:
            known = ", ".join(sorted(self._definitions)) or "none"
            raise ValueError(f"history uses workflow type {workflow_type!r}, not given to the Replayer (have: {known})")
        instance = WorkflowInstance(  # type: ignore[abstract]  # asyncio's I/O methods stay unimplemented on purpose
            defn,
            payload_converter=self._dc.payload_converter,
            failure_converter=self._dc.failure_converter,
            deadlock_timeout=self._deadlock_timeout,
        )
        run = RunHistory(
            instance, workflow_id=workflow_id, run_id=run_id, namespace=self._namespace, data_converter=self._dc
        )
        failure: Exception | None = None
        try:
            await run.advance(events)
        except Exception as err:  # noqa: BLE001 - any replay error is this history's result
            failure = err
        finally:
            instance.dispose()
        result = WorkflowReplayResult(workflow_id, run_id, workflow_type, len(events), run.replayed_tasks, failure)
        if failure is not None and raise_on_replay_failure:
            raise failure
        return result

    async def replay_workflows(
        self, histories: Iterable[Any], *, raise_on_replay_failure: bool = True
    ) -> WorkflowReplayResults:
        """Replay several histories; with ``raise_on_replay_failure=False`` every one is replayed and
        :meth:`WorkflowReplayResults.report` says which failed and why.
        """
        results = []
        for history in histories:
            results.append(await self.replay_workflow(history, raise_on_replay_failure=raise_on_replay_failure))
        return WorkflowReplayResults(results)
