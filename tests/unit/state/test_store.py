"""StateStore: one raw-mode RocksDB per (namespace, partition), offset written with the data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rocksdict import Options, Rdict, ReadOptions

from kronicle.state.store import (
    META_COLUMN_FAMILY,
    PartitionNotOpenError,
    StateStore,
    UnknownColumnFamilyError,
)

CFS = ("state", "timers")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore(tmp_path, "ns", CFS)
    s.open(0)
    yield s
    s.close_all()


def test_fresh_partition_is_empty_with_offset_zero(store: StateStore) -> None:
    assert store.changelog_offset(0) == 0
    assert store.get(0, "state", b"k") is None
    assert list(store.scan(0, "state")) == []


def test_db_lives_under_namespace_and_partition(tmp_path: Path) -> None:
    s = StateStore(tmp_path, "orders", CFS)
    s.open(3)
    try:
        assert (tmp_path / "orders" / "3" / "CURRENT").exists()
        assert s.path(3) == tmp_path / "orders" / "3"
    finally:
        s.close_all()


def test_apply_then_get(store: StateStore) -> None:
    store.apply(0, {("state", b"a"): b"1", ("timers", b"a"): b"2"}, changelog_offset=2)
    assert store.get(0, "state", b"a") == b"1"
    assert store.get(0, "timers", b"a") == b"2"
    assert store.changelog_offset(0) == 2


def test_none_value_deletes(store: StateStore) -> None:
    store.apply(0, {("state", b"a"): b"1", ("state", b"b"): b"2"}, changelog_offset=2)
    store.apply(0, {("state", b"a"): None, ("state", b"never-existed"): None}, changelog_offset=4)
    assert store.get(0, "state", b"a") is None
    assert store.get(0, "state", b"b") == b"2"
    assert store.changelog_offset(0) == 4


def test_partitions_are_isolated(store: StateStore) -> None:
    store.open(1)
    store.apply(0, {("state", b"k"): b"p0"}, changelog_offset=1)
    store.apply(1, {("state", b"k"): b"p1"}, changelog_offset=7)
    assert store.get(0, "state", b"k") == b"p0"
    assert store.get(1, "state", b"k") == b"p1"
    assert (store.changelog_offset(0), store.changelog_offset(1)) == (1, 7)
    assert store.open_partitions() == {0, 1}


def test_scan_is_in_key_order_with_exclusive_end_and_limit(store: StateStore) -> None:
    keys = [b"\x00", b"a", b"ab", b"b", b"b\x00", b"c", b"\xff\xff"]
    store.apply(0, {("state", k): b"v" + k for k in reversed(keys)}, changelog_offset=len(keys))
    store.apply(0, {("timers", b"other-family"): b"x"}, changelog_offset=len(keys) + 1)
    assert [k for k, _ in store.scan(0, "state")] == keys
    assert list(store.scan(0, "state", start=b"ab", end=b"c")) == [
        (b"ab", b"vab"),
        (b"b", b"vb"),
        (b"b\x00", b"vb\x00"),
    ]
    assert [k for k, _ in store.scan(0, "state", start=b"a", limit=2)] == [b"a", b"ab"]
    assert [k for k, _ in store.scan(0, "state", start=b"b", end=b"b")] == []
    assert list(store.scan(0, "state", limit=0)) == []


def test_rocksdb_takes_the_raw_upper_bound_as_given(tmp_path: Path) -> None:
    # _scan hands its end key to RocksDB as the iterator's upper bound (and checks it by hand
    # too). This pins that rocksdict passes raw bytes through unencoded for raw-mode families:
    # without the hand check, RocksDB alone must stop exactly before the bound.
    db = Rdict(str(tmp_path / "raw"), Options(raw_mode=True))
    try:
        keys = sorted(bytes([a, b]) for a in (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF) for b in (0x00, 0xFF))
        for key in keys:
            db[key] = b"v"
        for bound in [*keys, b"\x80", b"\x01\x00\x00", b"\xff\xff\x00"]:
            opts = ReadOptions()
            opts.set_iterate_upper_bound(bound)
            it = db.iter(opts)
            it.seek(b"")
            seen = []
            while it.valid():
                seen.append(it.key())
                it.next()
            del it
            assert seen == [k for k in keys if k < bound], bound
    finally:
        db.close()


def test_scan_reads_a_snapshot(store: StateStore) -> None:
    store.apply(0, {("state", b"a"): b"1", ("state", b"b"): b"2"}, changelog_offset=2)
    it = store.scan(0, "state")
    assert next(it) == (b"a", b"1")
    store.apply(0, {("state", b"b"): b"changed", ("state", b"c"): b"3"}, changelog_offset=4)
    assert list(it) == [(b"b", b"2")]


def test_batch_and_offset_survive_reopen_together(tmp_path: Path) -> None:
    s = StateStore(tmp_path, "ns", CFS)
    s.open(0)
    s.apply(0, {("state", b"a"): b"1", ("timers", b"t"): b"2"}, changelog_offset=10)
    s.close(0)
    assert not s.is_open(0)
    s.open(0)
    assert (s.get(0, "state", b"a"), s.get(0, "timers", b"t"), s.changelog_offset(0)) == (b"1", b"2", 10)
    s.close_all()
    # A new store object (a restarted process) sees the same.
    s2 = StateStore(tmp_path, "ns", CFS)
    s2.open(0)
    assert (s2.get(0, "state", b"a"), s2.changelog_offset(0)) == (b"1", 10)
    s2.close_all()


def test_unknown_column_family_writes_nothing(store: StateStore) -> None:
    store.apply(0, {("state", b"a"): b"1"}, changelog_offset=1)
    with pytest.raises(UnknownColumnFamilyError, match=r"unknown column family 'nope'.*\['state', 'timers'\]"):
        store.apply(0, {("state", b"a"): b"2", ("nope", b"x"): b"y"}, changelog_offset=3)
    assert store.get(0, "state", b"a") == b"1"
    assert store.changelog_offset(0) == 1
    with pytest.raises(UnknownColumnFamilyError):
        store.get(0, "nope", b"x")
    with pytest.raises(UnknownColumnFamilyError):
        store.scan(0, META_COLUMN_FAMILY)


def test_destroy_deletes_the_directory_and_state(store: StateStore, tmp_path: Path) -> None:
    store.apply(0, {("state", b"a"): b"1"}, changelog_offset=5)
    store.destroy(0)
    assert not store.is_open(0)
    assert not (tmp_path / "ns" / "0").exists()
    store.open(0)
    assert store.get(0, "state", b"a") is None
    assert store.changelog_offset(0) == 0


def test_use_of_a_closed_partition_says_to_open_it(store: StateStore) -> None:
    with pytest.raises(PartitionNotOpenError, match=r"call open\(5\) first"):
        store.get(5, "state", b"a")
    with pytest.raises(PartitionNotOpenError):
        store.apply(5, {}, changelog_offset=1)


def test_open_is_idempotent_and_close_of_unknown_is_noop(store: StateStore) -> None:
    store.apply(0, {("state", b"a"): b"1"}, changelog_offset=1)
    store.open(0)
    assert store.get(0, "state", b"a") == b"1"
    store.close(42)


def test_a_family_no_longer_listed_still_opens(tmp_path: Path) -> None:
    s = StateStore(tmp_path, "ns", ("state", "old"))
    s.open(0)
    s.apply(0, {("state", b"a"): b"1", ("old", b"b"): b"2"}, changelog_offset=2)
    s.close_all()
    s2 = StateStore(tmp_path, "ns", ("state",))
    s2.open(0)
    assert s2.get(0, "state", b"a") == b"1"
    with pytest.raises(UnknownColumnFamilyError):
        s2.get(0, "old", b"b")
    s2.close_all()


@pytest.mark.parametrize("cfs", [("state", "state"), ("default",), (META_COLUMN_FAMILY,)])
def test_invalid_column_family_lists_are_rejected(tmp_path: Path, cfs: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        StateStore(tmp_path, "ns", cfs)


def test_negative_offset_is_rejected(store: StateStore) -> None:
    with pytest.raises(ValueError, match="changelog_offset"):
        store.apply(0, {}, changelog_offset=-1)


def test_changelog_topic_id_is_recorded_and_destroyed_with_the_store(store: StateStore) -> None:
    assert store.changelog_topic_id(0) is None
    store.set_changelog_topic_id(0, "Hwxm1Dk9QBKAdqDxIYCALA")
    store.close(0)
    store.open(0)
    assert store.changelog_topic_id(0) == "Hwxm1Dk9QBKAdqDxIYCALA"
    store.destroy(0)
    store.open(0)
    assert store.changelog_topic_id(0) is None


_keys = st.binary(min_size=0, max_size=3)
_batches = st.lists(
    st.dictionaries(st.tuples(st.sampled_from(CFS), _keys), st.one_of(st.none(), st.binary(max_size=8)), max_size=12),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=_batches, start=_keys, end=st.one_of(st.none(), _keys))
def test_store_behaves_like_a_sorted_dict(
    tmp_path: Path, batches: list[dict[tuple[str, bytes], bytes | None]], start: bytes, end: bytes | None
) -> None:
    s = StateStore(tmp_path / uuid.uuid4().hex, "ns", CFS)
    s.open(0)
    try:
        model: dict[tuple[str, bytes], bytes] = {}
        for offset, batch in enumerate(batches, start=1):
            s.apply(0, batch, changelog_offset=offset)
            for sk, value in batch.items():
                if value is None:
                    model.pop(sk, None)
                else:
                    model[sk] = value
        assert s.changelog_offset(0) == len(batches)
        for cf in CFS:
            expected = sorted(
                (k, v) for (c, k), v in model.items() if c == cf and k >= start and (end is None or k < end)
            )
            assert list(s.scan(0, cf, start, end)) == expected
            for (c, k), v in model.items():
                if c == cf:
                    assert s.get(0, cf, k) == v
    finally:
        s.close_all()
