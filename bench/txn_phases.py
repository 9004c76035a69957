"""One Kafka transaction on an idle broker, phase by phase: what the engine's commit costs.

The engine's loop is: consume a command, begin, produce the outputs, send the
consumed offsets (``AddOffsetsToTxn`` + ``TxnOffsetCommit``), commit
(flush + ``EndTxn``). This script runs that loop one record at a time (a
record is produced to an input topic, consumed read_committed, then one output
record goes out in a transaction with the offsets), times each phase and the
hop to a read_committed consumer of the output, and prints p50/p90 per phase.

Usage::

    python -m bench.txn_phases [--n 300] [--kafka HOST:PORT] [--variant "lg0:p.linger.ms=0"] ...
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kronicle.connectors.local_kafka import LocalBroker


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


class _Loop:
    """One variant's clients: a feeder, the transactional "engine" and a downstream consumer."""

    def __init__(self, bootstrap: str, producer_extra: dict[str, Any], consumer_extra: dict[str, Any]) -> None:
        run = uuid.uuid4().hex[:8]
        self.src, self.dst = f"txn-src-{run}", f"txn-dst-{run}"
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic(self.src, 1, 1), NewTopic(self.dst, 1, 1)]).values():
            f.result()
        self.feeder = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 0, "enable.idempotence": True, **producer_extra}
        )
        self.txn = Producer(
            {"bootstrap.servers": bootstrap, "transactional.id": f"txn-phases-{run}", "linger.ms": 2, **producer_extra}
        )
        self.txn.init_transactions(30)
        common = {
            "bootstrap.servers": bootstrap,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **consumer_extra,
        }
        self.engine_in = Consumer({**common, "group.id": f"g-{run}"})
        self.engine_in.assign([TopicPartition(self.src, 0, 0)])
        self.downstream = Consumer({**common, "group.id": f"d-{run}"})
        self.downstream.assign([TopicPartition(self.dst, 0, 0)])
        self.phases: dict[str, list[float]] = {k: [] for k in _PHASES}

    def step(self, record: bool) -> None:
        value = b"x" * 275
        t0 = time.perf_counter()
        self.feeder.produce(self.src, value, b"k")
        self.feeder.flush(10)
        msg = None
        while msg is None:
            msg = self.engine_in.poll(1.0)
        t1 = time.perf_counter()
        self.txn.begin_transaction()
        self.txn.produce(self.dst, value, b"k")
        t2 = time.perf_counter()
        self.txn.send_offsets_to_transaction(
            [TopicPartition(self.src, 0, (msg.offset() or 0) + 1)], self.engine_in.consumer_group_metadata(), 10
        )
        t3 = time.perf_counter()
        self.txn.commit_transaction(10)
        t4 = time.perf_counter()
        out = None
        while out is None:
            out = self.downstream.poll(1.0)
        t5 = time.perf_counter()
        if record:
            for k, v in zip(_PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0), strict=True):
                self.phases[k].append(v * 1000)

    def close(self) -> None:
        self.engine_in.close()
        self.downstream.close()


_PHASES = ("feed_to_consume", "begin+produce", "send_offsets", "commit", "commit_to_downstream", "total")


def _report(name: str, phases: dict[str, list[float]]) -> None:
    print(f"== {name}  (load {' '.join(f'{x:.1f}' for x in os.getloadavg())})")
    print(f"{'phase':24} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    for k, vals in phases.items():
        print(f"{k:24} {_pct(vals, 0.5):8.2f} {_pct(vals, 0.9):8.2f} {_pct(vals, 0.99):8.2f}")


def _kv(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        k, v = item.split("=", 1)
        out[k] = v
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--kafka")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME:p.key=v,c.key=v (p. producer, c. consumer settings); variants take turns",
    )
    parser.add_argument("--broker-set", action="append", default=[], help="broker setting key=value")
    args = parser.parse_args()
    variants: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for spec in args.variant or ["default:"]:
        name, _, settings = spec.partition(":")
        kv = _kv([x for x in settings.split(",") if x])
        variants.append(
            (
                name,
                {k[2:]: v for k, v in kv.items() if k.startswith("p.")},
                {k[2:]: v for k, v in kv.items() if k.startswith("c.")},
            )
        )

    def go(bootstrap: str) -> None:
        # Every variant's clients live side by side and take turns, one transaction each, so
        # the machine's load (shared, noisy) hits all of them alike.
        loops = {name: _Loop(bootstrap, pcfg, ccfg) for name, pcfg, ccfg in variants}
        for i in range(args.n + 20):
            for loop in loops.values():
                loop.step(record=i >= 20)
        for name, loop in loops.items():
            _report(name, loop.phases)
            loop.close()

    if args.kafka:
        go(args.kafka)
        return
    with LocalBroker(extra_config=_kv(args.broker_set)) as broker:
        go(broker.bootstrap_servers)


if __name__ == "__main__":
    main()
