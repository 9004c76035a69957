"""History events are stored one chunk per command and run; stores of the one-event-per-key layout still read."""

from __future__ import annotations

import pytest

from kronicle.engine.workflow._events import (
    EVENTS_PER_CHUNK,
    chunk_events,
    encode_chunk,
    iter_events,
    read_event,
)
from kronicle.engine.workflow._state import event_key
from tests.unit.engine.workflow.harness import CODEC, Bench, command, schedule_activity


def _event_keys(b: Bench, run_id: str) -> list[int]:
    """Event ids of the run's stored wf_events keys, in order."""
    prefix = run_id.encode()
    return sorted(
        int.from_bytes(k[len(prefix) :], "big") for (cf, k) in b.ctx.state if cf == "wf_events" and k.startswith(prefix)
    )


def _to_per_event_layout(b: Bench, run_id: str) -> None:
    """Rewrite the run's stored chunks as the older layout: one event's bytes per key."""
    for first in _event_keys(b, run_id):
        raw = b.ctx.state.pop(("wf_events", event_key(run_id, first)))
        for i, event in enumerate(chunk_events(raw)):
            b.ctx.state[("wf_events", event_key(run_id, first + i))] = event


def test_chunk_encoding_round_trips_and_rejects_foreign_values() -> None:
    events = [b"\x00\x00\x00\x00\x01abc", b"\x00\x00\x00\x00\x01", b"\x00" + b"x" * 300]
    assert chunk_events(encode_chunk(events)) == events
    assert chunk_events(encode_chunk([])) == []
    # A value of the older layout is one event, as it is.
    assert chunk_events(events[0]) == [events[0]]
    with pytest.raises(ValueError, match="not a chunk"):
        chunk_events(b"\x07junk")
    with pytest.raises(ValueError, match="truncated"):
        chunk_events(encode_chunk(events)[:-1])


def test_each_command_stores_the_events_it_wrote_as_one_chunk() -> None:
    b = Bench()
    run_id = b.start("wf")
    assert _event_keys(b, run_id) == [1]
    b.complete_task("wf", [schedule_activity()])
    assert _event_keys(b, run_id) == [1, 3]
    assert [e["event_id"] for e in b.history("wf")] == [1, 2, 3, 4, 5]
    # The history batches on the topic and the stored chunks hold the same events.
    batches = [v["events"] for v in b.history_batches()]
    assert [e for batch in batches for e in batch] == b.history("wf")


def test_a_large_write_is_split_into_bounded_chunks_and_read_from_any_event() -> None:
    b = Bench()
    run_id = b.start("wf")
    n = EVENTS_PER_CHUNK + 10
    b.complete_task("wf", [schedule_activity(f"a{i}") for i in range(n)])
    # WorkflowTaskStarted (3), WorkflowTaskCompleted, then n ActivityTaskScheduled: 2 + n events from 3.
    assert _event_keys(b, run_id) == [1, 3, 3 + EVENTS_PER_CHUNK]
    history = b.history("wf")
    assert [e["event_id"] for e in history] == list(range(1, 5 + n))
    for first in (2, 3, 4, 3 + EVENTS_PER_CHUNK - 1, 3 + EVENTS_PER_CHUNK, 4 + n):
        got = [event_id for event_id, _ in iter_events(b.get, run_id, first)]
        assert got == list(range(first, 5 + n)), first
    raw = read_event(b.get, run_id, 3 + EVENTS_PER_CHUNK + 1)
    assert raw is not None and CODEC.decode(raw)[1] == history[3 + EVENTS_PER_CHUNK]
    assert read_event(b.get, run_id, 5 + n) is None
    assert read_event(b.get, "no-such-run", 1) is None


def test_a_run_stored_one_event_per_key_goes_on_with_chunks_and_reads_as_one_history() -> None:
    b = Bench()
    run_id = b.start("wf")
    b.complete_task("wf", [schedule_activity()])
    before = b.history("wf")
    _to_per_event_layout(b, run_id)
    assert _event_keys(b, run_id) == [1, 2, 3, 4, 5]
    assert b.history("wf") == before
    task = b.activity_tasks()[-1]
    b.send(
        "CompleteActivityTask",
        {
            "workflow_id": "wf",
            "run_id": run_id,
            "scheduled_event_id": task["scheduled_event_id"],
            "attempt": 1,
            "result": [b"r"],
        },
    )
    assert _event_keys(b, run_id) == [1, 2, 3, 4, 5, 6]
    history = b.history("wf")
    assert [e["event_id"] for e in history] == list(range(1, 9))
    assert history[:5] == before
    # The workflow task carries the events since the last completed task, across both layouts.
    task_history = b.last_task("wf")["history"]
    assert [e["event_id"] for e in task_history] == [3, 4, 5, 6, 7, 8]
    assert task_history == history[2:]


def test_purging_a_run_deletes_every_chunk_of_both_layouts_and_nothing_else() -> None:
    b = Bench()
    run_id = b.start("wf")
    b.complete_task("wf", [schedule_activity()])
    _to_per_event_layout(b, run_id)
    task = b.activity_tasks()[-1]
    b.send(
        "CompleteActivityTask",
        {"workflow_id": "wf", "run_id": run_id, "scheduled_event_id": task["scheduled_event_id"], "attempt": 1},
    )
    b.complete_task("wf", [command("CompleteWorkflowExecution")])
    assert _event_keys(b, run_id) == [1, 2, 3, 4, 5, 6, 9]
    deleted: list[tuple[str, bytes]] = []
    delete = b.ctx.delete

    def recording_delete(cf: str, key: bytes) -> None:
        deleted.append((cf, key))
        delete(cf, key)

    b.ctx.delete = recording_delete  # type: ignore[method-assign]
    b.advance(8 * 24 * 3600 * 1000)
    assert _event_keys(b, run_id) == []
    assert [k for k in b.ctx.state if k[0].startswith("wf_")] == []
    # One tombstone per stored chunk, not one per event id.
    assert sorted(key for cf, key in deleted if cf == "wf_events") == [
        event_key(run_id, i) for i in (1, 2, 3, 4, 5, 6, 9)
    ]


def test_the_run_state_names_its_last_chunk_so_the_closing_event_is_one_read() -> None:
    b = Bench()
    run_id = b.start("wf")
    assert b.run("wf")["last_chunk"] == 1
    n = EVENTS_PER_CHUNK + 10
    b.complete_task("wf", [*(schedule_activity(f"a{i}") for i in range(n)), command("CompleteWorkflowExecution")])
    run = b.run("wf")
    assert run["status"] == "COMPLETED"
    # The closing write was split: the hint is where its last piece starts.
    assert run["last_chunk"] == 3 + EVENTS_PER_CHUNK == _event_keys(b, run_id)[-1]
    history = b.history("wf")
    reads: list[bytes] = []

    def counting_get(cf: str, key: bytes) -> bytes | None:
        reads.append(key)
        return b.get(cf, key)

    closing = run["next_event_id"] - 1
    raw = read_event(counting_get, run_id, closing, run["last_chunk"])
    assert raw is not None and CODEC.decode(raw)[1] == history[-1]
    assert reads == [event_key(run_id, run["last_chunk"])]
    # Without the hint the same event costs a probe per absent key before its chunk.
    reads.clear()
    assert read_event(counting_get, run_id, closing) == raw
    assert len(reads) == closing - run["last_chunk"] + 1 > 1
    # The hint changes no answer: every start of every read, and past the end.
    for first in range(1, closing + 2):
        hinted = list(iter_events(b.get, run_id, first, run["last_chunk"]))
        assert hinted == list(iter_events(b.get, run_id, first)), first
        assert read_event(b.get, run_id, first, run["last_chunk"]) == read_event(b.get, run_id, first)


def test_a_hint_that_names_no_stored_chunk_or_a_later_event_falls_back_to_probing() -> None:
    b = Bench()
    run_id = b.start("wf")
    b.complete_task("wf", [schedule_activity()])
    history = b.history("wf")
    assert _event_keys(b, run_id) == [1, 3]
    # 0: no hint (a state written before the field); 2 and 4: no chunk starts there; 99: after every event.
    for hint in (0, 2, 4, 99):
        assert [CODEC.decode(raw)[1] for _, raw in iter_events(b.get, run_id, 1, hint)] == history, hint
        for event_id in range(1, 6):
            raw = read_event(b.get, run_id, event_id, hint)
            assert raw is not None and CODEC.decode(raw)[1] == history[event_id - 1], (hint, event_id)
        assert read_event(b.get, run_id, 6, hint) is None
    # A run stored one event per key by an older build reads the same with the hint a new write sets.
    _to_per_event_layout(b, run_id)
    assert [CODEC.decode(raw)[1] for _, raw in iter_events(b.get, run_id, 1, 5)] == history
