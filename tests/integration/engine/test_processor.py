"""The partition processor on a real broker: exactly once through crashes, rebalances and restores."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from kronicle.engine import metrics
from kronicle.engine.batch import DLQ_HEADER_ERROR_TYPE, DLQ_HEADER_REASON
from kronicle.engine.counter import CounterHandler
from kronicle.engine.processor import (
    HEADER_SEQUENCE,
    HEADER_VERSION,
    Processor,
    ProcessorConfig,
    ProcessorFencedError,
)
from kronicle.topics import NamespaceTopics
from tests.engine_harness import (
    Add,
    EngineProcess,
    OutputReader,
    check_exactly_once,
    counter_codec,
    make_adds,
    new_namespace,
    produce_adds,
    produce_raw,
)
from tests.kafka_helpers import drain


@pytest.fixture
def topics(kafka_bootstrap: str) -> NamespaceTopics:
    return new_namespace(kafka_bootstrap, partitions=4)


class InProcessEngine:
    def __init__(self, bootstrap: str, topics: NamespaceTopics, state_dir: Path, instance_id: str = "e0") -> None:
        codec = counter_codec()
        config = ProcessorConfig(bootstrap, topics.namespace, state_dir, instance_id)
        self.processor = Processor(config, CounterHandler(topics.history, codec.encode), codec)
        self._thread = threading.Thread(target=self.processor.run_forever, daemon=True)

    def __enter__(self) -> Processor:
        self.processor.start()
        self._thread.start()
        return self.processor

    def __exit__(self, *exc: object) -> None:
        self.processor.stop()
        self._thread.join(30)
        assert not self._thread.is_alive()


@pytest.fixture
def reader(kafka_bootstrap: str, topics: NamespaceTopics) -> Iterator[OutputReader]:
    r = OutputReader(kafka_bootstrap, topics, counter_codec())
    yield r
    r.close()


def test_every_command_is_applied_once_with_sequence_and_version_headers(
    kafka_bootstrap: str, topics: NamespaceTopics, reader: OutputReader, tmp_path: Path
) -> None:
    adds = make_adds(500)
    produce_adds(kafka_bootstrap, topics, adds, counter_codec())
    with InProcessEngine(kafka_bootstrap, topics, tmp_path / "state"):
        reader.read_until(len(adds), timeout=60)
        reader.settle(1.0)
    check_exactly_once(adds, reader.outputs)
    assert all(h[HEADER_VERSION] == b"0" for h in reader.headers)
    seqs = [int(h[HEADER_SEQUENCE]) for h in reader.headers]
    assert all(s > 0 for s in seqs)


def test_kill9_mid_batch_then_restart_applies_every_command_exactly_once(
    kafka_bootstrap: str, topics: NamespaceTopics, reader: OutputReader, tmp_path: Path
) -> None:
    codec = counter_codec()
    adds = make_adds(4000, keys=50)
    engine = EngineProcess(kafka_bootstrap, topics, tmp_path / "state", "e0").start()
    produce_adds(kafka_bootstrap, topics, adds[:2000], codec)
    reader.read_until(300, timeout=60)
    assert len(reader.outputs) < 2000, "engine finished before it could be killed mid-stream"
    engine.kill9()
    produce_adds(kafka_bootstrap, topics, adds[2000:], codec)
    engine.start()
    reader.read_until(len(adds), timeout=90)
    reader.settle(3.0)
    engine.terminate()
    check_exactly_once(adds, reader.outputs)


def test_two_processes_rebalancing_while_commands_flow_lose_and_repeat_nothing(
    kafka_bootstrap: str, topics: NamespaceTopics, reader: OutputReader, tmp_path: Path
) -> None:
    codec = counter_codec()
    adds = make_adds(6000, keys=60)
    a = EngineProcess(kafka_bootstrap, topics, tmp_path / "a", "a").start()
    produce_adds(kafka_bootstrap, topics, adds[:2000], codec)
    reader.read_until(200, timeout=60)
    b = EngineProcess(kafka_bootstrap, topics, tmp_path / "b", "b").start()  # takes half the partitions
    produce_adds(kafka_bootstrap, topics, adds[2000:4000], codec)
    reader.read_until(2500, timeout=60)
    assert a.terminate() == 0  # b takes everything over, restoring a's partitions from the changelog
    produce_adds(kafka_bootstrap, topics, adds[4000:], codec)
    reader.read_until(len(adds), timeout=90)
    reader.settle(3.0)
    b.terminate()
    check_exactly_once(adds, reader.outputs)
    assert "assigned" in b.log_text() and "revoked" in a.log_text()


def test_state_restored_from_the_changelog_after_the_local_store_is_deleted(
    kafka_bootstrap: str, topics: NamespaceTopics, reader: OutputReader, tmp_path: Path
) -> None:
    codec = counter_codec()
    first, second = make_adds(400, keys=10, prefix="a"), make_adds(400, keys=10, prefix="b")
    state = tmp_path / "state"
    produce_adds(kafka_bootstrap, topics, first, codec)
    with InProcessEngine(kafka_bootstrap, topics, state):
        reader.read_until(len(first), timeout=60)
    shutil.rmtree(state)
    produce_adds(kafka_bootstrap, topics, second, codec)
    with InProcessEngine(kafka_bootstrap, topics, state) as processor:
        reader.read_until(len(first) + len(second), timeout=60)
        reader.settle(1.0)
        restored = {p: processor.store.changelog_offset(p) for p in processor.owned_partitions()}
    # Totals continue from the restored state rather than starting again from zero.
    check_exactly_once(first + second, reader.outputs)
    assert sum(restored.values()) > 0


def test_timers_scheduled_before_a_crash_fire_once_after_the_restart(
    kafka_bootstrap: str, topics: NamespaceTopics, reader: OutputReader, tmp_path: Path
) -> None:
    codec = counter_codec()
    adds = make_adds(200, keys=10, delay_ms=4000)
    engine = EngineProcess(kafka_bootstrap, topics, tmp_path / "state", "e0").start()
    produce_adds(kafka_bootstrap, topics, adds, codec)
    # Wait until every command is consumed (its timer stored), then crash before the timers are due.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "assigned" not in engine.log_text():
        time.sleep(0.2)
    time.sleep(2.0)
    reader.poll(0.1)
    assert reader.outputs == [], "timers fired before they were due"
    engine.kill9()
    time.sleep(3.0)  # the timers fall due while no engine runs
    engine.start()
    reader.read_until(len(adds), timeout=60)
    reader.settle(3.0)
    engine.terminate()
    check_exactly_once(adds, reader.outputs)
    assert {o["source"] for o in reader.outputs} == {"TIMER"}


def test_garbage_in_the_commands_topic_goes_to_the_dlq_and_processing_continues(
    kafka_bootstrap: str, topics: NamespaceTopics, reader: OutputReader, tmp_path: Path
) -> None:
    codec = counter_codec()
    good = make_adds(100, keys=5)
    valid_frame = codec.encode(
        "kronicle.example.CounterAdd", {"request_id": "neg", "amount": -1, "delay_ms": 0, "padding": b""}
    )
    garbage: list[tuple[bytes | None, bytes | None]] = [
        (b"k1", b"not avro at all"),
        (b"k2", b"\x00\x00\x00"),  # truncated frame
        (b"k3", b"\x00\x00\x0f\x42\x40\x02"),  # unknown schema id 1000000
        (b"k4", valid_frame[:-3]),  # truncated Avro body
        (b"k0", valid_frame),  # decodes, but the handler rejects a negative amount
        (b"k1", None),  # a tombstone
    ]
    produce_adds(kafka_bootstrap, topics, good[:50], codec)
    produce_raw(kafka_bootstrap, topics.commands, garbage)
    produce_adds(kafka_bootstrap, topics, good[50:], codec)
    with InProcessEngine(kafka_bootstrap, topics, tmp_path / "state"):
        reader.read_until(len(good), timeout=60)
        dead = drain(kafka_bootstrap, topics.dlq, expect=len(garbage), timeout=30)
    check_exactly_once(good, reader.outputs)
    assert len(dead) == len(garbage)
    reasons = [dict(m.headers() or [])[DLQ_HEADER_REASON].decode() for m in dead]  # type: ignore[arg-type]
    kinds = sorted(dict(m.headers() or [])[DLQ_HEADER_ERROR_TYPE].decode() for m in dead)  # type: ignore[arg-type]
    assert kinds == ["decode"] * 5 + ["invalid"]
    assert any("negative" in r for r in reasons)
    assert all(r for r in reasons)


def test_a_fenced_processor_stops_instead_of_committing(
    kafka_bootstrap: str, topics: NamespaceTopics, reader: OutputReader, tmp_path: Path
) -> None:
    codec = counter_codec()
    produce_adds(kafka_bootstrap, topics, make_adds(50, prefix="a"), codec)
    config = ProcessorConfig(kafka_bootstrap, topics.namespace, tmp_path / "old", "same-id")
    old = Processor(config, CounterHandler(topics.history, codec.encode), codec)
    old.start()
    try:
        deadline = time.monotonic() + 30
        applied = 0
        while applied < 50 and time.monotonic() < deadline:
            applied += old.run_once()
        assert applied == 50
        # What a second process with the same instance id does first: bump the producer epoch.
        Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": config.transactional_id}).init_transactions(
            30
        )
        produce_adds(kafka_bootstrap, topics, make_adds(10, prefix="b"), codec)
        with pytest.raises(ProcessorFencedError):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                old.run_once()
    finally:
        old.close()
    reader.read_until(50, timeout=10)
    reader.settle(1.0)
    assert {o["request_id"] for o in reader.outputs} == {f"a{i}" for i in range(50)}


def test_standby_takes_over_a_killed_process_partitions_from_a_warm_store(
    kafka_bootstrap: str, topics: NamespaceTopics, reader: OutputReader, tmp_path: Path
) -> None:
    codec = counter_codec()
    adds = make_adds(3000, keys=400)  # ~100 keys per partition: a cold restore reads 100+ records
    a = EngineProcess(kafka_bootstrap, topics, tmp_path / "a", "a", standby=True).start()
    b = EngineProcess(kafka_bootstrap, topics, tmp_path / "b", "b", standby=True).start()
    _wait_for(lambda: "assigned" in a.log_text() and "assigned" in b.log_text(), 30)
    produce_adds(kafka_bootstrap, topics, adds[:2000], codec)
    reader.read_until(2000, timeout=60)
    time.sleep(1.0)  # b's standby replicas catch up with a's last commits
    a.kill9()
    killed = time.monotonic()
    produce_adds(kafka_bootstrap, topics, adds[2000:], codec)
    reader.read_until(len(adds), timeout=90)
    takeover = time.monotonic() - killed
    reader.settle(2.0)
    b.terminate()
    check_exactly_once(adds, reader.outputs)
    restores = [int(m.group(1)) for m in re.finditer(r"restored: (\d+) changelog records read", b.log_text())]
    assert len(restores) >= 4, "b restored its own partitions and then a's"
    # Every partition b took over was warm: only a short tail, if anything, was left to read.
    assert max(restores) <= 5, restores
    print(f"takeover after kill -9: {takeover:.1f}s (group session timeout 6 s on the test broker)")


def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_a_transaction_the_coordinator_timed_out_replaces_the_producer_and_loses_and_repeats_nothing(
    kafka_bootstrap: str, topics: NamespaceTopics, reader: OutputReader, tmp_path: Path
) -> None:
    """The self-inflicted fencing a broker outage causes, made on purpose: a batch stalls past the transaction timeout.

    The broker aborts the open transaction and bumps the producer epoch (it checks every 10 s), so
    the stalled batch's commit is fenced although no other process exists. The processor must
    replace its producer, resynchronise the partition from Kafka, and apply the batch once.
    """
    codec = counter_codec()
    first = make_adds(20, keys=4, prefix="a")
    produce_adds(kafka_bootstrap, topics, first, codec)
    stall = threading.Event()

    def guard(topic: str) -> bool:
        # Called inside the transaction, the first time the DLQ topic is written to: by then
        # the batch's history record is out, so the coordinator knows the transaction.
        if topic == topics.dlq and stall.is_set():
            stall.clear()
            time.sleep(14.0)  # > transaction timeout (1 s) + the broker's 10 s abort check
        return True

    config = ProcessorConfig(
        kafka_bootstrap, topics.namespace, tmp_path / "state", "e0", transaction_timeout_ms=1000, max_batch_ms=300
    )
    processor = Processor(config, CounterHandler(topics.history, codec.encode), codec, topic_guard=guard)
    replaced = metrics.TRANSACTIONS.labels(topics.namespace, "replaced")
    thread = threading.Thread(target=processor.run_forever, daemon=True)
    processor.start()
    thread.start()
    try:
        reader.read_until(len(first), timeout=60)
        stall.set()
        late = Add("k0", "late", 5)
        late_value = codec.encode(
            "kronicle.example.CounterAdd", {"request_id": late.request_id, "amount": 5, "delay_ms": 0, "padding": b""}
        )
        # One batch: an add (history output) and then garbage for the same key (DLQ output).
        produce_raw(kafka_bootstrap, topics.commands, [(b"k0", late_value), (b"k0", b"garbage")])
        reader.read_until(len(first) + 1, timeout=90)
        dead = drain(kafka_bootstrap, topics.dlq, expect=1, timeout=30)
        reader.settle(2.0)
    finally:
        processor.stop()
        thread.join(60)
    assert not thread.is_alive()
    assert not stall.is_set(), "the stall never happened"
    check_exactly_once([*first, late], reader.outputs)
    assert len(dead) == 1
    assert replaced._value.get() >= 1, "the producer was not replaced"
