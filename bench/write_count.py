"""What the engine writes per one-activity workflow: records and bytes per topic, produce calls, RocksDB writes.

Drives the real batch + workflow handler the way ``bench.workflow_cpu`` does (no
Kafka: start, workflow-task completion scheduling the activity, activity
completion, workflow-task completion closing the workflow, each step of
``--concurrency`` workflows in one batch) and counts, for every batch, what
``Processor._produce_batch`` would produce from it: one record per output, one
changelog record per state write plus the partition's sequence-number record,
each with the two headers the shell adds. Bytes are key + value + headers (the
Kafka record framing, ~20 B per record, is not counted).

    python -m bench.write_count [--workflows 1000] [--concurrency 1 --concurrency 200]

The figures are deterministic for a given source tree, so comparing two trees
(``PYTHONPATH=<tree> python -m bench.write_count``) shows what a change cut.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses

from bench.workflow_cpu import run
from kronicle.engine.batch import PartitionBatch
from kronicle.state.changelog import encode_changelog_key

__all__ = ["Count", "count", "main"]

# What the shell adds to every record it produces (kronicle.engine.processor): a sequence
# number (a 6-digit one here) and the failover version.
_HEADERS = len("kronicle.seq") + 6 + len("kronicle.version") + 1
_CHANGELOG = "<state-changelog>"
_ENGINE_SEQ = ("engine", b"seq")


@dataclasses.dataclass
class Count:
    """Totals over a run (divide by ``workflows`` for per-workflow figures)."""

    workflows: int = 0
    batches: int = 0
    records: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """Records produced per topic (the changelog as ``<state-changelog>``)."""
    bytes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """Key + value + header bytes produced per topic."""
    cf_puts: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """RocksDB puts per column family (each is also a changelog record)."""
    cf_deletes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """RocksDB deletes per column family (each is also a changelog tombstone)."""
    cf_bytes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    """Changelog key + value bytes per column family."""

    def observe(self, batch: PartitionBatch) -> None:
        """Count what the processor would produce and write for ``batch``."""
        self.batches += 1
        for out in batch.effects.outputs:
            topic = _short(out.topic)
            self.records[topic] += 1
            size = len(out.key or b"") + len(out.value or b"") + _HEADERS
            self.bytes[topic] += size + sum(len(k) + len(v) for k, v in out.headers)
        writes = dict(batch.effects.writes)
        if writes or batch.effects.outputs:
            writes[_ENGINE_SEQ] = b"\x00" * 8
        for (cf, key), value in writes.items():
            size = len(encode_changelog_key(cf, key)) + len(value or b"")
            self.records[_CHANGELOG] += 1
            self.bytes[_CHANGELOG] += size + _HEADERS
            self.cf_bytes[cf] += size
            if value is None:
                self.cf_deletes[cf] += 1
            else:
                self.cf_puts[cf] += 1

    def report(self) -> str:
        """A per-workflow table."""
        n = max(1, self.workflows)
        lines = [f"{'topic':<28} {'records/wf':>10} {'bytes/wf':>10}"]
        for topic in sorted(self.records):
            lines.append(f"{topic:<28} {self.records[topic] / n:>10.2f} {self.bytes[topic] / n:>10.0f}")
        records, size = sum(self.records.values()), sum(self.bytes.values())
        lines.append(f"{'total (= produce calls)':<28} {records / n:>10.2f} {size / n:>10.0f}")
        lines.append(f"{'column family':<28} {'puts/wf':>10} {'deletes/wf':>10} {'bytes/wf':>10}")
        for cf in sorted(set(self.cf_puts) | set(self.cf_deletes)):
            puts, deletes = self.cf_puts[cf] / n, self.cf_deletes[cf] / n
            lines.append(f"{cf:<28} {puts:>10.2f} {deletes:>10.2f} {self.cf_bytes[cf] / n:>10.0f}")
        writes = sum(self.cf_puts.values()) + sum(self.cf_deletes.values())
        lines.append(f"{'RocksDB writes':<28} {writes / n:>10.2f}")
        lines.append(f"batches: {self.batches} for {self.workflows} workflows")
        return "\n".join(lines)


def _short(topic: str) -> str:
    # kronicle.bench.tq.bench.workflow -> tq.*.workflow; kronicle.bench.history -> history
    parts = topic.split(".")
    if len(parts) > 2 and parts[2] == "tq":
        return f"tq.*.{parts[-1]}"
    return ".".join(parts[2:]) if len(parts) > 2 else topic


def count(workflows: int, concurrency: int) -> Count:
    """Run ``workflows`` one-activity workflows, ``concurrency`` per batch, and count their writes."""
    totals = Count(workflows=workflows)
    run(workflows, concurrency, observe=totals.observe)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, action="append", help="workflows per batch (repeatable)")
    args = parser.parse_args()
    for concurrency in args.concurrency or [1, 200]:
        print(f"== {args.workflows} one-activity workflows, {concurrency} per batch")
        print(count(args.workflows, concurrency).report())


if __name__ == "__main__":
    main()
