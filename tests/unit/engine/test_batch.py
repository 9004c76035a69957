"""The processor's middle without Kafka: a batch over the counter handler, with a fake clock."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest

from kronicle.engine.batch import (
    DLQ_HEADER_ERROR_TYPE,
    DLQ_HEADER_OFFSET,
    DLQ_HEADER_REASON,
    TIMER_FIRED_SCHEMA,
    InputRecord,
    PartitionBatch,
)
from kronicle.engine.context import BatchEffects
from kronicle.engine.counter import COUNTER_ADD, COUNTER_OUTPUT, CounterHandler, counter_registry
from kronicle.engine.handler import CommandRecord, Context

CODEC = counter_registry()
COMMANDS, DLQ, OUT = "kronicle.ns.commands", "kronicle.ns.dlq", "kronicle.ns.history"


class FakeStore:
    """Committed state of one partition: what RocksDB holds after each commit."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, bytes], bytes] = {}

    def read(self, cf: str, key: bytes) -> bytes | None:
        return self.data.get((cf, key))

    def scan(self, cf: str, start: bytes, end: bytes | None, limit: int) -> Iterator[tuple[bytes, bytes]]:
        rows = sorted((k, v) for (c, k), v in self.data.items() if c == cf and k >= start and (end is None or k < end))
        return iter(rows[:limit])

    def commit(self, effects: BatchEffects) -> None:
        for sk, value in effects.writes.items():
            if value is None:
                self.data.pop(sk, None)
            else:
                self.data[sk] = value


class Partition:
    def __init__(self, handler: Any = None) -> None:
        self.store = FakeStore()
        self.handler = handler or CounterHandler(OUT, CODEC.encode)
        self.offset = 0

    def batch(self, now_ms: int = 1_000) -> PartitionBatch:
        return PartitionBatch(
            partition=0, now_ms=now_ms, handler=self.handler, codec=CODEC, read=self.store.read,
            commands_topic=COMMANDS, dlq_topic=DLQ,
        )  # fmt: skip

    def record(self, key: bytes | None, value: bytes | None) -> InputRecord:
        self.offset += 1
        return InputRecord(0, self.offset - 1, key, value, (), 0)


def add(request_id: str, amount: int, delay_ms: int = 0) -> bytes:
    return CODEC.encode(COUNTER_ADD, {"request_id": request_id, "amount": amount, "delay_ms": delay_ms, "padding": b""})


def outputs(batch: PartitionBatch, topic: str = OUT) -> list[dict[str, Any]]:
    return [CODEC.decode(o.value)[1] for o in batch.effects.outputs if o.topic == topic and o.value]


def test_later_commands_in_a_batch_see_earlier_writes() -> None:
    part = Partition()
    batch = part.batch()
    for i in range(3):
        batch.add(part.record(b"k", add(f"r{i}", 5)))
    assert [o["total"] for o in outputs(batch)] == [5, 10, 15]
    assert batch.effects.writes == {("counters", b"k"): struct.pack(">q", 15)}
    assert (batch.first_offset, batch.next_offset, batch.applied) == (0, 3, 3)


def test_nothing_reaches_the_store_until_the_batch_is_committed() -> None:
    part = Partition()
    batch = part.batch()
    batch.add(part.record(b"k", add("r0", 5)))
    assert part.store.data == {}
    part.store.commit(batch.effects)
    nxt = part.batch()
    nxt.add(part.record(b"k", add("r1", 1)))
    assert outputs(nxt)[0]["total"] == 6


@pytest.mark.parametrize(
    ("value", "error_type", "reason_part"),
    [
        (b"garbage", "decode", "magic"),
        (b"\x00\x00", "decode", ""),
        (b"\x00\x00\x0f\x42\x40\x00", "decode", "1000000"),
        (None, "decode", "no value"),
        ("negative", "invalid", "negative"),
    ],
)
def test_bad_commands_are_dead_lettered_with_a_reason_and_change_nothing(
    value: bytes | str | None, error_type: str, reason_part: str
) -> None:
    part = Partition()
    batch = part.batch()
    batch.add(part.record(b"k", add("ok", 2)))
    raw = add("bad", -1) if value == "negative" else value
    assert not isinstance(raw, str)
    batch.add(part.record(b"k", raw))
    batch.add(part.record(b"k", add("ok2", 3)))
    assert [o["total"] for o in outputs(batch)] == [2, 5]
    (dead,) = [o for o in batch.effects.outputs if o.topic == DLQ]
    headers = dict(dead.headers)
    assert headers[DLQ_HEADER_ERROR_TYPE] == error_type.encode()
    assert reason_part.lower() in headers[DLQ_HEADER_REASON].decode().lower()
    assert headers[DLQ_HEADER_OFFSET] == b"1"
    assert dead.key == b"k" and dead.value == raw
    assert batch.next_offset == 3  # the partition moves past the bad record


def test_a_handler_that_raises_leaves_no_partial_effects() -> None:
    class HalfThenBoom:
        column_families = ("counters",)

        def handle(self, ctx: Context, command: CommandRecord) -> None:
            ctx.put("counters", b"half", b"written")
            ctx.emit(OUT, b"k", b"never")
            raise RuntimeError("bug")

        def on_timer(self, ctx: Context, key: bytes, timer_id: bytes, payload: bytes) -> None:
            raise AssertionError

    part = Partition(HalfThenBoom())
    batch = part.batch()
    batch.add(part.record(b"k", add("r0", 1)))
    assert batch.effects.writes == {}
    assert [o.topic for o in batch.effects.outputs] == [DLQ]
    assert dict(batch.effects.outputs[0].headers)[DLQ_HEADER_ERROR_TYPE] == b"internal"


def test_timers_fire_when_due_on_the_fake_clock_and_exactly_once() -> None:
    part = Partition()
    batch = part.batch(now_ms=1_000)
    batch.add(part.record(b"k", add("late", 7, delay_ms=500)))
    assert outputs(batch) == []
    part.store.commit(batch.effects)

    early = part.batch(now_ms=1_499)
    assert early.fire_due_timers(part.store.scan, limit=10) == 0

    due = part.batch(now_ms=1_500)
    assert due.fire_due_timers(part.store.scan, limit=10) == 1
    (fired,) = due.effects.outputs
    assert fired.topic == COMMANDS and fired.partition == 0 and fired.key == b"k"
    assert fired.value is not None
    assert CODEC.decode(fired.value)[0] == TIMER_FIRED_SCHEMA
    part.store.commit(due.effects)
    assert part.batch(now_ms=9_999).fire_due_timers(part.store.scan, limit=10) == 0  # deleted when fired

    # The TimerFired command read back from the log reaches the handler's on_timer.
    back = part.batch(now_ms=1_600)
    back.add(part.record(b"k", fired.value))
    assert outputs(back) == [{"key": "k", "request_id": "late", "total": 7, "source": "TIMER"}]


def test_a_burst_of_due_timers_fires_at_most_the_limit_per_batch() -> None:
    part = Partition()
    batch = part.batch(now_ms=0)
    for i in range(25):
        batch.add(part.record(b"k", add(f"t{i}", 1, delay_ms=10 + i)))
    part.store.commit(batch.effects)
    fired = []
    for _ in range(3):
        b = part.batch(now_ms=1_000)
        fired.append(b.fire_due_timers(part.store.scan, limit=10))
        part.store.commit(b.effects)
    assert fired == [10, 10, 5]


def test_cancelled_timer_never_fires() -> None:
    part = Partition()
    batch = part.batch(now_ms=0)
    batch.add(part.record(b"k", add("c", 1, delay_ms=10)))
    part.store.commit(batch.effects)

    class Canceller(CounterHandler):
        def handle(self, ctx: Context, command: CommandRecord) -> None:
            ctx.cancel_timer(b"c")

    part.handler = Canceller(OUT, CODEC.encode)
    cancel = part.batch(now_ms=5)
    cancel.add(part.record(b"k", add("x", 1)))
    part.store.commit(cancel.effects)
    assert part.batch(now_ms=100).fire_due_timers(part.store.scan, limit=10) == 0
    assert COUNTER_OUTPUT  # schema registered alongside
