"""Continuations of a workflow-task completion: workflow tasks a worker ran ahead on its eager activities' results.

A mixin of :class:`~kronicle.engine.workflow.WorkflowHandler`. A worker that ran
the eager activities of a completion itself (``request_eager_execution``) may
also have run the workflow task their results cause, and the next, and send the
whole chain in one ``CompleteWorkflowTask`` (``continuations``). Each step is
re-checked and applied as what the normal path would have written, in the same
engine command: the results close the activities (ActivityTaskStarted +
ActivityTaskCompleted, in the listed order), WorkflowTaskScheduled is written
but not dispatched, and the step's commands complete that task exactly like a
normal completion (a bad command fails it, and its retry is dispatched).

A step is accepted only if, just before it, the run is open, no workflow task is
outstanding or backing off, nothing is buffered, and every result names a
pending attempt-1 eager activity (by activity id, each once) within the payload
limit. Anything else means something happened that the worker did not see when
it ran the step: that step and every later one apply no commands; their results
still close the attempts they name (so the work is kept and the resulting task
is dispatched normally), and ``stats["rejected_continuation"]`` counts the steps.

Event times: a step's WorkflowTaskStarted is at the step's ``started_time_ms``
clamped to [the previous WorkflowTaskStarted of this command, now], which is
the ``workflow.now()`` the worker ran the step with. Event times never go
backwards, so the events in between (from the completion's own
WorkflowTaskCompleted on) are written at the previous step's time, not at now.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any

from kronicle.engine.workflow import _activities as acts
from kronicle.engine.workflow._state import payload_size
from kronicle.engine.workflow._tx import Config, Run, Tx

__all__ = ["Continuations"]


class Continuations:
    """Applies the ``continuations`` of a CompleteWorkflowTask (after its own commands)."""

    _cfg: Config
    stats: collections.Counter[str]

    if TYPE_CHECKING:
        # Provided by WorkflowHandler and ActivityResults.
        def _complete_task(self, tx: Tx, run: Run, v: dict[str, Any]) -> None: ...

        def _complete_attempt(
            self, tx: Tx, run: Run, act: dict[str, Any], result: list[bytes], started_time_ms: int, identity: str
        ) -> None: ...

    def _apply_continuations(
        self, tx: Tx, run_id: str, steps: list[dict[str, Any]], identity: str, *, stale: bool = False
    ) -> None:
        """Apply ``steps`` in order; from the first one that is not accepted on (all if ``stale``), only their results.

        ``stale``: the completion itself was stale (a duplicate, or its task timed out).
        """
        accepted = not stale
        if stale:
            self.stats["rejected_continuation"] += len(steps)
        for index, step in enumerate(steps):
            run = tx.load(run_id)  # reloaded: a failed step rolls the state back to a copy
            if accepted and not self._step_refused(run, step):
                assert run is not None
                self._apply_step(tx, run, step, identity)
                continue
            if accepted:
                accepted = False
                self.stats["rejected_continuation"] += len(steps) - index
                tx.event_now = tx.now
            if run is not None and run["status"] == "RUNNING":
                self._apply_plain_results(tx, run, step, identity)
        tx.event_now = tx.now

    def _step_refused(self, run: Run | None, step: dict[str, Any]) -> str:
        """Why ``step`` cannot be applied as the run stands (empty: it can)."""
        if run is None or run["status"] != "RUNNING":
            return "closed"
        if run["wft"] is not None or run["wft_backoff"]:
            return "workflow task outstanding"
        if run["buffer"]:
            return "events buffered"
        results = step.get("activity_results") or []
        if not results:
            return "no activity results"
        limit = self._cfg.options.max_payload_bytes
        seen: set[str] = set()
        for result in results:
            activity_id = result.get("activity_id") or ""
            act = acts.find_activity(run, activity_id)
            if activity_id in seen or act is None or not _eager_attempt(act):
                return "not a pending eager attempt"
            if payload_size(result.get("result")) > limit:
                return "result over the payload limit"
            seen.add(activity_id)
        return ""

    def _apply_step(self, tx: Tx, run: Run, step: dict[str, Any], identity: str) -> None:
        started_time = min(max(int(step.get("started_time_ms") or 0), tx.event_now), tx.now)
        tx.event_now = started_time
        for result in step["activity_results"]:
            act = acts.find_activity(run, result["activity_id"])
            assert act is not None
            if result.get("started_time_ms"):
                act["worker_started_time"] = int(result["started_time_ms"])
            attrs = {"result": result.get("result") or [], "identity": identity}
            acts.close_activity(tx, run, act, "ActivityTaskCompleted", attrs, identity=identity, schedule=False)
        timeout = run["task_timeout_ms"]
        sid = tx.add_event(
            run,
            "WorkflowTaskScheduled",
            {"task_queue": run["task_queue"], "start_to_close_timeout_ms": timeout, "attempt": 1},
        )
        # Not dispatched and no timeout: it is completed in this command. Its "scheduled time" is
        # the previous task's start, the lower bound of this one's WorkflowTaskStarted.
        run["wft"] = {"scheduled_event_id": sid, "attempt": 1, "scheduled_time": started_time, "chained": True}
        completion = {"started_time_ms": started_time, "identity": identity, "commands": step.get("commands") or []}
        self._complete_task(tx, run, completion)

    def _apply_plain_results(self, tx: Tx, run: Run, step: dict[str, Any], identity: str) -> None:
        """The results of a step that is not applied, as if each had come as a CompleteActivityTask."""
        for result in step.get("activity_results") or []:
            act = acts.find_activity(run, result.get("activity_id") or "")
            if act is None or not _eager_attempt(act):
                self.stats["stale_activity_completion"] += 1
                continue
            started = int(result.get("started_time_ms") or 0)
            self._complete_attempt(tx, run, act, result.get("result") or [], started, identity)


def _eager_attempt(act: dict[str, Any]) -> bool:
    """Whether ``act`` is running the eager first attempt a worker reports in a continuation."""
    return bool(act.get("eager")) and act["attempt"] == 1 and act["state"] == "DISPATCHED"
