"""Prometheus metrics of the partition processor (served by the frontend's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BATCH_SIZE",
    "COMMANDS",
    "DLQ",
    "LAG",
    "MALLOC_ARENA_MAX",
    "MALLOC_TRIMS",
    "MALLOC_TRIM_CPU",
    "MALLOC_TRIM_RELEASED",
    "MALLOC_TRIM_SECONDS",
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

# The server process's allocator (kronicle._memory): periodic malloc_trim and the arena cap.
MALLOC_TRIMS = Counter("kronicle_process_malloc_trims_total", "Periodic malloc_trim(0) calls of this process.")
MALLOC_TRIM_SECONDS = Histogram(
    "kronicle_process_malloc_trim_seconds",
    "Duration of one malloc_trim(0) call (it holds each malloc arena's lock in turn).",
    buckets=(0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
)
MALLOC_TRIM_CPU = Counter(
    "kronicle_process_malloc_trim_cpu_seconds_total",
    "CPU time spent in malloc_trim(0) (its cost; the histogram's wall time also counts time not scheduled).",
)
MALLOC_TRIM_RELEASED = Counter(
    "kronicle_process_malloc_trim_released_bytes_total",
    "Resident memory given back to the operating system by malloc_trim(0) (RSS before minus after).",
)
MALLOC_ARENA_MAX = Gauge(
    "kronicle_process_malloc_arena_max",
    "The glibc malloc arena cap this process set at start (0: glibc's default, or not glibc).",
)
