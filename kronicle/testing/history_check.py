"""Check a set of workflow histories for the invariants a durable-execution engine promises.

Fault tests run many workflows while processes and brokers die, then hand every
history to :func:`check_histories`. It checks each run on its own and collects
every problem it finds (it never stops at the first), so one report says what
broke, in which run and at which event:

- ``event_ids``: event ids are dense from 1 and increasing (a lost or doubled
  history batch shows up here first).
- ``first_event``: a run starts with ``WorkflowExecutionStarted``.
- ``closing``: at most one closing event, and it is the last event; with
  ``require_closed`` every run must have one.
- ``activity``: every ``ActivityTaskStarted`` and closing activity event names a
  scheduled activity, each scheduled activity is started and closed at most
  once, and no activity id is scheduled again while an activity with that id
  is open (a command applied twice).
- ``timer``: every ``TimerFired`` / ``TimerCanceled`` names a started timer, and
  each timer is fired or cancelled at most once.
- ``workflow_task``: each ``WorkflowTaskStarted`` names an earlier scheduled
  task that was not started yet; each completion or failure directly follows
  the start it names; a timeout names an outstanding task; no task is
  scheduled while another is outstanding.
- ``signal``: no signal request id is applied twice, and, when the expected
  request ids are given, each of them is applied exactly once and no other.
- ``result``: a completed run's result equals the expected one.

Histories are lists of decoded ``kronicle.workflow.HistoryEvent`` datums, as
``EngineService.read_history`` returns them or as the ``HistoryEventBatch``
records of the history topic carry them.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Collection, Mapping, Sequence
from typing import Any

__all__ = ["CLOSING_EVENT_TYPES", "HistoryCheckError", "Problem", "Report", "check_histories", "check_history"]

CLOSING_EVENT_TYPES = frozenset(
    {
        "WorkflowExecutionCompleted",
        "WorkflowExecutionFailed",
        "WorkflowExecutionTimedOut",
        "WorkflowExecutionCanceled",
        "WorkflowExecutionTerminated",
        "WorkflowExecutionContinuedAsNew",
    }
)
"""Event types that close a run."""

_ACTIVITY_CLOSING = {
    "ActivityTaskCompleted": "activity_task_completed_event_attributes",
    "ActivityTaskFailed": "activity_task_failed_event_attributes",
    "ActivityTaskTimedOut": "activity_task_timed_out_event_attributes",
    "ActivityTaskCanceled": "activity_task_canceled_event_attributes",
}
_TIMER_CLOSING = {
    "TimerFired": "timer_fired_event_attributes",
    "TimerCanceled": "timer_canceled_event_attributes",
}
_TASK_ENDING = {
    "WorkflowTaskCompleted": "workflow_task_completed_event_attributes",
    "WorkflowTaskFailed": "workflow_task_failed_event_attributes",
}


class HistoryCheckError(AssertionError):
    """Raised by :meth:`Report.raise_if_failed`; its message is the report's summary."""


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One broken invariant in one run."""

    run: str
    """The key the history was given under (a workflow id or run id)."""
    invariant: str
    """Which check failed: ``event_ids``, ``closing``, ``activity``, ``timer``, ..."""
    detail: str
    """What was wrong, naming the event ids involved."""
    event_id: int | None = None
    """The event the problem was found at, if any."""

    def __str__(self) -> str:
        at = f" @event {self.event_id}" if self.event_id is not None else ""
        return f"{self.run}: [{self.invariant}]{at} {self.detail}"


@dataclasses.dataclass(slots=True)
class Report:
    """What :func:`check_histories` found."""

    runs: int = 0
    """Histories checked."""
    closed: int = 0
    """Of those, runs that have a closing event."""
    events: int = 0
    """Events checked in all."""
    signals: int = 0
    """Signals applied in all."""
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no invariant is broken."""
        return not self.problems

    def by_invariant(self) -> dict[str, int]:
        """How many problems each invariant has."""
        return dict(collections.Counter(p.invariant for p in self.problems))

    def summary(self, limit: int = 20) -> str:
        """A readable report: totals, problems per invariant, and the first ``limit`` problems."""
        head = f"{self.runs} runs ({self.closed} closed), {self.events} events, {self.signals} signals checked"
        if self.ok:
            return f"{head}: all invariants hold"
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_invariant().items()))
        failed_runs = len({p.run for p in self.problems})
        lines = [f"{head}: {len(self.problems)} problems in {failed_runs} runs ({counts})"]
        lines += [f"  {p}" for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"  ... and {len(self.problems) - limit} more")
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        """Raise :class:`HistoryCheckError` with the summary if any invariant is broken."""
        if not self.ok:
            raise HistoryCheckError(self.summary())


def check_histories(
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    expected_results: Mapping[str, Any] | None = None,
    *,
    expected_signals: Mapping[str, Collection[str]] | None = None,
    require_closed: bool = True,
) -> Report:
    """Check every history and aggregate the problems into one report.

    Args:
        histories: Events of each run, keyed by a name for the run (workflow id or run id).
        expected_results: The ``result`` payload list each run must complete with. A key
            here that has no history is reported as ``missing``.
        expected_signals: Request ids of the signals each run must have applied, once each.
        require_closed: Report runs without a closing event.

    Returns:
        The report; call :meth:`Report.raise_if_failed` in a test.
    """
    report = Report()
    for run, events in histories.items():
        report.runs += 1
        report.events += len(events)
        report.closed += any(e.get("event_type") in CLOSING_EVENT_TYPES for e in events)
        report.signals += sum(1 for e in events if e.get("event_type") == "WorkflowExecutionSignaled")
        report.problems += check_history(
            run,
            events,
            expected_result=(expected_results or {}).get(run, _UNSET),
            expected_signals=(expected_signals or {}).get(run),
            require_closed=require_closed,
        )
    for run in sorted({*(expected_results or {}), *(expected_signals or {})} - set(histories)):
        report.problems.append(Problem(run, "missing", "an expected run has no history at all"))
    return report


class _Unset:
    pass


_UNSET: Any = _Unset()


def check_history(
    run: str,
    events: Sequence[Mapping[str, Any]],
    *,
    expected_result: Any = _UNSET,
    expected_signals: Collection[str] | None = None,
    require_closed: bool = True,
) -> list[Problem]:
    """Check one run's history; see the module docstring for the invariants.

    Args:
        run: Name of the run in the problems reported.
        events: The run's events in history order.
        expected_result: The ``result`` a completed run must have (omit to skip the check).
        expected_signals: Request ids that must each be applied exactly once (None: only no repeats).
        require_closed: Report a run without a closing event.
    """
    checker = _RunChecker(run)
    checker.check(events, require_closed)
    checker.check_signals(events, expected_signals)
    if expected_result is not _UNSET:
        checker.check_result(events, expected_result)
    return checker.problems


def _attrs(event: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    value = event.get(field)
    return value if isinstance(value, Mapping) else {}


class _RunChecker:
    def __init__(self, run: str) -> None:
        self.run = run
        self.problems: list[Problem] = []

    def fail(self, invariant: str, detail: str, event_id: int | None = None) -> None:
        self.problems.append(Problem(self.run, invariant, detail, event_id))

    def check(self, events: Sequence[Mapping[str, Any]], require_closed: bool) -> None:
        if not events:
            self.fail("first_event", "the history is empty")
            return
        if events[0].get("event_type") != "WorkflowExecutionStarted":
            self.fail("first_event", f"starts with {events[0].get('event_type')}", events[0].get("event_id"))
        self._check_ids(events)
        self._check_closing(events, require_closed)
        self._check_activities(events)
        self._check_timers(events)
        self._check_workflow_tasks(events)

    def _check_ids(self, events: Sequence[Mapping[str, Any]]) -> None:
        for index, event in enumerate(events):
            if event.get("event_id") != index + 1:
                self.fail(
                    "event_ids",
                    f"event #{index + 1} ({event.get('event_type')}) has id {event.get('event_id')}, want {index + 1}",
                    event.get("event_id"),
                )
                return  # one break in the sequence shifts every later id: report it once

    def _check_closing(self, events: Sequence[Mapping[str, Any]], require_closed: bool) -> None:
        closing = [e for e in events if e.get("event_type") in CLOSING_EVENT_TYPES]
        if len(closing) > 1:
            ids = [e.get("event_id") for e in closing]
            self.fail("closing", f"{len(closing)} closing events: {ids}", closing[1].get("event_id"))
        if closing and events[-1] is not closing[0] and len(closing) == 1:
            self.fail(
                "closing",
                f"{closing[0].get('event_type')} is not the last event (last: {events[-1].get('event_type')})",
                closing[0].get("event_id"),
            )
        if not closing and require_closed:
            self.fail("closing", f"not closed; last event {events[-1].get('event_type')}", events[-1].get("event_id"))

    def _check_activities(self, events: Sequence[Mapping[str, Any]]) -> None:
        scheduled: set[int] = set()
        started: set[int] = set()
        closed: dict[int, int] = {}
        pending_ids: dict[str, int] = {}  # activity id -> scheduled event id, while it is open
        for event in events:
            kind, eid = event.get("event_type"), event.get("event_id")
            if kind == "ActivityTaskScheduled" and isinstance(eid, int):
                scheduled.add(eid)
                activity_id = str(_attrs(event, "activity_task_scheduled_event_attributes").get("activity_id") or "")
                if activity_id in pending_ids and pending_ids[activity_id] not in closed:
                    self.fail(
                        "activity",
                        f"activity id {activity_id!r} scheduled again while {pending_ids[activity_id]} is open",
                        eid,
                    )
                pending_ids[activity_id] = eid
            elif kind == "ActivityTaskStarted":
                sid = _attrs(event, "activity_task_started_event_attributes").get("scheduled_event_id")
                if sid not in scheduled:
                    self.fail("activity", f"ActivityTaskStarted for unscheduled activity {sid}", eid)
                elif sid in started:
                    self.fail("activity", f"activity {sid} started twice", eid)
                elif sid in closed:
                    self.fail("activity", f"activity {sid} started after it closed", eid)
                started.add(int(sid or 0))
            elif kind in _ACTIVITY_CLOSING:
                sid = _attrs(event, _ACTIVITY_CLOSING[kind]).get("scheduled_event_id")
                if sid not in scheduled:
                    self.fail("activity", f"{kind} for unscheduled activity {sid}", eid)
                elif sid in closed:
                    self.fail("activity", f"activity {sid} closed twice (first at event {closed[sid]})", eid)
                else:
                    closed[sid] = eid if isinstance(eid, int) else -1

    def _check_timers(self, events: Sequence[Mapping[str, Any]]) -> None:
        started: set[int] = set()
        closed: dict[int, int] = {}
        for event in events:
            kind, eid = event.get("event_type"), event.get("event_id")
            if kind == "TimerStarted" and isinstance(eid, int):
                started.add(eid)
            elif kind in _TIMER_CLOSING:
                sid = _attrs(event, _TIMER_CLOSING[kind]).get("started_event_id")
                if sid not in started:
                    self.fail("timer", f"{kind} for a timer that was not started ({sid})", eid)
                elif sid in closed:
                    self.fail("timer", f"timer {sid} fired or cancelled twice (first at event {closed[sid]})", eid)
                else:
                    closed[sid] = eid if isinstance(eid, int) else -1

    def _check_workflow_tasks(self, events: Sequence[Mapping[str, Any]]) -> None:
        outstanding: int | None = None  # scheduled id of the task not yet completed, failed or timed out
        started: set[int] = set()
        previous: Mapping[str, Any] | None = None
        for event in events:
            kind, eid = event.get("event_type"), event.get("event_id")
            if kind == "WorkflowTaskScheduled":
                if outstanding is not None:
                    self.fail("workflow_task", f"task scheduled while task {outstanding} is outstanding", eid)
                outstanding = eid if isinstance(eid, int) else None
            elif kind == "WorkflowTaskStarted":
                sid = _attrs(event, "workflow_task_started_event_attributes").get("scheduled_event_id")
                if sid != outstanding:
                    self.fail("workflow_task", f"started task {sid}, but the outstanding task is {outstanding}", eid)
                elif sid in started:
                    self.fail("workflow_task", f"task {sid} started twice", eid)
                started.add(int(sid or 0))
            elif kind in _TASK_ENDING:
                attrs = _attrs(event, _TASK_ENDING[kind])
                sid, st = attrs.get("scheduled_event_id"), attrs.get("started_event_id")
                ok_previous = (
                    previous is not None
                    and previous.get("event_type") == "WorkflowTaskStarted"
                    and previous.get("event_id") == st
                )
                if not ok_previous:
                    self.fail("workflow_task", f"{kind} (started {st}) does not directly follow its start", eid)
                if sid != outstanding:
                    self.fail("workflow_task", f"{kind} for task {sid}, outstanding is {outstanding}", eid)
                outstanding = None
            elif kind == "WorkflowTaskTimedOut":
                sid = _attrs(event, "workflow_task_timed_out_event_attributes").get("scheduled_event_id")
                if sid != outstanding:
                    self.fail("workflow_task", f"timeout of task {sid}, outstanding is {outstanding}", eid)
                outstanding = None
            previous = event

    def check_signals(self, events: Sequence[Mapping[str, Any]], expected: Collection[str] | None) -> None:
        seen: collections.Counter[str] = collections.Counter()
        for event in events:
            if event.get("event_type") == "WorkflowExecutionSignaled":
                request_id = _attrs(event, "workflow_execution_signaled_event_attributes").get("request_id") or ""
                if request_id:
                    seen[request_id] += 1
                    if seen[request_id] == 2:
                        self.fail("signal", f"signal {request_id!r} applied more than once", event.get("event_id"))
        if expected is not None:
            missing = sorted(set(expected) - set(seen))
            extra = sorted(set(seen) - set(expected))
            if missing:
                self.fail("signal", f"signals never applied: {missing}")
            if extra:
                self.fail("signal", f"signals applied that were never sent: {extra}")

    def check_result(self, events: Sequence[Mapping[str, Any]], expected: Any) -> None:
        completed = [e for e in events if e.get("event_type") == "WorkflowExecutionCompleted"]
        if not completed:
            last = events[-1].get("event_type") if events else None
            self.fail("result", f"expected a completed run with result {expected!r}, last event is {last}")
            return
        result = _attrs(completed[0], "workflow_execution_completed_event_attributes").get("result")
        if result != expected:
            self.fail("result", f"result {result!r} != expected {expected!r}", completed[0].get("event_id"))
