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

What those records cost Kafka, without the rest of the engine: ``--dump FILE``
saves every batch's records (from the source tree on ``PYTHONPATH``), and
``--replay NAME=FILE ...`` produces the dumps, alternating, round after round,
into one fresh local broker, one transaction per batch with the engine's
producer settings, and prints the CPU ms per workflow of this process (the
produce calls and librdkafka's threads) and of the broker::

    (cd $BASE && PYTHONPATH=$PWD python -m bench.write_count --concurrency 50 --dump /tmp/base.pkl)
    (cd $NEW && PYTHONPATH=$PWD python -m bench.write_count --concurrency 50 --dump /tmp/new.pkl)
    python -m bench.write_count --replay base=/tmp/base.pkl --replay new=/tmp/new.pkl --rounds 3

With ``--store`` the replay applies the dumps' changelog records to a fresh RocksDB store
instead (what ``StateStore.apply`` costs after each commit, and what restore applies).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import pickle
import time
from pathlib import Path
from typing import Any

from bench.workflow_cpu import run
from kronicle.engine.batch import PartitionBatch
from kronicle.state.changelog import encode_changelog_key

__all__ = ["Count", "count", "main"]

# What the shell adds to every record it produces (kronicle.engine.processor): a sequence
# number (a 6-digit one here) and the failover version.
_HEADERS = len("kronicle.seq") + 6 + len("kronicle.version") + 1
_CHANGELOG = "<state-changelog>"
Record = tuple[str, bytes | None, bytes | None]
"""(topic, key, value) of one produced record; the changelog is named ``_CHANGELOG``."""
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
    dump: list[list[Record]] | None = None
    """When a list, every batch's records as the processor would produce them are appended to it."""

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
        if self.dump is not None:
            records: list[Record] = [(o.topic, o.key, o.value) for o in batch.effects.outputs]
            records += [(_CHANGELOG, encode_changelog_key(cf, key), value) for (cf, key), value in writes.items()]
            self.dump.append(records)
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


def count(workflows: int, concurrency: int, *, dump: bool = False) -> Count:
    """Run ``workflows`` one-activity workflows, ``concurrency`` per batch, and count their writes."""
    totals = Count(workflows=workflows, dump=[] if dump else None)
    run(workflows, concurrency, observe=totals.observe)
    return totals


def replay(variants: list[tuple[str, Path]], rounds: int) -> None:
    """Produce each dump into one local broker, alternating; print CPU ms per workflow of each side."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from bench._machine import cpu_seconds, load_average
    from bench.engine_cpu import broker_pid
    from kronicle.connectors.local_kafka import LocalBroker

    dumps = {name: pickle.loads(path.read_bytes()) for name, path in variants}
    with LocalBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topics = {t for d in dumps.values() for batch in d["batches"] for t, _, _ in batch}
        names = {t: f"replay.{t.strip('<>')}" for t in topics}
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.create_topics([NewTopic(n, 1, 1) for n in names.values()]).values():
            future.result()
        broker_pids = {"broker": broker_pid(broker)}
        for rnd in range(rounds):
            for name, _ in variants:
                dump = dumps[name]
                producer = Producer(
                    {
                        "bootstrap.servers": bootstrap,
                        "transactional.id": f"replay-{name}-{rnd}",
                        "linger.ms": 2,
                        "queue.buffering.max.messages": 1_000_000,
                    }
                )
                producer.init_transactions(30)
                seq = 0
                load = load_average()
                broker_before = cpu_seconds(broker_pids)["broker"]
                mine_before = time.process_time()
                wall = time.monotonic()
                for batch in dump["batches"]:
                    producer.begin_transaction()
                    for topic, key, value in batch:
                        seq += 1
                        headers = [("kronicle.seq", str(seq).encode()), ("kronicle.version", b"0")]
                        producer.produce(names[topic], value, key, headers=headers, partition=0)
                    producer.commit_transaction(30)
                wall = time.monotonic() - wall
                mine = (time.process_time() - mine_before) * 1000 / dump["workflows"]
                brk = (cpu_seconds(broker_pids)["broker"] - broker_before) * 1000 / dump["workflows"]
                records = sum(len(b) for b in dump["batches"]) / dump["workflows"]
                print(
                    f"{name}-r{rnd}: {records:.1f} records/wf, {len(dump['batches'])} transactions, "
                    f"producer process {mine:.3f} ms/wf, broker {brk:.3f} ms/wf, {wall:.1f} s, load {load}",
                    flush=True,
                )


def store_apply(variants: list[tuple[str, Path]], rounds: int) -> None:
    """Apply each dump's changelog records to a fresh RocksDB store, batch by batch, alternating.

    What the engine's ``StateStore.apply`` after each commit costs, and what a restore or
    standby applies per workflow. Prints CPU ms per workflow (process time, RocksDB's
    background threads included).
    """
    import tempfile

    from kronicle.state.changelog import decode_changelog_key
    from kronicle.state.store import StateStore

    dumps = {name: pickle.loads(path.read_bytes()) for name, path in variants}
    for rnd in range(rounds):
        for name, _ in variants:
            dump = dumps[name]
            batches = [
                {decode_changelog_key(key): value for topic, key, value in batch if topic == _CHANGELOG and key}
                for batch in dump["batches"]
            ]
            families = sorted({cf for batch in batches for cf, _ in batch})
            with tempfile.TemporaryDirectory() as root:
                store = StateStore(Path(root), "bench", families)
                store.open(0)
                before = time.process_time()
                for offset, writes in enumerate(batches):
                    store.apply(0, writes, changelog_offset=offset + 1)
                spent = (time.process_time() - before) * 1000 / dump["workflows"]
                store.close_all()
            puts = sum(len(b) for b in batches) / dump["workflows"]
            print(f"{name}-r{rnd}: {puts:.1f} RocksDB writes/wf, apply {spent:.3f} ms/wf", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, action="append", help="workflows per batch (repeatable)")
    parser.add_argument("--dump", type=Path, help="save the batches' records (first --concurrency) to this file")
    parser.add_argument("--replay", action="append", default=[], help="NAME=FILE from --dump (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", action="store_true", help="with --replay: apply to RocksDB instead of Kafka")
    args = parser.parse_args()
    if args.replay and args.store:
        store_apply([(n, Path(p)) for n, p in (v.split("=", 1) for v in args.replay)], args.rounds)
        return
    if args.replay:
        replay([(n, Path(p)) for n, p in (v.split("=", 1) for v in args.replay)], args.rounds)
        return
    for concurrency in args.concurrency or [1, 200]:
        print(f"== {args.workflows} one-activity workflows, {concurrency} per batch")
        totals = count(args.workflows, concurrency, dump=args.dump is not None)
        print(totals.report())
        if args.dump is not None:
            data: dict[str, Any] = {
                "workflows": args.workflows,
                "batches": totals.dump,
            }
            args.dump.write_bytes(pickle.dumps(data))
            print(f"records of {len(data['batches'])} batches saved to {args.dump}")
            return


if __name__ == "__main__":
    main()
