"""Restore throughput and standby takeover, against a real broker.

Produces a changelog the way the engine does (transactions of 500 writes of
200-byte values, keys spread over 50,000 workflows), then prints how fast a
:class:`~kronicle.state.restore.Restorer` replays it into an empty store and how
many records a takeover reads after a :class:`~kronicle.state.standby.StandbyReplicator`
kept up with the same stream.

    PYTHONPATH=. python bench/state_restore.py [--records 200000] [--bootstrap HOST:PORT]

Without ``--bootstrap`` it starts a local single-broker Kafka (about 15 s).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kronicle.connectors.local_kafka import LocalBroker
from kronicle.state.changelog import encode_changelog_key
from kronicle.state.restore import Restorer
from kronicle.state.standby import StandbyReplicator
from kronicle.state.store import StateStore

CFS = ("mutable_state", "history_index", "timers", "timer_ids", "dedup")


@contextlib.contextmanager
def _bootstrap(given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    with LocalBroker() as broker:
        yield broker.bootstrap_servers


def _produce(bootstrap: str, topic: str, records: int, between: Callable[[], object]) -> float:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-{uuid.uuid4()}", "linger.ms": 5})
    producer.init_transactions(30)
    value = os.urandom(200)
    t0 = time.perf_counter()
    for start in range(0, records, 500):
        producer.begin_transaction()
        for i in range(start, min(start + 500, records)):
            key = encode_changelog_key(CFS[i % len(CFS)], f"wf-{i % 50_000:07d}".encode())
            producer.produce(topic, key=key, value=value, partition=0)
            producer.poll(0)
        producer.commit_transaction(30)
        between()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--bootstrap", default=None)
    args = parser.parse_args()

    with _bootstrap(args.bootstrap) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        topic = f"bench-changelog-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic(topic, 1, -1, config={"cleanup.policy": "compact"})]).values():
            f.result(30)

        # A standby tails while the changelog is produced: it polls between transactions.
        standby_store = StateStore(Path(tmp) / "standby", "bench", CFS)
        standby = StandbyReplicator(standby_store, bootstrap, topic)
        standby.set_partitions({0})
        tailed = 0

        def poll() -> None:
            nonlocal tailed
            tailed += standby.poll_once(0)

        seconds = _produce(bootstrap, topic, args.records, poll)
        print(
            f"produced {args.records:,} changelog records in {seconds:.1f} s; the standby applied {tailed:,} meanwhile"
        )

        store = StateStore(Path(tmp) / "restore", "bench", CFS)
        restorer = Restorer(store, bootstrap, topic)
        result = restorer.restore(0, timeout=600)
        print(
            f"restore into an empty store: {result.records:,} records in {result.seconds:.2f} s "
            f"= {result.records / result.seconds:,.0f} records/s"
        )
        restorer.close()
        store.close_all()

        t0 = time.perf_counter()
        applied = 0
        while standby.lag(0) != 0 or standby_store.changelog_offset(0) < result.end_offset:
            applied += standby.poll_once(0.1)
        print(f"standby caught up: {applied:,} more records applied in {time.perf_counter() - t0:.2f} s")
        standby.release(0)
        takeover = Restorer(standby_store, bootstrap, topic)
        tail = takeover.restore(0, timeout=60)
        print(f"takeover restore after the standby: {tail.records} records in {tail.seconds * 1000:.0f} ms")
        takeover.close()
        standby.close()
        standby_store.close_all()


if __name__ == "__main__":
    main()
