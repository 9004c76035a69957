"""StateStore memory: one memtable budget and one block cache for all partitions, reported by memory_usage()."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from kronicle.state.store import StateStore, StoreOptions

CFS = ("a", "b", "c")
MIB = 1024 * 1024


def _families(store: StateStore, partitions: range) -> list[Any]:
    return [f for p in partitions for f in (*store._partitions[p].cfs.values(), store._partitions[p].meta)]


def _mem_tables(store: StateStore, partitions: range) -> int:
    """RocksDB's own count of memtable bytes, summed over every partition and family."""
    return sum(int(f.property_int_value("rocksdb.size-all-mem-tables") or 0) for f in _families(store, partitions))


def _wait_for_flushes(store: StateStore, partitions: range) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        props = ("rocksdb.num-running-flushes", "rocksdb.mem-table-flush-pending")
        if not any(int(f.property_int_value(p) or 0) for f in _families(store, partitions) for p in props):
            return
        time.sleep(0.05)


def test_memtables_of_all_partitions_share_one_budget(tmp_path: Path) -> None:
    # No family reaches its own 16 MiB write buffer, so without the shared 2 MiB budget all
    # ~48 MiB written would stay in memtables (3 families x 4 partitions, ~4 MiB each).
    options = StoreOptions(block_cache_bytes=8 * MIB, memtable_bytes=2 * MIB, write_buffer_bytes=16 * MIB)
    store = StateStore(tmp_path, "ns", CFS, options=options)
    partitions = range(4)
    for p in partitions:
        store.open(p)
    try:
        value = os.urandom(4000)
        for i in range(4000):
            key = i.to_bytes(4, "big")
            store.apply(i % 4, {(cf, key): value for cf in CFS}, changelog_offset=i + 1)
            if i % 100 == 0:
                time.sleep(0.005)  # as in the engine, writes come in batches with gaps between them
        _wait_for_flushes(store, partitions)
        held = _mem_tables(store, partitions)
        # Flushes are triggered by writes and run beside them, so the budget is not a hard cap.
        assert held < 20 * MIB, f"memtables hold {held / MIB:.1f} MiB with a 2 MiB budget (48 MiB written)"
        usage = store.memory_usage()
        assert 0 < usage.memtable_bytes < 20 * MIB
        # Memtables are charged to the block cache, so it reports at least them.
        assert usage.block_cache_bytes >= usage.memtable_bytes
        assert store.get(3, "c", (3999).to_bytes(4, "big")) == value
    finally:
        store.close_all()


def test_block_cache_usage_is_reported_and_stays_near_its_capacity(tmp_path: Path) -> None:
    options = StoreOptions(block_cache_bytes=2 * MIB, memtable_bytes=1 * MIB, write_buffer_bytes=1 * MIB)
    store = StateStore(tmp_path, "ns", CFS, options=options)
    store.open(0)
    try:
        value = os.urandom(1000)
        for i in range(6000):
            store.apply(0, {("a", i.to_bytes(4, "big")): value}, changelog_offset=i + 1)
        store._partitions[0].cfs["a"].flush()
        for i in range(0, 6000, 7):  # reads of flushed keys load their blocks into the cache
            assert store.get(0, "a", i.to_bytes(4, "big")) == value
        after = store.memory_usage()
        # The reads touch ~6 MB of blocks through a 2 MiB cache, so the unpinned part (data
        # blocks, not the memtables' reservation or pinned index blocks) fills most of it.
        # Comparing with a reading taken before the reads is not enough: a flush still
        # releasing its memtable charge can leave the cache just as full before them.
        assert after.block_cache_bytes - after.pinned_bytes > MIB
        assert after.block_cache_bytes <= 2 * MIB + MIB // 2  # an LRU cache may pass capacity by little
        assert 0 <= after.pinned_bytes <= after.block_cache_bytes
    finally:
        store.close_all()


def test_a_memtable_budget_above_the_cache_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="memtable_bytes"):
        StateStore(tmp_path, "ns", CFS, options=StoreOptions(block_cache_bytes=MIB, memtable_bytes=2 * MIB))
