"""Timers armed with ``set_timer`` (the handler remembers their due time) keep no timer-id index."""

from __future__ import annotations

from kronicle.engine.context import MemoryContext, timer_key
from tests.unit.engine.test_batch import Partition, add


def _families(ctx: MemoryContext) -> dict[str, set[bytes]]:
    out: dict[str, set[bytes]] = {}
    for cf, key in ctx.state:
        out.setdefault(cf, set()).add(key)
    return out


def test_set_timer_writes_only_the_due_ordered_entry() -> None:
    ctx = MemoryContext()
    ctx.set_timer(b"t", 100, b"k", b"p", previous_due_ms=None)
    ctx.commit()
    assert _families(ctx) == {"timers": {timer_key(100, b"t")}}
    assert ctx.due_timers(100) == [(b"k", b"t", b"p")]


def test_set_timer_with_the_previous_due_time_replaces_it_and_clear_timer_removes_it() -> None:
    ctx = MemoryContext()
    ctx.set_timer(b"t", 100, b"k", b"p", previous_due_ms=None)
    ctx.commit()
    ctx.set_timer(b"t", 300, b"k", b"q", previous_due_ms=100)
    ctx.commit()
    assert _families(ctx) == {"timers": {timer_key(300, b"t")}}
    ctx.set_timer(b"t", 300, b"k", b"r", previous_due_ms=300)  # same due time: overwritten in place
    ctx.commit()
    assert ctx.due_timers(1_000) == [(b"k", b"t", b"r")]
    ctx.clear_timer(b"t", 300)
    ctx.commit()
    assert _families(ctx) == {}


def test_set_timer_without_a_previous_due_time_replaces_an_indexed_timer_of_the_same_id() -> None:
    ctx = MemoryContext()
    ctx.schedule_timer(b"t", 100, b"k", b"old")  # as every timer was armed before set_timer existed
    ctx.commit()
    assert _families(ctx) == {"timers": {timer_key(100, b"t")}, "timer_ids": {b"t"}}
    ctx.set_timer(b"t", 200, b"k", b"new", previous_due_ms=None)
    ctx.commit()
    assert _families(ctx) == {"timers": {timer_key(200, b"t")}}
    assert ctx.due_timers(1_000) == [(b"k", b"t", b"new")]


def test_firing_an_unindexed_timer_writes_no_index_tombstone_and_an_indexed_one_does() -> None:
    part = Partition()
    batch = part.batch(now_ms=0)
    batch.add(part.record(b"k", add("indexed", 1, delay_ms=10)))  # the counter handler uses schedule_timer
    part.store.commit(batch.effects)
    part.store.data[("timers", timer_key(10, b"plain"))] = b"\x00\x00\x00\x01k"
    fire = part.batch(now_ms=10)
    assert fire.fire_due_timers(part.store.scan, limit=10) == 2
    assert set(fire.effects.writes) == {
        ("timers", timer_key(10, b"indexed")),
        ("timer_ids", b"indexed"),
        ("timers", timer_key(10, b"plain")),
    }
    assert all(value is None for value in fire.effects.writes.values())
