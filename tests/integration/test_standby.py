"""Standby replicas tail a real changelog so that a takeover restores only the tail."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from prometheus_client import REGISTRY

from kronicle.state.restore import ChangelogCorruptError, Restorer
from kronicle.state.standby import StandbyReplicator
from kronicle.state.store import StateStore
from tests.integration._changelog_helpers import ChangelogWriter, new_store, puts, store_contents


@pytest.fixture
def changelog(topic_factory: Callable[..., str]) -> str:
    return topic_factory("changelog", partitions=3, config={"cleanup.policy": "compact"})


@pytest.fixture
def writer(kafka_bootstrap: str, changelog: str) -> ChangelogWriter:
    return ChangelogWriter(kafka_bootstrap, changelog)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = new_store(tmp_path)
    yield s
    s.close_all()


@pytest.fixture
def standby(store: StateStore, kafka_bootstrap: str, changelog: str) -> Iterator[StandbyReplicator]:
    s = StandbyReplicator(store, kafka_bootstrap, changelog)
    yield s
    s.close()


def _poll_until_caught_up(
    standby: StandbyReplicator,
    store: StateStore,
    partitions: set[int],
    writer: ChangelogWriter | None = None,
    timeout: float = 30,
) -> int:
    """Poll until every partition reports lag 0 and (given a writer) holds exactly what was committed.

    Lag is as of the last fetch, so it cannot tell alone whether records produced
    a moment ago have arrived; the expected contents can.
    """
    applied = 0
    deadline = time.monotonic() + timeout
    while True:
        applied += standby.poll_once(0.05)
        lags = {p: standby.lag(p) for p in partitions}
        if all(lag == 0 for lag in lags.values()) and (
            writer is None or all(store_contents(store, p) == writer.expected.get(p, {}) for p in partitions)
        ):
            return applied
        assert time.monotonic() < deadline, lags


def test_standby_tails_while_records_are_produced_then_takeover_reads_almost_nothing(
    kafka_bootstrap: str, changelog: str, writer: ChangelogWriter, store: StateStore, standby: StandbyReplicator
) -> None:
    standby.set_partitions({0, 1})
    assert store.open_partitions() == {0, 1}
    applied = 0
    for i in range(20):
        writer.transaction(0, puts(50, prefix=f"r{i}-"))
        writer.transaction(1, [("state", b"counter", str(i).encode()), ("timers", f"t{i}".encode(), b"x")])
        if i % 5 == 4:
            writer.transaction(0, [("state", f"r{i}-00000".encode(), None)])
            writer.transaction(0, [("state", b"aborted", b"!")], commit=False)
        applied += standby.poll_once(0.05)
    applied += _poll_until_caught_up(standby, store, {0, 1}, writer)

    assert applied == writer.committed_records[0] + writer.committed_records[1]
    assert store_contents(store, 0) == writer.expected[0]
    assert store_contents(store, 1) == writer.expected[1]

    # This process takes partition 0 over: the restore starts from the standby's checkpoint.
    standby.release(0)
    assert standby.partitions() == {1}
    assert store.is_open(0)  # handed over open
    restorer = Restorer(store, kafka_bootstrap, changelog)
    try:
        result = restorer.restore(0, timeout=30)
    finally:
        restorer.close()
    assert result.records == 0
    assert result.start_offset == result.end_offset > 0
    assert store_contents(store, 0) == writer.expected[0]

    # The standby goes on tailing the partition it still has.
    writer.transaction(1, [("state", b"counter", b"after")])
    deadline = time.monotonic() + 30
    while store.get(1, "state", b"counter") != b"after":
        assert time.monotonic() < deadline
        standby.poll_once(0.1)


def test_takeover_while_behind_restores_only_the_unreplicated_tail(
    kafka_bootstrap: str, changelog: str, writer: ChangelogWriter, store: StateStore, standby: StandbyReplicator
) -> None:
    standby.set_partitions({2})
    writer.transaction(2, puts(300))
    _poll_until_caught_up(standby, store, {2}, writer)
    writer.transaction(2, puts(12, prefix="late"))  # produced after the standby last polled

    standby.release(2)
    restorer = Restorer(store, kafka_bootstrap, changelog)
    try:
        result = restorer.restore(2, timeout=30)
    finally:
        restorer.close()
    assert result.records == 12
    assert store_contents(store, 2) == writer.expected[2]


def test_removed_partitions_are_closed_and_resume_from_their_checkpoint(
    writer: ChangelogWriter, store: StateStore, standby: StandbyReplicator
) -> None:
    standby.set_partitions({0, 1})
    writer.transaction(0, puts(40))
    _poll_until_caught_up(standby, store, {0}, writer)
    checkpoint = store.changelog_offset(0)

    standby.set_partitions({1})
    assert not store.is_open(0)
    assert standby.lag(0) is None
    writer.transaction(0, puts(5, prefix="while-away"))
    assert standby.poll_once(0.5) == 0  # partition 0 is no longer tailed

    standby.set_partitions({0, 1})
    assert store.changelog_offset(0) == checkpoint
    assert _poll_until_caught_up(standby, store, {0}, writer) == 5
    assert store_contents(store, 0) == writer.expected[0]


def test_lag_counts_records_fetched_but_not_yet_applied(
    kafka_bootstrap: str, changelog: str, writer: ChangelogWriter, store: StateStore
) -> None:
    # Small fetches, so the 3000 records arrive over many polls.
    standby = StandbyReplicator(store, kafka_bootstrap, changelog, {"max.partition.fetch.bytes": 4096})
    try:
        assert standby.lag(0) is None
        standby.set_partitions({0})
        _poll_until_caught_up(standby, store, {0})
        assert standby.lag(0) == 0
        assert standby.lag(1) is None

        writer.transaction(0, puts(3000))
        lags: list[int] = []
        deadline = time.monotonic() + 30
        while store.changelog_offset(0) < 3001 or standby.lag(0) != 0:
            assert time.monotonic() < deadline, standby.lag(0)
            standby.poll_once(0.05)
            lag = standby.lag(0)
            assert lag is not None
            lags.append(lag)
        # Lag was seen, it was never more than what was produced, and it went down to 0.
        assert max(lags) > 0
        assert max(lags) <= 3001
        assert lags[-1] == 0
        assert store_contents(store, 0) == writer.expected[0]
        labels = {"namespace": store.namespace, "partition": "0"}
        assert REGISTRY.get_sample_value("kronicle_standby_records_total", labels) == 3000
        assert REGISTRY.get_sample_value("kronicle_standby_lag_records", labels) == 0
    finally:
        standby.close()


def test_a_foreign_record_stops_tailing_only_its_partition(
    kafka_bootstrap: str, changelog: str, writer: ChangelogWriter, store: StateStore, standby: StandbyReplicator
) -> None:
    standby.set_partitions({0, 1})
    writer.transaction(0, puts(5))
    stray = Producer({"bootstrap.servers": kafka_bootstrap})
    delivered: list[object] = []
    stray.produce(
        changelog,
        key=b"\x00\x00\x00\x00\x07other",
        value=b"x",
        partition=0,
        on_delivery=lambda e, _m: delivered.append(e),
    )
    assert stray.flush(30) == 0
    assert delivered == [None]  # it really is in the log
    writer.transaction(1, puts(5))

    deadline = time.monotonic() + 30
    with pytest.raises(ChangelogCorruptError, match="schema id 7"):
        while time.monotonic() < deadline:
            standby.poll_once(0.1)
    assert standby.partitions() == {1}
    assert not store.is_open(0)
    _poll_until_caught_up(standby, store, {1}, writer)
