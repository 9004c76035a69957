"""Eager activities and chained workflow tasks, the worker's half (see docs/worker.md, "Eager activities").

When a completion schedules an activity this worker can run, the worker asks
the engine not to dispatch it (``request_eager_execution``) and starts it
itself at once. It then holds the completion briefly; if the activities end
well within the hold and the completion scheduled nothing else, it applies
their results to its cached run exactly as the engine will write them and runs
the next activation, whose commands become a continuation step of the same
``CompleteWorkflowTask``. The engine re-checks every step and writes the
history the normal path would have written.

This module holds what needs no runner state: who may run eagerly
(:class:`EagerActivities`), the ``ActivityTask``-shaped datum of an eager
attempt, and the events a step will write (:func:`speculative_events`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from kronicle.engine.workflow.schema_gen import attributes_field
from kronicle.worker._activities import ActivityRunner, EagerActivity

__all__ = [
    "MAX_CHAIN_BYTES",
    "MAX_CHAIN_STEPS",
    "MAX_EAGER_PER_COMPLETION",
    "EagerActivities",
    "approx_size",
    "eager_task",
    "speculative_events",
]

MAX_EAGER_PER_COMPLETION = 3
"""Eager activities per completion (or continuation step), Temporal's cap."""
MAX_CHAIN_STEPS = 100
"""Continuation steps in one CompleteWorkflowTask."""
MAX_CHAIN_BYTES = 256 * 1024
"""A chain stops growing once its results and commands carry this many bytes (the broker takes 1 MB)."""

_SCHEDULE = attributes_field("ScheduleActivityTask", "command")


class EagerActivities:
    """Starts activities for completions of this worker's own workflow tasks.

    Args:
        task_queue: The worker's task queue (only activities for it run eagerly).
        activities: The worker's activity runner.
        acquire_slot: Takes an activity slot, False if none is free (eager attempts count
            against ``max_concurrent_activities``).
        release_slot: Gives a slot back.
        hold: How long a completion waits for its eager activities (0: send at once).
        on_start: Called with each started attempt (the worker waits for them at shutdown).
    """

    def __init__(
        self,
        *,
        task_queue: str,
        activities: ActivityRunner,
        acquire_slot: Callable[[], bool],
        release_slot: Callable[[], None],
        hold: timedelta,
        on_start: Callable[[EagerActivity], None] | None = None,
    ) -> None:
        self.task_queue = task_queue
        self._activities = activities
        self._acquire = acquire_slot
        self._release = release_slot
        self.hold = max(0.0, hold.total_seconds())
        """The hold in seconds."""
        self._on_start = on_start

    def try_start(
        self, workflow: Mapping[str, Any], command: Mapping[str, Any], predicted_scheduled_event_id: int
    ) -> EagerActivity | None:
        """Start ``command`` (a ScheduleActivityTask ``WorkerCommand`` datum) here if it is eligible.

        Eligible: for this task queue, of a registered type, and a slot is free. On success the
        command is marked ``request_eager_execution``.

        Args:
            workflow: The workflow task (workflow id, run id, type).
            command: The command datum; its attributes are updated in place.
            predicted_scheduled_event_id: The ActivityTaskScheduled id the command will get.
        """
        if command.get("command_type") != "ScheduleActivityTask":
            return None
        attrs: dict[str, Any] = command[_SCHEDULE]
        if attrs["task_queue"] != self.task_queue or not self._activities.has_activity(str(attrs["activity_type"])):
            return None
        if not self._acquire():
            return None
        try:
            eager = self._activities.start_eager(eager_task(workflow, attrs), predicted_scheduled_event_id)
        except BaseException:
            self._release()
            raise
        assert eager.runner is not None
        eager.runner.add_done_callback(lambda _: self._release())
        attrs["request_eager_execution"] = True
        if self._on_start is not None:
            self._on_start(eager)
        return eager


def eager_task(workflow: Mapping[str, Any], attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``ActivityTask`` datum the engine would dispatch for attempt 1 of ``attrs`` (times: now).

    Timeouts are normalised as the engine does (start-to-close defaults to and is capped by
    schedule-to-close); schedule-to-start does not apply, the attempt has started.
    """
    now = int(time.time() * 1000)
    s2c = int(attrs.get("schedule_to_close_timeout_ms") or 0)
    stc = int(attrs.get("start_to_close_timeout_ms") or 0) or s2c
    if s2c and stc > s2c:
        stc = s2c
    return {
        "workflow_id": workflow["workflow_id"],
        "run_id": workflow["run_id"],
        "scheduled_event_id": 0,
        "attempt": 1,
        "workflow_type": workflow.get("workflow_type") or "",
        "activity_id": attrs["activity_id"],
        "activity_type": attrs["activity_type"],
        "task_queue": attrs["task_queue"],
        "input": attrs.get("input") or [],
        "header": attrs.get("header") or {},
        "scheduled_time_ms": now,
        "current_attempt_scheduled_time_ms": now,
        "schedule_to_close_timeout_ms": s2c,
        "schedule_to_start_timeout_ms": 0,
        "start_to_close_timeout_ms": stc,
        "heartbeat_timeout_ms": int(attrs.get("heartbeat_timeout_ms") or 0),
        "heartbeat_details": [],
    }


def _event(event_id: int, event_type: str, time_ms: int, attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "event_time": time_ms,
        attributes_field(event_type): attributes,
    }


def speculative_events(
    scheduled_event_id: int,
    time_ms: int,
    commands: Sequence[Mapping[str, Any]],
    results: Sequence[tuple[int, Mapping[str, Any]]],
) -> list[dict[str, Any]]:
    """The events the engine writes when it accepts a step that completes task ``scheduled_event_id``.

    They are the task's WorkflowTaskStarted and WorkflowTaskCompleted, an ActivityTaskScheduled
    per command (all ScheduleActivityTask), ActivityTaskStarted + ActivityTaskCompleted per
    result (in order), then the WorkflowTaskScheduled of the next step, numbered on from the
    task. Only the fields the history adapter reads are filled; ``time_ms`` stamps them all
    (the adapter takes a task's time from its WorkflowTaskStarted only).

    Args:
        scheduled_event_id: The completed task's WorkflowTaskScheduled id.
        time_ms: Event time.
        commands: The task's ScheduleActivityTask command datums.
        results: ``(scheduled event id, CompleteActivityTask datum)`` per eager activity.
    """
    started, completed = scheduled_event_id + 1, scheduled_event_id + 2
    events = [
        _event(started, "WorkflowTaskStarted", time_ms, {"scheduled_event_id": scheduled_event_id}),
        _event(
            completed,
            "WorkflowTaskCompleted",
            time_ms,
            {"scheduled_event_id": scheduled_event_id, "started_event_id": started},
        ),
    ]
    next_id = completed + 1
    for command in commands:
        attrs = command[_SCHEDULE]
        events.append(
            _event(
                next_id,
                "ActivityTaskScheduled",
                time_ms,
                {
                    "activity_id": attrs["activity_id"],
                    "activity_type": attrs["activity_type"],
                    "workflow_task_completed_event_id": completed,
                },
            )
        )
        next_id += 1
    for scheduled, datum in results:
        events.append(_event(next_id, "ActivityTaskStarted", time_ms, {"scheduled_event_id": scheduled}))
        events.append(
            _event(
                next_id + 1,
                "ActivityTaskCompleted",
                time_ms,
                {"scheduled_event_id": scheduled, "started_event_id": next_id, "result": datum["result"]},
            )
        )
        next_id += 2
    events.append(_event(next_id, "WorkflowTaskScheduled", time_ms, {}))
    return events


def approx_size(value: Any) -> int:
    """Roughly the bytes ``value`` takes on the wire (bytes and strings counted, a little per item)."""
    if isinstance(value, (bytes, str)):
        return len(value) + 2
    if isinstance(value, Mapping):
        return sum(approx_size(v) + 2 for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(approx_size(v) for v in value) + 2
    return 8
