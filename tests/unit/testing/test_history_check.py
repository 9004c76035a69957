"""history_check: a good history passes, and each invariant fails on a history that breaks it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kronicle.testing.history_check import HistoryCheckError, check_histories


def ev(event_type: str, attrs_field: str | None = None, **attrs: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": 0, "event_time": 0, "event_type": event_type, "version": 0}
    if attrs_field is not None:
        event[attrs_field] = attrs
    return event


def numbered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for index, event in enumerate(events):
        event["event_id"] = index + 1
    return events


def good_history() -> list[dict[str, Any]]:
    """Start, activity, signal, timer, complete: what the scripted chaos workflow writes."""
    return numbered(
        [
            ev("WorkflowExecutionStarted", "workflow_execution_started_event_attributes", input=[b"3"]),
            ev("WorkflowTaskScheduled", "workflow_task_scheduled_event_attributes", attempt=1),  # 2
            ev("WorkflowTaskStarted", "workflow_task_started_event_attributes", scheduled_event_id=2),  # 3
            ev("WorkflowTaskCompleted", "workflow_task_completed_event_attributes", scheduled_event_id=2,
               started_event_id=3),  # 4
            ev("ActivityTaskScheduled", "activity_task_scheduled_event_attributes", activity_id="a"),  # 5
            ev("WorkflowExecutionSignaled", "workflow_execution_signaled_event_attributes", request_id="s1",
               input=[b"1"]),  # 6
            ev("WorkflowTaskScheduled", "workflow_task_scheduled_event_attributes", attempt=1),  # 7
            ev("ActivityTaskStarted", "activity_task_started_event_attributes", scheduled_event_id=5),  # 8
            ev("ActivityTaskCompleted", "activity_task_completed_event_attributes", scheduled_event_id=5,
               started_event_id=8, result=[b"6"]),  # 9
            ev("WorkflowTaskStarted", "workflow_task_started_event_attributes", scheduled_event_id=7),  # 10
            ev("WorkflowTaskCompleted", "workflow_task_completed_event_attributes", scheduled_event_id=7,
               started_event_id=10),  # 11
            ev("TimerStarted", "timer_started_event_attributes", timer_id="t"),  # 12
            ev("WorkflowTaskScheduled", "workflow_task_scheduled_event_attributes", attempt=1),  # 13
            ev("WorkflowTaskTimedOut", "workflow_task_timed_out_event_attributes", scheduled_event_id=13,
               started_event_id=0),  # 14
            ev("TimerFired", "timer_fired_event_attributes", timer_id="t", started_event_id=12),  # 15
            ev("WorkflowTaskScheduled", "workflow_task_scheduled_event_attributes", attempt=2),  # 16
            ev("WorkflowTaskStarted", "workflow_task_started_event_attributes", scheduled_event_id=16),  # 17
            ev("WorkflowTaskCompleted", "workflow_task_completed_event_attributes", scheduled_event_id=16,
               started_event_id=17),  # 18
            ev("WorkflowExecutionCompleted", "workflow_execution_completed_event_attributes", result=[b"7"]),  # 19
        ]
    )  # fmt: skip


def invariants(histories: dict[str, list[dict[str, Any]]], **kwargs: Any) -> set[str]:
    return set(check_histories(histories, **kwargs).by_invariant())


def test_a_good_history_passes_every_check() -> None:
    report = check_histories({"wf": good_history()}, {"wf": [b"7"]}, expected_signals={"wf": ["s1"]})
    assert report.ok, report.summary()
    assert (report.runs, report.closed, report.events, report.signals) == (1, 1, 19, 1)
    report.raise_if_failed()
    assert "all invariants hold" in report.summary()


def test_a_gap_in_event_ids_is_reported_once() -> None:
    history = good_history()
    del history[5]  # a lost batch: ids jump 5 -> 7
    report = check_histories({"wf": history})
    assert [p.invariant for p in report.problems if p.invariant == "event_ids"] == ["event_ids"]
    assert report.problems[0].event_id == 7


def test_a_repeated_batch_breaks_dense_ids() -> None:
    history = good_history()
    history.insert(5, copy.deepcopy(history[4]))  # the same event written twice
    assert "event_ids" in invariants({"wf": history})


def test_a_history_must_start_with_workflow_execution_started() -> None:
    assert "first_event" in invariants({"wf": numbered(good_history()[1:])})
    assert "first_event" in invariants({"wf": []})


def test_two_closing_events_are_reported() -> None:
    history = good_history()
    history.append(ev("WorkflowExecutionFailed", "workflow_execution_failed_event_attributes"))
    assert "closing" in invariants({"wf": numbered(history)})


def test_a_closing_event_that_is_not_last_is_reported() -> None:
    history = good_history()
    history.append(ev("WorkflowTaskScheduled", "workflow_task_scheduled_event_attributes"))
    report = check_histories({"wf": numbered(history)})
    assert any(p.invariant == "closing" and "not the last" in p.detail for p in report.problems)


def test_an_open_run_is_reported_only_when_closing_is_required() -> None:
    history = good_history()[:-1]
    assert "closing" in invariants({"wf": history})
    assert invariants({"wf": history}, require_closed=False) == set()


def test_an_activity_closed_twice_is_reported() -> None:
    history = good_history()
    history.insert(9, copy.deepcopy(history[8]))
    assert "activity" in invariants({"wf": numbered(history)})


def test_an_activity_started_twice_or_never_scheduled_is_reported() -> None:
    twice = good_history()
    twice.insert(8, copy.deepcopy(twice[7]))
    assert "activity" in invariants({"wf": numbered(twice)})
    unscheduled = good_history()
    unscheduled[8]["activity_task_completed_event_attributes"]["scheduled_event_id"] = 99
    assert "activity" in invariants({"wf": unscheduled})


def test_an_activity_id_scheduled_again_while_open_is_reported() -> None:
    history = good_history()
    history.insert(5, copy.deepcopy(history[4]))  # the same ScheduleActivityTask applied twice
    report = check_histories({"wf": numbered(history)})
    assert any(p.invariant == "activity" and "scheduled again" in p.detail for p in report.problems)


def test_a_timer_fired_twice_or_never_started_is_reported() -> None:
    twice = good_history()
    twice.insert(15, copy.deepcopy(twice[14]))
    assert "timer" in invariants({"wf": numbered(twice)})
    unstarted = good_history()
    unstarted[14]["timer_fired_event_attributes"]["started_event_id"] = 4
    assert "timer" in invariants({"wf": unstarted})


def test_a_task_started_that_is_not_outstanding_is_reported() -> None:
    history = good_history()
    history[9]["workflow_task_started_event_attributes"]["scheduled_event_id"] = 2
    assert "workflow_task" in invariants({"wf": history})


def test_a_completion_that_does_not_follow_its_start_is_reported() -> None:
    history = good_history()
    history[3]["workflow_task_completed_event_attributes"]["started_event_id"] = 2
    assert "workflow_task" in invariants({"wf": history})


def test_a_task_scheduled_while_another_is_outstanding_is_reported() -> None:
    history = good_history()
    history.insert(3, ev("WorkflowTaskScheduled", "workflow_task_scheduled_event_attributes", attempt=1))
    assert "workflow_task" in invariants({"wf": numbered(history)})


def test_a_timeout_of_a_task_that_is_not_outstanding_is_reported() -> None:
    history = good_history()
    history[13]["workflow_task_timed_out_event_attributes"]["scheduled_event_id"] = 7
    assert "workflow_task" in invariants({"wf": history})


def test_a_signal_applied_twice_is_reported() -> None:
    history = good_history()
    history.insert(6, copy.deepcopy(history[5]))
    report = check_histories({"wf": numbered(history)})
    assert any(p.invariant == "signal" and "'s1'" in p.detail for p in report.problems)


def test_expected_signals_must_each_be_applied_and_no_others() -> None:
    assert "signal" in invariants({"wf": good_history()}, expected_signals={"wf": ["s1", "s2"]})
    assert "signal" in invariants({"wf": good_history()}, expected_signals={"wf": []})


def test_a_wrong_result_is_reported() -> None:
    assert "result" in invariants({"wf": good_history()}, expected_results={"wf": [b"8"]})


def test_an_expected_result_of_a_run_that_did_not_complete_is_reported() -> None:
    history = good_history()
    history[-1] = ev("WorkflowExecutionFailed", "workflow_execution_failed_event_attributes")
    assert "result" in invariants({"wf": numbered(history)}, expected_results={"wf": [b"7"]})


def test_an_expected_run_without_history_is_missing() -> None:
    assert invariants({}, expected_results={"wf": [b"7"]}) == {"missing"}


def test_the_summary_names_the_run_invariant_and_event_and_raises() -> None:
    bad = good_history()
    del bad[5]
    report = check_histories({"good": good_history(), "bad": bad}, {"good": [b"7"]})
    summary = report.summary()
    assert "2 runs (2 closed)" in summary
    assert "bad: [event_ids] @event 7" in summary
    assert "good:" not in summary
    with pytest.raises(HistoryCheckError, match="event_ids"):
        report.raise_if_failed()


def test_the_summary_is_limited_but_counts_everything() -> None:
    histories = {f"wf{i}": good_history()[:-1] for i in range(30)}
    report = check_histories(histories)
    assert len(report.problems) == 30
    assert "... and 10 more" in report.summary(limit=20)
