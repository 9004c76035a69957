"""Restoring state stores from a real changelog topic, written transactionally as the engine does."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import REGISTRY

from kronicle.state.restore import ChangelogCorruptError, ChangelogTopicError, Restorer
from kronicle.state.store import StateStore
from tests.integration._changelog_helpers import ChangelogWriter, new_store, puts, store_contents
from tests.kafka_helpers import create_topics, drain

COMPACTED = {"cleanup.policy": "compact"}


@pytest.fixture
def changelog(topic_factory: Callable[..., str]) -> str:
    return topic_factory("changelog", partitions=2, config=COMPACTED)


@pytest.fixture
def writer(kafka_bootstrap: str, changelog: str) -> ChangelogWriter:
    return ChangelogWriter(kafka_bootstrap, changelog)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = new_store(tmp_path)
    yield s
    s.close_all()


@pytest.fixture
def restorer(store: StateStore, kafka_bootstrap: str, changelog: str) -> Iterator[Restorer]:
    r = Restorer(store, kafka_bootstrap, changelog)
    yield r
    r.close()


def test_restore_into_empty_store_equals_committed_state_including_tombstones(
    writer: ChangelogWriter, store: StateStore, restorer: Restorer
) -> None:
    writer.transaction(0, puts(50))
    writer.transaction(0, [("timers", b"t1", b"due"), ("timers", b"t2", b"due2"), ("state", b"k00003", b"new")])
    writer.transaction(0, [("state", b"k00010", None), ("timers", b"t1", None), ("state", b"never", None)])
    writer.transaction(1, puts(5, prefix="other"))

    result = restorer.restore(0, timeout=30)

    assert store_contents(store, 0) == writer.expected[0]
    assert store.get(0, "state", b"k00010") is None
    assert store.get(0, "state", b"k00003") == b"new"
    assert result.records == writer.committed_records[0]
    assert result.start_offset == 0
    # Three transactions: their records plus one commit marker each.
    assert result.end_offset == writer.committed_records[0] + 3
    assert store.changelog_offset(0) == result.end_offset
    assert restorer.restoring() == set()
    assert not store.is_open(1)  # restoring partition 0 left partition 1 alone


def test_aborted_transaction_writes_never_appear(
    kafka_bootstrap: str, changelog: str, writer: ChangelogWriter, store: StateStore, restorer: Restorer
) -> None:
    writer.transaction(0, puts(10))
    writer.transaction(0, [("state", b"k00001", b"ABORTED"), ("state", b"ghost", b"ABORTED")], commit=False)
    writer.transaction(0, [("state", b"k00002", b"committed-later")])
    writer.transaction(0, [("timers", b"ghost-timer", b"ABORTED")], commit=False)
    # The aborted records are really in the log: a read_uncommitted reader sees them.
    raw = drain(kafka_bootstrap, changelog, read_committed=False, expect=14)
    assert sum(1 for m in raw if m.value() == b"ABORTED") == 3

    result = restorer.restore(0, timeout=30)

    contents = store_contents(store, 0)
    assert contents == writer.expected[0]
    assert b"ABORTED" not in contents.values()
    assert result.records == 11
    # The end is past the trailing aborted transaction and its marker.
    assert result.end_offset == 10 + 1 + 2 + 1 + 1 + 1 + 1 + 1


def test_restore_after_deleting_the_store_directory_gives_the_same_state(
    writer: ChangelogWriter, store: StateStore, restorer: Restorer
) -> None:
    writer.transaction(0, puts(30))
    writer.transaction(0, [("state", b"k00005", None), ("timers", b"t", b"x")])
    restorer.restore(0, timeout=30)
    before = store_contents(store, 0)
    assert before == writer.expected[0]

    store.close(0)
    shutil.rmtree(store.path(0))
    again = restorer.restore(0, timeout=30)

    assert store_contents(store, 0) == before
    assert again.start_offset == 0
    assert again.records == writer.committed_records[0]


def test_restore_from_a_checkpoint_reads_only_the_tail(
    writer: ChangelogWriter, store: StateStore, restorer: Restorer
) -> None:
    writer.transaction(0, puts(200))
    first = restorer.restore(0, timeout=30)
    assert first.records == 200
    store.close(0)  # a clean shutdown; the checkpoint is on disk

    writer.transaction(0, puts(7, prefix="tail"))
    writer.transaction(0, [("state", b"k00000", None)])
    second = restorer.restore(0, timeout=30)

    assert second.start_offset == first.end_offset
    assert second.records == 8
    assert store_contents(store, 0) == writer.expected[0]
    # Nothing new: a restore reads nothing at all.
    assert restorer.restore(0, timeout=30).records == 0


def test_open_transaction_after_committed_records_does_not_block_restore(
    writer: ChangelogWriter, store: StateStore, restorer: Restorer
) -> None:
    writer.transaction(0, puts(20))
    writer.open_transaction(0, [("state", b"pending", b"uncommitted"), ("state", b"k00000", b"uncommitted")])
    try:
        t0 = time.monotonic()
        result = restorer.restore(0, timeout=15)
        assert time.monotonic() - t0 < 5
        assert store_contents(store, 0) == writer.expected[0]
        assert store.get(0, "state", b"pending") is None
        # It stopped at the last stable offset: the first offset of the open transaction.
        assert result.end_offset == 21
    finally:
        writer.producer.commit_transaction(30)

    # Once committed, the next restore reads exactly those records.
    later = restorer.restore(0, timeout=30)
    assert later.start_offset == 21
    assert later.records == 2
    assert store.get(0, "state", b"pending") == b"uncommitted"


def test_empty_changelog_partition_finishes_quickly(store: StateStore, restorer: Restorer) -> None:
    t0 = time.monotonic()
    result = restorer.restore(1, timeout=10)
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0, f"an empty partition took {elapsed:.2f} s to restore"
    assert (result.records, result.end_offset) == (0, 0)
    assert store_contents(store, 1) == {}


def test_checkpoint_beyond_the_log_end_wipes_and_restores_from_the_beginning(
    writer: ChangelogWriter, store: StateStore, restorer: Restorer, caplog: pytest.LogCaptureFixture
) -> None:
    writer.transaction(0, puts(10))
    store.open(0)
    store.apply(0, {("state", b"from-an-old-changelog"): b"stale"}, changelog_offset=1_000)

    result = restorer.restore(0, timeout=30)

    assert result.wiped
    assert result.start_offset == 0
    assert result.records == 10
    assert store_contents(store, 0) == writer.expected[0]
    assert store.changelog_offset(0) == 11
    assert any("out of range" in r.getMessage() for r in caplog.records)


def test_checkpoint_before_the_log_start_wipes_and_restores_what_is_left(
    kafka_bootstrap: str, topic_factory: Callable[..., str], store: StateStore
) -> None:
    # Kafka refuses to delete records of a purely compacted topic, so this one also deletes.
    changelog = topic_factory("changelog", partitions=1, config={"cleanup.policy": "compact,delete"})
    writer = ChangelogWriter(kafka_bootstrap, changelog)
    writer.transaction(0, puts(10))
    restorer = Restorer(store, kafka_bootstrap, changelog)
    try:
        restorer.restore(0, timeout=30)
        store.apply(0, {("state", b"local-only"): b"x"}, changelog_offset=2)
        # Truncate the partition's head past the checkpoint (as retention or an operator would).
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        for future in admin.delete_records([TopicPartition(changelog, 0, 5)]).values():
            future.result(30)

        result = restorer.restore(0, timeout=30)
    finally:
        restorer.close()

    assert result.wiped
    assert result.records == 5
    assert store_contents(store, 0) == {k: v for k, v in writer.expected[0].items() if k[1] >= b"k00005"}


def test_step_interleaves_two_partitions_within_its_budget(
    kafka_bootstrap: str, changelog: str, writer: ChangelogWriter, store: StateStore
) -> None:
    for _ in range(4):
        writer.transaction(0, puts(500, prefix="a"))
        writer.transaction(1, puts(500, prefix="b"))
    # Small fetches and a shallow prefetch queue, so one partition's records cannot
    # fill the consumer's queue before the other's arrive.
    restorer = Restorer(
        store,
        kafka_bootstrap,
        changelog,
        {"max.partition.fetch.bytes": 8192, "queued.min.messages": 200, "fetch.queue.backoff.ms": 5},
    )
    try:
        restorer.start(0)
        restorer.start(1)
        assert restorer.restoring() == {0, 1}
        finished: dict[int, int] = {}
        both_in_progress = False
        steps = 0
        deadline = time.monotonic() + 60
        while restorer.restoring():
            assert time.monotonic() < deadline, "restore did not finish"
            offsets = (store.changelog_offset(0), store.changelog_offset(1))
            done = restorer.step(max_records=300, max_seconds=0.05)
            steps += 1
            after = (store.changelog_offset(0), store.changelog_offset(1))
            # A step never applies more than its record budget.
            assert sum(after) - sum(offsets) <= 300 + 2 * 4  # + transaction markers skipped at EOF
            if 0 < after[0] < 2004 and 0 < after[1] < 2004:
                both_in_progress = True
            for p in done:
                finished[p] = steps
        assert both_in_progress, "the partitions were restored one after the other, not interleaved"
        assert set(finished) == {0, 1}
        assert steps >= 2000 * 2 // 300
        assert store_contents(store, 0) == writer.expected[0]
        assert store_contents(store, 1) == writer.expected[1]
        r0, r1 = restorer.result(0), restorer.result(1)
        assert r0 is not None and r1 is not None
        assert (r0.records, r1.records) == (2000, 2000)
    finally:
        restorer.close()


def test_cancelled_restore_keeps_a_valid_checkpoint_and_resumes(
    kafka_bootstrap: str, changelog: str, writer: ChangelogWriter, store: StateStore
) -> None:
    for _ in range(3):
        writer.transaction(0, puts(400))
    restorer = Restorer(store, kafka_bootstrap, changelog, {"max.partition.fetch.bytes": 4096})
    try:
        restorer.start(0)
        deadline = time.monotonic() + 30
        while store.changelog_offset(0) == 0:
            assert time.monotonic() < deadline
            assert restorer.step(max_records=100) == set()
        restorer.cancel(0)
        assert restorer.restoring() == set()
        partial = store.changelog_offset(0)
        assert 0 < partial < 1203

        result = restorer.restore(0, timeout=30)
        assert result.start_offset == partial
        assert result.records == 1200 - partial + (partial // 401)  # markers are not records
    finally:
        restorer.close()
    assert store_contents(store, 0) == writer.expected[0]


def test_restore_metrics_are_recorded(writer: ChangelogWriter, store: StateStore, restorer: Restorer) -> None:
    writer.transaction(0, puts(25))
    restorer.restore(0, timeout=30)
    labels = {"namespace": store.namespace, "partition": "0"}
    assert REGISTRY.get_sample_value("kronicle_restore_records_total", labels) == 25
    assert REGISTRY.get_sample_value("kronicle_restore_remaining_records", labels) == 0
    seconds = REGISTRY.get_sample_value("kronicle_restore_seconds", labels)
    assert seconds is not None and seconds > 0


def test_a_recreated_changelog_wipes_the_store_even_when_offsets_fit(
    kafka_bootstrap: str, topic_factory: Callable[..., str], store: StateStore
) -> None:
    name = topic_factory("changelog", partitions=1, config=COMPACTED)
    old = ChangelogWriter(kafka_bootstrap, name)
    old.transaction(0, puts(10, prefix="old"))
    restorer = Restorer(store, kafka_bootstrap, name)
    try:
        restorer.restore(0, timeout=30)
        assert store.changelog_offset(0) == 11
        _recreate_topic(kafka_bootstrap, name)
        # The new topic grows past the old checkpoint, so offsets alone cannot tell.
        new = ChangelogWriter(kafka_bootstrap, name)
        new.transaction(0, puts(30, prefix="new"))

        result = restorer.restore(0, timeout=30)
    finally:
        restorer.close()
    assert result.wiped
    assert result.start_offset == 0
    assert result.records == 30
    assert store_contents(store, 0) == new.expected[0]


def _recreate_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics([name], operation_timeout=30).values():
        future.result(30)
    deadline = time.monotonic() + 30
    while True:  # deletion completes asynchronously on the broker
        try:
            create_topics(bootstrap, {name: 1}, config=COMPACTED)
            return
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise
            assert exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, exc
            time.sleep(0.2)


def test_a_missing_changelog_topic_is_a_clear_error(kafka_bootstrap: str, store: StateStore) -> None:
    restorer = Restorer(store, kafka_bootstrap, "kronicle.nope.state-changelog")
    try:
        with pytest.raises(ChangelogTopicError, match=r"kronicle\.nope\.state-changelog does not exist"):
            restorer.start(0)
        assert restorer.restoring() == set()
    finally:
        restorer.close()


def test_a_foreign_record_stops_only_its_partition(
    kafka_bootstrap: str, changelog: str, writer: ChangelogWriter, store: StateStore, restorer: Restorer
) -> None:
    writer.transaction(0, puts(10))
    writer.transaction(1, puts(10, prefix="p1-"))
    stray = Producer({"bootstrap.servers": kafka_bootstrap})
    stray.produce(changelog, key=b"not-a-changelog-key", value=b"x", partition=0)
    assert stray.flush(30) == 0
    writer.transaction(0, puts(5, prefix="after"))
    restorer.start(0)
    restorer.start(1)

    finished: set[int] = set()
    deadline = time.monotonic() + 30
    with pytest.raises(ChangelogCorruptError, match=r"\[0\]@11 is not a Kronicle changelog record") as info:
        while time.monotonic() < deadline:
            finished |= restorer.step()
    assert info.value.partition == 0
    # Partition 0 keeps the valid prefix and is no longer restored; partition 1 is unaffected.
    assert store.changelog_offset(0) == 10  # after the last good record (the marker at 10 is never seen)
    assert store_contents(store, 0) == {k: v for k, v in writer.expected[0].items() if not k[1].startswith(b"after")}
    while 1 in restorer.restoring():
        assert time.monotonic() < deadline
        finished |= restorer.step()
    finished |= restorer.step()
    assert finished == {1}
    assert restorer.restoring() == set()
    assert store_contents(store, 1) == writer.expected[1]


def test_consumer_settings_that_would_break_restore_are_refused(kafka_bootstrap: str, store: StateStore) -> None:
    with pytest.raises(ValueError, match=r"isolation\.level='read_uncommitted' would break"):
        Restorer(store, kafka_bootstrap, "any", {"isolation.level": "read_uncommitted"})
    # Settings that agree with what restore needs are fine.
    Restorer(store, kafka_bootstrap, "any", {"isolation.level": "read_committed", "client.rack": "a"}).close()


def test_a_step_returns_when_its_partitions_finish_not_when_its_budget_ends(
    writer: ChangelogWriter, restorer: Restorer
) -> None:
    writer.transaction(0, puts(20))
    restorer.start(0)
    restorer.start(1)  # empty
    t0 = time.monotonic()
    finished: set[int] = set()
    while restorer.restoring():
        finished |= restorer.step(max_seconds=10)
        assert time.monotonic() - t0 < 3, "a step waited out its budget although the restores were done"
    assert finished == {0, 1}
