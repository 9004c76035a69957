"""Eager activities: no ActivityTask for attempt 1, retries through the queue, results by activity id."""

from __future__ import annotations

from typing import Any

from tests.unit.engine.workflow.harness import T0, Bench, attrs, command, failure, schedule_activity


def _eager(b: Bench, **fields: Any) -> str:
    """Start ``wf`` and complete its first task with one eager activity; returns the run id."""
    run_id = b.start("wf")
    b.complete_task("wf", [schedule_activity("a1", request_eager_execution=True, **fields)])
    return run_id


def _by_id(run_id: str, **fields: Any) -> dict[str, Any]:
    """The attempt reference of an activity result sent by activity id (scheduled_event_id 0)."""
    return {"workflow_id": "wf", "run_id": run_id, "scheduled_event_id": 0, "attempt": 1, "activity_id": "a1", **fields}


def _timer(run_id: str, kind: str, sid: int = 5) -> bytes:
    return f"wf|{run_id}|{kind}|{sid}".encode()


def test_eager_schedule_writes_the_same_event_but_sends_no_activity_task() -> None:
    eager, normal = Bench(), Bench()
    _eager(eager, heartbeat_timeout_ms=3_000)
    normal.start("wf")
    normal.complete_task("wf", [schedule_activity("a1", heartbeat_timeout_ms=3_000)])
    assert eager.activity_tasks() == []
    assert len(normal.activity_tasks()) == 1
    assert eager.history("wf") == normal.history("wf")
    act = eager.run("wf")["activities"]["5"]
    assert (act["state"], act["attempt"], act["eager"]) == ("DISPATCHED", 1, True)


def test_eager_attempt_arms_start_to_close_heartbeat_and_schedule_to_close_but_not_schedule_to_start() -> None:
    b = Bench()
    run_id = _eager(
        b,
        heartbeat_timeout_ms=3_000,
        schedule_to_start_timeout_ms=1_000,
        schedule_to_close_timeout_ms=60_000,
    )
    timers = b.timer_ids()
    assert {_timer(run_id, "act_stc"), _timer(run_id, "act_hb"), _timer(run_id, "act_s2c")} <= timers
    assert _timer(run_id, "act_s2s") not in timers
    b.advance(1_500)  # past the schedule-to-start timeout: an eager attempt has started
    assert "5" in b.run("wf")["activities"]


def test_a_start_to_close_timeout_of_an_eager_attempt_dispatches_attempt_2_through_the_queue() -> None:
    b = Bench()
    _eager(b, retry_policy={"initial_interval_ms": 1_000})
    b.advance(10_000)  # start_to_close_timeout_ms of the harness's activity
    assert b.activity_tasks() == []  # backing off
    b.advance(1_000)
    (task,) = b.activity_tasks()
    assert (task["scheduled_event_id"], task["attempt"], task["activity_id"]) == (5, 2, "a1")
    b.activity_result("CompleteActivityTask", task, result=[b"late"])
    events = b.history("wf")
    assert [e["event_type"] for e in events][5:] == [
        "ActivityTaskStarted",
        "ActivityTaskCompleted",
        "WorkflowTaskScheduled",
    ]
    assert attrs(events[5])["attempt"] == 2
    assert attrs(events[5])["last_failure"]["timeout_type"] == "START_TO_CLOSE"


def test_a_heartbeat_timeout_of_an_eager_attempt_retries_it_normally() -> None:
    b = Bench()
    _eager(b, heartbeat_timeout_ms=2_000)
    b.advance(2_000 + 1_000)
    (task,) = b.activity_tasks()
    assert task["attempt"] == 2


def test_a_completion_by_activity_id_closes_the_eager_attempt() -> None:
    b = Bench()
    run_id = _eager(b)
    b.advance(300)
    b.send(
        "CompleteActivityTask",
        {**_by_id(run_id), "started_time_ms": T0 + 100, "identity": "w", "result": [b"hi"]},
    )
    events = b.history("wf")
    assert [e["event_type"] for e in events][5:] == [
        "ActivityTaskStarted",
        "ActivityTaskCompleted",
        "WorkflowTaskScheduled",
    ]
    assert attrs(events[6])["result"] == [b"hi"]
    assert attrs(events[6])["scheduled_event_id"] == 5
    assert b.run("wf")["activities"] == {}
    assert not any(b"|act_" in t for t in b.timer_ids())


def test_a_failure_by_activity_id_retries_through_the_queue() -> None:
    b = Bench()
    run_id = _eager(b)
    b.send("FailActivityTask", {**_by_id(run_id), "failure": failure("first")})
    b.advance(1_000)
    (task,) = b.activity_tasks()
    assert task["attempt"] == 2
    assert b.run("wf")["activities"]["5"]["last_failure"]["message"] == "first"


def test_results_by_activity_id_must_still_name_the_current_attempt() -> None:
    b = Bench()
    run_id = _eager(b)
    before = b.snapshot()
    b.send("CompleteActivityTask", _by_id(run_id, attempt=2))
    b.send("CompleteActivityTask", _by_id(run_id, activity_id="nope"))
    b.send("CompleteActivityTask", _by_id(run_id, activity_id=""))
    b.send("FailActivityTask", {**_by_id(run_id, attempt=3), "failure": failure()})
    assert b.snapshot() == before
    assert b.handler.stats["stale_activity_completion"] == 3
    assert b.handler.stats["stale_activity_failure"] == 1


def test_a_nonzero_scheduled_event_id_wins_over_the_activity_id() -> None:
    b = Bench()
    run_id = _eager(b)
    before = b.snapshot()
    b.send("CompleteActivityTask", _by_id(run_id, scheduled_event_id=4))  # a1 is 5: stale, whatever the id says
    assert b.snapshot() == before


def test_a_heartbeat_by_activity_id_is_answered_with_the_resolved_attempt() -> None:
    b = Bench()
    run_id = _eager(b, heartbeat_timeout_ms=2_000)
    b.send("HeartbeatActivityTask", {**_by_id(run_id), "details": [b"d1"], "reply_to": "hb"})
    assert b.records("hb") == []  # no news: no answer
    assert b.run("wf")["activities"]["5"]["heartbeat_details"] == [b"d1"]
    # The workflow asks to cancel it: the next heartbeat is answered by the attempt's scheduled event id.
    b.send("SignalWorkflow", {"workflow_id": "wf", "signal_name": "stop"})
    b.complete_task("wf", [command("RequestCancelActivityTask", scheduled_event_id=5)])
    b.send("HeartbeatActivityTask", {**_by_id(run_id), "reply_to": "hb"})
    replies = [v for _, v in b.records("hb")]
    assert replies[-1]["cancel_requested"] is True
    assert (replies[-1]["scheduled_event_id"], replies[-1]["attempt"]) == (5, 1)


def test_a_heartbeat_for_an_unknown_activity_id_is_answered_not_found_as_sent() -> None:
    b = Bench()
    run_id = _eager(b)
    b.send("HeartbeatActivityTask", {**_by_id(run_id, activity_id="zz"), "reply_to": "hb"})
    ((_, reply),) = b.records("hb")
    assert reply["not_found"] is True
    assert reply["scheduled_event_id"] == 0
    assert b.handler.stats["stale_activity_heartbeat"] == 1
