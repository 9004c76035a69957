"""Continuations: a chain of workflow tasks in one completion writes what the normal path writes, or none of it."""

from __future__ import annotations

from typing import Any

from kronicle.engine.workflow import WorkflowOptions
from tests.unit.engine.workflow.harness import T0, Bench, attrs, command, schedule_activity

_WORKER = "worker-1"  # the identity of both paths' completions, so that histories compare equal


def _eager(activity_id: str, **fields: Any) -> dict[str, Any]:
    return schedule_activity(activity_id, request_eager_execution=True, **fields)


def _step(results: list[tuple[str, bytes]], commands: list[dict[str, Any]], started: int = 0) -> dict[str, Any]:
    return {
        "activity_results": [
            {"activity_id": activity_id, "started_time_ms": started, "result": [value]}
            for activity_id, value in results
        ],
        "started_time_ms": started,
        "commands": commands,
    }


def _complete(value: bytes) -> dict[str, Any]:
    return command("CompleteWorkflowExecution", result=[value])


def _without_times(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "event_time"} for e in events]


def _normal_sequence(b: Bench, n: int, *, eager: bool = False) -> None:
    """Run ``wf`` the normal way: n sequential activities a1..an, each result ``r<i>``, then complete with ``done``."""
    b.start("wf")
    for i in range(1, n + 1):
        b.complete_task("wf", [schedule_activity(f"a{i}", request_eager_execution=eager)])
        run_id = b.run("wf")["run_id"]
        value = {"workflow_id": "wf", "run_id": run_id, "scheduled_event_id": 0, "attempt": 1}
        b.send("CompleteActivityTask", {**value, "activity_id": f"a{i}", "identity": _WORKER, "result": [b"r%d" % i]})
    b.complete_task("wf", [_complete(b"done")])


def _chained_sequence(b: Bench, n: int) -> None:
    """The same workflow as ``_normal_sequence``, with everything after the start in one chained completion."""
    b.start("wf")
    steps = [_step([(f"a{i}", b"r%d" % i)], [_eager(f"a{i + 1}")]) for i in range(1, n)]
    steps.append(_step([(f"a{n}", b"r%d" % n)], [_complete(b"done")]))
    b.complete_task("wf", [_eager("a1")], continuations=steps)


def test_a_chain_of_ten_activities_writes_the_history_of_the_normal_path() -> None:
    normal, eager, chained = Bench(), Bench(), Bench()
    _normal_sequence(normal, 10)
    _normal_sequence(eager, 10, eager=True)
    _chained_sequence(chained, 10)
    assert chained.run("wf")["status"] == "COMPLETED"
    assert _without_times(chained.history("wf")) == _without_times(normal.history("wf"))
    assert _without_times(chained.history("wf")) == _without_times(eager.history("wf"))
    assert chained.handler.stats["rejected_continuation"] == 0
    # One workflow task (the first) and no activity task went out; one history batch for the whole chain.
    assert len(chained.workflow_tasks()) == 1
    assert chained.activity_tasks() == []
    assert len(chained.history_batches()) == 2
    assert not any(b"|act_" in t or b"|wft|" in t for t in chained.timer_ids())


def test_step_event_ids_follow_the_rule_the_worker_predicts() -> None:
    b = Bench()
    b.start("wf")
    two = [_eager("b1"), _eager("b2")]
    steps = [_step([("a1", b"1")], two), _step([("b1", b"2"), ("b2", b"3")], [_complete(b"done")])]
    b.complete_task("wf", [_eager("a1")], continuations=steps)
    events = b.history("wf")
    types = [e["event_type"] for e in events]
    s = 2  # the first task's WorkflowTaskScheduled
    # Completion of S: WTStarted S+1, WTCompleted S+2, one event per command from S+3.
    assert types[s : s + 3] == ["WorkflowTaskStarted", "WorkflowTaskCompleted", "ActivityTaskScheduled"]
    # Step i: Started + Completed per result (listed order), then WTScheduled S_i = previous last + 2*k + 1.
    s1 = s + 2 + 1 + 2 * 1 + 1
    assert types[s1 - 1] == "WorkflowTaskScheduled" and events[s1 - 1]["event_id"] == s1
    assert types[s1 : s1 + 4] == [
        "WorkflowTaskStarted",
        "WorkflowTaskCompleted",
        "ActivityTaskScheduled",
        "ActivityTaskScheduled",
    ]
    s2 = (s1 + 2 + 2) + 2 * 2 + 1
    assert events[s2 - 1]["event_type"] == "WorkflowTaskScheduled" and events[s2 - 1]["event_id"] == s2
    completed = [attrs(e) for e in events[s1 + 4 : s2 - 1] if e["event_type"] == "ActivityTaskCompleted"]
    assert [(c["scheduled_event_id"], c["result"]) for c in completed] == [(s1 + 3, [b"2"]), (s1 + 4, [b"3"])]
    assert types[-1] == "WorkflowExecutionCompleted"


def test_step_workflow_task_times_are_the_worker_step_times_clamped_and_never_go_back() -> None:
    b = Bench()
    b.start("wf")
    b.advance(1_000)  # engine now = T0 + 1000 when the completion arrives
    steps = [
        _step([("a1", b"1")], [_eager("a2")], started=T0 + 300),
        _step([("a2", b"2")], [_eager("a3")], started=T0 + 200),  # earlier than the step before: clamped up
        _step([("a3", b"3")], [_complete(b"done")], started=T0 + 5_000),  # in the future: clamped to now
    ]
    b.complete_task("wf", [_eager("a1")], continuations=steps, started_time_ms=T0 + 100)
    events = b.history("wf")
    started = [e["event_time"] for e in events if e["event_type"] == "WorkflowTaskStarted"]
    assert started == [T0 + 100, T0 + 300, T0 + 300, T0 + 1_000]
    times = [e["event_time"] for e in events]
    assert times == sorted(times)
    # The completion's own events carry its start time, a step's events its step time, not the engine's now.
    by_id = {e["event_id"]: (e["event_type"], e["event_time"]) for e in events}
    assert [by_id[i] for i in (4, 5)] == [("WorkflowTaskCompleted", T0 + 100), ("ActivityTaskScheduled", T0 + 100)]
    assert [by_id[i] for i in (6, 7, 8)] == [
        ("ActivityTaskStarted", T0 + 300),
        ("ActivityTaskCompleted", T0 + 300),
        ("WorkflowTaskScheduled", T0 + 300),
    ]


def test_a_signal_buffered_during_the_task_rejects_every_step_but_keeps_the_results() -> None:
    b = Bench()
    b.start("wf")
    b.send("SignalWorkflow", {"workflow_id": "wf", "signal_name": "hurry"})  # buffered: the task is outstanding
    steps = [_step([("a1", b"1")], [_eager("a2")]), _step([("a2", b"2")], [_complete(b"done")])]
    b.complete_task("wf", [_eager("a1")], continuations=steps)
    run = b.run("wf")
    assert b.handler.stats["rejected_continuation"] == 2
    assert run["status"] == "RUNNING"
    assert [a["activity_id"] for a in run["activities"].values()] == []  # a1 closed by its result, a2 never scheduled
    types = b.types("wf")
    assert "ActivityTaskCompleted" not in types  # buffered behind the dispatched task
    assert types[-2:] == ["WorkflowExecutionSignaled", "WorkflowTaskScheduled"]
    task = b.last_task("wf")
    assert task["scheduled_event_id"] == len(types)
    # The worker completes that task (seeing the signal): the buffered result goes into history after it.
    b.complete_task("wf", [])
    assert b.types("wf")[-3:] == ["ActivityTaskStarted", "ActivityTaskCompleted", "WorkflowTaskScheduled"]
    assert attrs(b.history("wf")[-2])["result"] == [b"1"]


def test_an_update_requested_during_the_task_rejects_the_steps_because_a_task_is_outstanding() -> None:
    b = Bench()
    b.start("wf")
    update = {"workflow_id": "wf", "update_id": "u1", "name": "rename", "reply_to": "replies"}
    b.send("UpdateWorkflow", update)  # nothing buffered: only a new task for the update
    steps = [_step([("a1", b"1")], [_complete(b"done")])]
    b.complete_task("wf", [_eager("a1")], continuations=steps)
    assert b.handler.stats["rejected_continuation"] == 1
    run = b.run("wf")
    assert run["status"] == "RUNNING"
    assert run["wft"] is not None
    assert "ActivityTaskCompleted" not in b.types("wf")  # the plain result waits in the buffer


def test_steps_after_a_closed_workflow_are_rejected() -> None:
    b = Bench()
    b.start("wf")
    b.complete_task("wf", [_eager("a1"), _complete(b"early")], continuations=[_step([("a1", b"1")], [])])
    assert b.handler.stats["rejected_continuation"] == 1
    assert b.run("wf")["status"] == "COMPLETED"
    assert b.types("wf")[-1] == "WorkflowExecutionCompleted"


def test_a_step_must_name_pending_eager_activities_each_once() -> None:
    for results in ([("zz", b"1")], [("a1", b"1"), ("a1", b"2")], [("n1", b"1")], []):
        b = Bench()
        b.start("wf")
        steps = [_step(results, [_complete(b"done")])]
        b.complete_task("wf", [_eager("a1"), schedule_activity("n1")], continuations=steps)
        assert b.handler.stats["rejected_continuation"] == 1, results
        assert b.run("wf")["status"] == "RUNNING", results
        assert "WorkflowExecutionCompleted" not in b.types("wf")


def test_a_step_result_of_a_retried_eager_activity_is_rejected_and_dropped() -> None:
    b = Bench()
    b.start("wf")
    b.complete_task("wf", [_eager("a1"), command("StartTimer", timer_id="t", start_to_fire_timeout_ms=12_000)])
    b.advance(10_000)  # a1's start-to-close timeout: attempt 2 after a 1 s backoff
    b.advance(2_000)  # a1 attempt 2 dispatched; the timer fires: a workflow task
    (retry,) = b.activity_tasks()
    assert retry["attempt"] == 2
    b.complete_task("wf", [], continuations=[_step([("a1", b"old")], [_complete(b"done")])])
    assert b.handler.stats["rejected_continuation"] == 1
    assert b.handler.stats["stale_activity_completion"] == 1
    assert b.run("wf")["activities"]["5"]["attempt"] == 2  # the running retry is untouched


def test_an_oversize_step_result_rejects_the_step_and_fails_the_activity_as_a_plain_result() -> None:
    b = Bench(WorkflowOptions(max_payload_bytes=100))
    b.start("wf")
    b.complete_task("wf", [_eager("a1")], continuations=[_step([("a1", b"x" * 101)], [_complete(b"done")])])
    assert b.handler.stats["rejected_continuation"] == 1
    events = b.history("wf")
    assert [e["event_type"] for e in events][-3:] == [
        "ActivityTaskStarted",
        "ActivityTaskFailed",
        "WorkflowTaskScheduled",
    ]
    assert attrs(events[-2])["failure"]["type"] == "PayloadSizeLimitExceeded"
    assert b.run("wf")["status"] == "RUNNING"


def test_a_bad_command_in_a_step_fails_that_task_like_a_normal_completion() -> None:
    bad = command("ScheduleActivityTask", activity_id="x", start_to_close_timeout_ms=1_000)  # no activity_type
    normal, chained = Bench(), Bench()
    normal.start("wf")
    normal.complete_task("wf", [_eager("a1")])
    run_id = normal.run("wf")["run_id"]
    ref = {"workflow_id": "wf", "run_id": run_id, "scheduled_event_id": 0, "attempt": 1, "activity_id": "a1"}
    normal.send("CompleteActivityTask", {**ref, "identity": _WORKER, "result": [b"1"]})
    normal.complete_task("wf", [bad])
    chained.start("wf")
    steps = [_step([("a1", b"1")], [bad]), _step([("a2", b"2")], [_complete(b"done")])]
    chained.complete_task("wf", [_eager("a1")], continuations=steps)
    assert _without_times(chained.history("wf")) == _without_times(normal.history("wf"))
    assert chained.types("wf")[-1] == "WorkflowTaskFailed"
    assert attrs(chained.history("wf")[-1])["cause"] == "BAD_SCHEDULE_ACTIVITY_ATTRIBUTES"
    assert chained.handler.stats["bad_workflow_task_completion"] == 1
    assert chained.handler.stats["rejected_continuation"] == 1  # the step after the failed one
    # The retry is dispatched as after any failed task: attempt 2, transient.
    retry, expected = chained.last_task("wf"), normal.last_task("wf")
    for field in ("scheduled_event_id", "attempt", "first_event_id"):
        assert retry[field] == expected[field], field
    assert retry["attempt"] == 2
    assert chained.run("wf")["status"] == "RUNNING"


def test_a_bad_command_in_the_completion_itself_rejects_every_step() -> None:
    b = Bench()
    b.start("wf")
    bad = command("ScheduleActivityTask", activity_id="x", start_to_close_timeout_ms=1_000)
    b.complete_task("wf", [_eager("a1"), bad], continuations=[_step([("a1", b"1")], [_complete(b"done")])])
    assert b.types("wf")[-1] == "WorkflowTaskFailed"
    assert b.run("wf")["activities"] == {}  # a1's scheduling was rolled back with the rest
    assert b.handler.stats["rejected_continuation"] == 1
    assert b.handler.stats["stale_activity_completion"] == 1


def test_an_oversize_command_in_a_step_fails_that_task() -> None:
    b = Bench(WorkflowOptions(max_payload_bytes=100))
    b.start("wf")
    b.complete_task("wf", [_eager("a1")], continuations=[_step([("a1", b"1")], [_complete(b"y" * 101)])])
    assert attrs(b.history("wf")[-1])["cause"] == "BAD_COMPLETE_WORKFLOW_EXECUTION_ATTRIBUTES"
    assert b.run("wf")["status"] == "RUNNING"


def test_a_stale_chained_completion_applies_nothing_but_still_counts_its_steps() -> None:
    b = Bench()
    b.start("wf")
    task = b.last_task("wf")
    steps = [_step([("a1", b"1")], [_complete(b"done")])]
    b.complete_task("wf", [_eager("a1")], continuations=steps, task=task)
    before = b.snapshot()
    b.complete_task("wf", [_eager("a1")], continuations=steps, task=task)  # delivered twice
    assert b.snapshot() == before
    assert b.handler.stats["stale_workflow_task_completion"] == 1
    assert b.handler.stats["rejected_continuation"] == 1


def test_late_results_of_a_chain_that_ended_early_close_their_activities_by_id() -> None:
    b = Bench()
    b.start("wf")
    b.complete_task("wf", [_eager("a1")], continuations=[_step([("a1", b"1")], [_eager("a2"), _eager("a3")])])
    run = b.run("wf")
    assert sorted(a["activity_id"] for a in run["activities"].values()) == ["a2", "a3"]
    assert run["wft"] is None  # nothing to do until a result arrives
    ref = {"workflow_id": "wf", "run_id": run["run_id"], "scheduled_event_id": 0, "attempt": 1}
    b.send("CompleteActivityTask", {**ref, "activity_id": "a3", "result": [b"3"]})
    task = b.last_task("wf")
    assert task["first_event_id"] == 9  # the step's WorkflowTaskStarted: the worker's cache ends just before
    assert b.types("wf")[-3:] == ["ActivityTaskStarted", "ActivityTaskCompleted", "WorkflowTaskScheduled"]


def test_defensive_rules_refuse_a_step_that_the_wire_cannot_produce_today() -> None:
    # A completion always leaves either a task outstanding or an empty buffer and never a closed run
    # with pending activities; these rules guard the invariant rather than a reachable input.
    b = Bench()
    b.start("wf")
    b.complete_task("wf", [_eager("a1")])
    run = b.run("wf")
    step = _step([("a1", b"1")], [])
    refused = b.handler._step_refused
    assert refused(run, step) == ""
    assert refused({**run, "status": "COMPLETED"}, step) == "closed"
    assert refused({**run, "buffer": [["WorkflowExecutionSignaled", {}, T0]]}, step) == "events buffered"
    assert refused({**run, "wft_backoff": True}, step) == "workflow task outstanding"
    backoff = {**run, "activities": {"5": {**run["activities"]["5"], "state": "BACKOFF"}}}
    assert refused(backoff, step) == "not a pending eager attempt"
    assert refused(None, step) == "closed"


def test_a_stale_completion_still_delivers_the_results_of_earlier_eager_activities() -> None:
    b = Bench()
    b.start("wf")
    b.complete_task("wf", [_eager("a1", start_to_close_timeout_ms=60_000)])
    b.send("SignalWorkflow", {"workflow_id": "wf", "signal_name": "go"})
    late = b.last_task("wf")
    b.advance(10_000)  # that task times out; its retry is dispatched
    assert b.last_task("wf")["attempt"] == 2
    b.complete_task("wf", [], task=late, continuations=[_step([("a1", b"1")], [_complete(b"done")])])
    assert b.handler.stats["stale_workflow_task_completion"] == 1
    assert b.handler.stats["rejected_continuation"] == 1
    run = b.run("wf")
    assert run["activities"] == {} and run["status"] == "RUNNING"  # a1 closed as a plain result; no command applied
