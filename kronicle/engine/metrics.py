"""Prometheus metrics of the partition processor (served by the frontend's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BATCH_SIZE",
    "COMMANDS",
    "DLQ",
    "LAG",
    "PARTITIONS",
    "STATE_MEMORY",
    "TIMERS_FIRED",
    "TRANSACTIONS",
    "TRANSACTION_SECONDS",
]

COMMANDS = Counter("kronicle_engine_commands_total", "Commands applied by the engine.", ["namespace"])
BATCH_SIZE = Histogram(
    "kronicle_engine_batch_size",
    "Commands per transaction.",
    ["namespace"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
)
TRANSACTION_SECONDS = Histogram(
    "kronicle_engine_transaction_seconds",
    "Time from begin to commit of a batch transaction.",
    ["namespace"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
)
TRANSACTIONS = Counter("kronicle_engine_transactions_total", "Batch transactions by outcome.", ["namespace", "outcome"])
DLQ = Counter("kronicle_engine_dlq_total", "Commands sent to the dead-letter topic.", ["namespace", "error_type"])
TIMERS_FIRED = Counter("kronicle_engine_timers_fired_total", "Durable timers fired.", ["namespace"])
LAG = Gauge("kronicle_engine_lag_records", "Commands not yet processed, per partition.", ["namespace", "partition"])
PARTITIONS = Gauge("kronicle_engine_partitions", "Partitions this process owns, by phase.", ["namespace", "phase"])
STATE_MEMORY = Gauge(
    "kronicle_state_memory_bytes",
    "RocksDB memory of the state store, by kind: block_cache (memtables charged to it included), memtables, pinned.",
    ["namespace", "kind"],
)
