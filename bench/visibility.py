"""Visibility: list/count latency over N executions, projector throughput and close-to-visible lag.

For each database (SQLite file in WAL mode; a throwaway PostgreSQL 15 server
with fsync on):

* ``load_per_s``: executions written straight through ``VisibilityStore.apply``
  in batches of 1000 (the store's own write ceiling);
* ``list_ms`` / ``count_ms``: p50 and p99 over ``--repeat`` runs of typical
  queries against ``--executions`` rows (first page of 100);
* ``projector_per_s``: records/s from a Kafka topic through the projector
  (decode, upsert, offset commit) into an empty database;
* ``close_lag_ms``: p50/p99 from a run's close time (stamped when the record is
  produced) to the row being committed, with records produced at
  ``--lag-rate`` per second for ``--lag-seconds`` while the projector runs.

Usage::

    PYTHONPATH=$PWD python -m bench.visibility [--executions 100000] [--kafka HOST:PORT] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kronicle._wire import payload_to_bytes
from kronicle.connectors.local_kafka import LocalBroker
from kronicle.connectors.visibility import ExecutionUpdate, ProjectorConfig, VisibilityProjector, VisibilityStore
from kronicle.connectors.visibility.local_postgres import LocalPostgres
from kronicle.converter import DataConverter
from kronicle.schemas import default_registry
from kronicle.topics import NamespaceTopics

NS = "bench"
T0 = 1_704_067_200_000
DAY = 86_400_000
TYPES = [f"Type{i}" for i in range(10)]
_to_payload = DataConverter().payload_converter.to_payload
_CUSTOMER = {f"c-{i}": payload_to_bytes(_to_payload(f"c-{i}")) for i in range(1000)}
_PRIORITY = {i: payload_to_bytes(_to_payload(i)) for i in range(10)}

QUERIES = {
    "type+status": "WorkflowType = 'Type3' AND ExecutionStatus = 'Running'",
    "time range (1 day)": "StartTime BETWEEN '2024-01-10T00:00:00Z' AND '2024-01-11T00:00:00Z'",
    "custom keyword": "CustomerId = 'c-42'",
    "custom keyword + status": "CustomerId = 'c-42' AND ExecutionStatus = 'Completed'",
    "all (default order)": "",
    "type, by start time": "WorkflowType = 'Type7' ORDER BY StartTime DESC",
}


def make_record(i: int, rng: random.Random, *, close_ms: int | None = None) -> dict[str, Any]:
    start = T0 + rng.randrange(30 * DAY)
    roll = rng.random()
    status = "RUNNING" if roll < 0.2 else ("FAILED" if roll < 0.3 else "COMPLETED")
    closed = status != "RUNNING" or close_ms is not None
    return {
        "workflow_id": f"wf-{i}",
        "run_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "workflow_type": TYPES[i % len(TYPES)],
        "task_queue": "bench",
        "status": "COMPLETED" if close_ms is not None else status,
        "start_time_ms": start,
        "execution_time_ms": start,
        "close_time_ms": (close_ms or start + rng.randrange(60_000)) if closed else None,
        "history_length": 11 if closed else 2,
        "first_run_id": "",
        "memo": {},
        "search_attributes": {"CustomerId": _CUSTOMER[f"c-{i % 1000}"], "Priority": _PRIORITY[i % 10]},
    }


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def load(store: VisibilityStore, n: int) -> float:
    rng = random.Random(7)
    await store.register_search_attribute(NS, "CustomerId", "Keyword")
    await store.register_search_attribute(NS, "Priority", "Int")
    began = time.perf_counter()
    for lo in range(0, n, 1000):
        await store.apply([ExecutionUpdate(NS, make_record(i, rng), 1) for i in range(lo, min(n, lo + 1000))])
    return n / (time.perf_counter() - began)


async def query_latencies(store: VisibilityStore, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, query in QUERIES.items():
        lists, counts = [], []
        for _ in range(repeat):
            began = time.perf_counter()
            await store.list(NS, query, page_size=100)
            lists.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            total = await store.count(NS, query)
            counts.append((time.perf_counter() - began) * 1000)
        out[name] = {
            "matches": total,
            "list_ms_p50": pct(lists, 0.5),
            "list_ms_p99": pct(lists, 0.99),
            "count_ms_p50": pct(counts, 0.5),
            "count_ms_p99": pct(counts, 0.99),
        }
    began = time.perf_counter()
    await store.count_by_status(NS)
    out["count_by_status (all)"] = {"ms": round((time.perf_counter() - began) * 1000, 2)}
    # Deep pagination: page 20 costs what page 1 costs with keyset paging.
    token = None
    pages = []
    for _ in range(20):
        began = time.perf_counter()
        _, token = await store.list(NS, "WorkflowType = 'Type1'", page_size=100, next_page_token=token)
        pages.append((time.perf_counter() - began) * 1000)
    out["pages 1..20 of type"] = {"first_ms": round(pages[0], 2), "twentieth_ms": round(pages[-1], 2)}
    return out


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # must outlive the future
    admin.create_topics([NewTopic(topic, 4, 1)])[topic].result(30)


def produce(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> None:
    registry = default_registry()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "partitioner": "murmur2_random"})
    for seq, r in enumerate(records, 1):
        key = (r["workflow_id"] + r["run_id"]).encode()
        value = registry.encode("kronicle.workflow.VisibilityRecord", r)
        while True:
            try:
                producer.produce(topic, value, key, headers=[("kronicle.seq", str(seq).encode())])
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)


async def projector_throughput(bootstrap: str, url: str, n: int) -> float:
    ns = f"{NS}{uuid.uuid4().hex[:6]}"
    topic = NamespaceTopics(ns).visibility
    create_topic(bootstrap, topic)
    rng = random.Random(3)
    produce(bootstrap, topic, [make_record(i, rng) for i in range(n)])
    async with await VisibilityStore.open(url) as store:
        projector = VisibilityProjector(ProjectorConfig(bootstrap, ns, batch_size=2000), store)
        # Time from the step that got the first records, so joining the group is not counted.
        began: float | None = None
        while projector.stats.consumed < n:
            step = time.perf_counter()
            if await projector.run_once(timeout=0.5) and began is None:
                began = step
        assert began is not None
        rate = n / (time.perf_counter() - began)
        await projector.stop()
    return rate


async def close_lag(bootstrap: str, url: str, rate: int, seconds: float) -> dict[str, Any]:
    ns = f"{NS}{uuid.uuid4().hex[:6]}"
    topic = NamespaceTopics(ns).visibility
    create_topic(bootstrap, topic)
    registry = default_registry()
    async with await VisibilityStore.open(url) as store:
        config = ProjectorConfig(bootstrap, ns, batch_size=1000, poll_timeout_s=0.05)
        async with VisibilityProjector(config, store) as projector:
            producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
            rng = random.Random(5)
            while len(projector.assignment()) < 4:  # measure projecting, not joining the group
                await asyncio.sleep(0.05)
            sent, began = 0, time.perf_counter()
            while time.perf_counter() - began < seconds:
                due = int((time.perf_counter() - began) * rate)
                while sent < due:
                    r = make_record(sent, rng, close_ms=int(time.time() * 1000))
                    producer.produce(
                        topic, registry.encode("kronicle.workflow.VisibilityRecord", r), r["run_id"].encode()
                    )
                    sent += 1
                producer.poll(0)
                await asyncio.sleep(0.005)
            producer.flush(10)
            while projector.stats.consumed < sent:
                await asyncio.sleep(0.05)
        lags = list(projector.stats.close_lag_ms)
    return {"records": sent, "rate_per_s": rate, "p50_ms": pct(lags, 0.5), "p99_ms": pct(lags, 0.99)}


@contextlib.contextmanager
def kafka(bootstrap: str | None) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    with LocalBroker() as broker:
        yield broker.bootstrap_servers


async def bench_database(name: str, url: str, args: argparse.Namespace, bootstrap: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    async with await VisibilityStore.open(url) as store:
        result["load_per_s"] = round(await load(store, args.executions))
        result["queries"] = await query_latencies(store, args.repeat)
    result["projector_per_s"] = round(await projector_throughput(bootstrap, url, args.projector_records))
    result["close_lag_ms"] = await close_lag(bootstrap, url, args.lag_rate, args.lag_seconds)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--projector-records", type=int, default=50_000)
    parser.add_argument("--lag-rate", type=int, default=500)
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    parser.add_argument("--kafka", default=None, help="use this broker instead of starting one")
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": platform.platform(), "executions": args.executions}
    with kafka(args.kafka) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "sqlite"):
            results["sqlite"] = asyncio.run(bench_database("sqlite", f"sqlite:///{tmp}/v.db", args, bootstrap))
        if args.only in (None, "postgresql"):
            with LocalPostgres(durable=True) as pg:
                results["postgresql"] = asyncio.run(bench_database("postgresql", pg.create_database(), args, bootstrap))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for db in ("sqlite", "postgresql"):
        if db not in results:
            continue
        r = results[db]
        lag = r["close_lag_ms"]
        print(f"== {db}: {args.executions} executions; load {r['load_per_s']}/s")
        print(f"   projector {r['projector_per_s']} records/s")
        print(f"   close->visible lag at {lag['rate_per_s']}/s: p50 {lag['p50_ms']} ms, p99 {lag['p99_ms']} ms")
        for name, q in r["queries"].items():
            print(f"   {name:28s} {q}")


if __name__ == "__main__":
    main()
