"""The memory run's attribution: parts paired with RSS on one clock, /metrics parsed into MB by part."""

from __future__ import annotations

import pytest

from bench import _machine
from bench._machine import engine_memory_parts, memory_parts

_METRICS = """\
# HELP kronicle_state_memory_bytes RocksDB memory
kronicle_state_memory_bytes{namespace="default",kind="block_cache"} 8388608.0
kronicle_state_memory_bytes{namespace="other",kind="block_cache"} 2097152.0
kronicle_state_memory_bytes{namespace="default",kind="memtables"} 1048576.0
kronicle_process_malloc_bytes{kind="in_use"} 52428800.0
kronicle_process_malloc_bytes{kind="free"} 3145728.0
kronicle_process_python_allocated_blocks 123456.0
kronicle_engine_transactions_total{namespace="default",outcome="committed"} 7.0
"""


def test_engine_memory_parts_reads_mb_by_part(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_machine, "metrics_text", lambda frontend: _METRICS)
    parts = engine_memory_parts("127.0.0.1:1")
    assert parts == {
        "rocksdb_block_cache": 10.0,  # summed over namespaces
        "rocksdb_memtables": 1.0,
        "malloc_in_use": 50.0,
        "malloc_free": 3.0,
        "python_blocks_k": 123.5,
    }


def test_engine_memory_parts_is_empty_without_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_machine, "metrics_text", lambda frontend: None)
    assert engine_memory_parts("127.0.0.1:1") == {}


def test_memory_parts_separates_a_filling_cache_from_the_rest() -> None:
    # RSS grows 1.2 MB/min: half of it the cache (0.6 MB/min), half something else.
    rss = [(float(t), 80 + t * 0.02) for t in range(600)]
    parts = [(float(t) + 0.4, {"rocksdb_block_cache": 1 + t * 0.01, "malloc_free": 5.0}) for t in range(0, 600, 10)]
    out = memory_parts(rss, parts)
    assert out["rss"]["slope_mb_per_min_second_half"] == pytest.approx(1.2, abs=0.01)
    assert out["rocksdb_block_cache"]["slope_mb_per_min_second_half"] == pytest.approx(0.6, abs=0.01)
    assert out["rss_minus_rocksdb"]["slope_mb_per_min_second_half"] == pytest.approx(0.6, abs=0.02)
    assert out["malloc_free"]["slope_mb_per_min_second_half"] == 0.0
    assert out["rss"]["first"] == 80.0


def test_memory_parts_needs_both_series() -> None:
    assert memory_parts([], [(0.0, {"rocksdb_block_cache": 1.0})]) == {}
    assert memory_parts([(0.0, 80.0)], []) == {}
