"""Micro-benchmark of :class:`kronicle.state.store.StateStore`.

Prints the cost of ``apply`` for a batch of 500 writes of 200-byte values (the
shape of a busy engine batch) and of a point ``get`` (hit and miss).

    PYTHONPATH=. python bench/state_store.py [--batches 400]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from kronicle.state.store import StateStore

CFS = ("mutable_state", "history_index", "timers", "timer_ids", "dedup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=400, help="batches of 500 writes to apply")
    parser.add_argument("--gets", type=int, default=100_000, help="point reads to time")
    args = parser.parse_args()

    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        store = StateStore(Path(tmp), "bench", CFS)
        store.open(0)
        keys: list[tuple[str, bytes]] = []
        per_batch: list[float] = []
        offset = 0
        for b in range(args.batches):
            writes: dict[tuple[str, bytes], bytes | None] = {}
            for i in range(500):
                sk = (CFS[i % len(CFS)], f"wf-{b:05d}-{i:03d}".encode())
                writes[sk] = os.urandom(200)
                keys.append(sk)
            offset += 500
            t0 = time.perf_counter()
            store.apply(0, writes, offset)
            per_batch.append(time.perf_counter() - t0)
        print(
            f"apply 500 x 200 B: median {statistics.median(per_batch) * 1e6:.0f} us/batch, "
            f"p99 {sorted(per_batch)[int(len(per_batch) * 0.99)] * 1e6:.0f} us/batch, "
            f"{len(keys) / sum(per_batch):,.0f} writes/s ({len(keys):,} keys)"
        )

        sample = [keys[rng.randrange(len(keys))] for _ in range(args.gets)]
        t0 = time.perf_counter()
        for cf, key in sample:
            store.get(0, cf, key)
        hit = (time.perf_counter() - t0) / len(sample)
        t0 = time.perf_counter()
        for cf, key in sample:
            store.get(0, cf, key + b"-missing")
        miss = (time.perf_counter() - t0) / len(sample)
        print(f"get (memtable/SST mix, hit): {hit * 1e6:.2f} us   get (miss): {miss * 1e6:.2f} us")

        # After a reopen everything is in SST files: the block cache and bloom filters matter.
        store.close(0)
        store.open(0)
        t0 = time.perf_counter()
        for cf, key in sample:
            store.get(0, cf, key)
        hit_sst = (time.perf_counter() - t0) / len(sample)
        t0 = time.perf_counter()
        for cf, key in sample:
            store.get(0, cf, key + b"-missing")
        miss_sst = (time.perf_counter() - t0) / len(sample)
        print(f"get after reopen (SST, hit): {hit_sst * 1e6:.2f} us   get (SST, miss): {miss_sst * 1e6:.2f} us")
        store.close_all()


if __name__ == "__main__":
    main()
