"""Kronicle's single-workflow latency and signal path alone, for before/after comparisons.

Starts ``kronicle server start-dev --partitions 1`` as ``make bench`` does (or
uses ``--kafka``), runs the sequential one-activity workload and the 100-signal
workload from :mod:`bench._workloads`, and prints p50/p90/p99 with the load
average. With ``--hops`` it also prints the median time between the history
events of the measured workflows (where the time of one workflow goes).

Usage::

    python -m bench.latency [--seq 200] [--warmup 50] [--signal-workflows 2] [--hops] [--saturation 2000@100]
        [--kafka HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
from typing import Any

from bench import _workloads as workloads
from bench._adapters import KronicleAdapter
from bench._machine import cpu_seconds


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


async def _hops(adapter: KronicleAdapter, workflow_ids: list[str]) -> dict[str, float]:
    """Median milliseconds from each history event to the next, over the given workflows."""
    gaps: dict[str, list[float]] = {}
    for wid in workflow_ids:
        history = await adapter.client.get_workflow_handle(wid).fetch_history()
        events = history.events
        for a, b in itertools.pairwise(events):
            name = f"{a['event_type']} -> {b['event_type']}"
            gaps.setdefault(name, []).append(b["event_time"] - a["event_time"])
    return {k: round(statistics.median(v), 2) for k, v in gaps.items()}


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    adapter = KronicleAdapter(slots=200, partitions=1, kafka=args.kafka)
    await adapter.start()
    out: dict[str, Any] = {"load_before": _load()}
    try:
        if args.saturation:
            total, concurrency = (int(x) for x in args.saturation.split("@"))
            await workloads.sequential_latency(adapter, 0, warmup=args.warmup)
            before = cpu_seconds(adapter.server_pids())
            level = await workloads.saturation(adapter, total, concurrency)
            after = cpu_seconds(adapter.server_pids())
            per = {k: round((after[k] - before[k]) * 1000 / max(1, level["completed"]), 2) for k in after}
            per["total"] = round(sum(per.values()), 2)
            out["saturation"] = {
                k: level[k] for k in ("concurrency", "completed", "errors", "throughput_wf_per_s", "p50_ms", "p99_ms")
            }
            out["saturation"]["cpu_ms_per_wf"] = per
            out["load_after_saturation"] = _load()
        seq = await workloads.sequential_latency(adapter, args.seq, warmup=args.warmup)
        samples = seq.pop("samples_ms")
        out["sequential"] = seq
        out["load_after_seq"] = _load()
        if args.signal_workflows:
            sig = await workloads.signals(adapter, args.signal_workflows)
            out["signals"] = {"workflow": sig["workflow"], "signal_call": sig["signal_call"]}
        if args.hops:
            out["hops_ms"] = await _hops(adapter, [await _one_traced(adapter) for _ in range(20)])
        out["samples_head"] = samples[:5]
    finally:
        out["load_after"] = _load()
        await adapter.stop()
    return out


async def _one_traced(adapter: KronicleAdapter) -> str:
    import uuid

    wid = f"traced-{uuid.uuid4().hex[:6]}"
    await adapter.client.execute_workflow(adapter.wf.OneActivity.run, wid, id=wid, task_queue=adapter.task_queue)
    return wid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--signal-workflows", type=int, default=2)
    parser.add_argument("--hops", action="store_true")
    parser.add_argument("--saturation", help="TOTAL@CONCURRENCY: a saturation level first, with CPU ms per workflow")
    parser.add_argument("--kafka")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_main(args)), indent=1))


if __name__ == "__main__":
    main()
