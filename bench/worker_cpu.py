"""CPU per workflow of the benchmark process (Kronicle's worker + client) at saturation.

Runs only Kronicle's saturation workload: a fresh engine process (``kronicle
server start-dev --partitions 1``, on ``--kafka`` if given, else with its own
broker), a warm-up, then ``--workflows`` one-activity workflows from
``--concurrency`` closed-loop callers; prints completed workflows/s and CPU
milliseconds per workflow of each process. The CPU figure is what to compare
before and after a change (in the same sitting: the machine is shared)::

    python -m bench.worker_cpu --kafka localhost:9092 --concurrency 200 --workflows 2000 [--rounds 2]
    python -m bench.worker_cpu ... --py-spy /tmp/bench.txt   # also profile this process (collapsed stacks)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psutil

from bench import _workloads as workloads
from bench._adapters import KronicleAdapter
from bench._machine import cpu_seconds, load_average

__all__ = ["main"]


async def _run(args: argparse.Namespace) -> list[dict[str, Any]]:
    adapter = KronicleAdapter(slots=args.slots, partitions=1, kafka=args.kafka)
    await adapter.start()
    results: list[dict[str, Any]] = []
    try:
        await workloads.saturation(adapter, args.warmup, min(args.concurrency, args.warmup))
        for round_no in range(args.rounds):
            profiler = None
            if args.py_spy and round_no == args.rounds - 1:
                py_spy = Path(sys.executable).with_name("py-spy")
                profiler = subprocess.Popen(
                    [str(py_spy), "record", "--threads", "-r", "200", "-p", str(os.getpid()),
                     "-o", args.py_spy, "--format", "raw", "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                await asyncio.sleep(1.0)
            load = load_average()
            threads_before = _thread_cpu()
            before = cpu_seconds(adapter.server_pids())
            level = await workloads.saturation(adapter, args.workflows, args.concurrency)
            after = cpu_seconds(adapter.server_pids())
            threads_after = _thread_cpu()
            if profiler is not None:
                profiler.send_signal(2)  # SIGINT: py-spy writes its output and exits
                profiler.wait(60)
            n = max(1, level["completed"])
            cpu = {k: round((after[k] - before[k]) * 1000 / n, 2) for k in after if k in before}
            out = {
                "round": round_no + 1,
                "wf_per_s": level["throughput_wf_per_s"],
                "completed": level["completed"],
                "errors": level["errors"],
                "p50_ms": level.get("p50_ms"),
                "p99_ms": level.get("p99_ms"),
                "cpu_ms_per_wf": cpu,
                "bench_threads_ms_per_wf": _per_thread(threads_before, threads_after, n),
                "load_before": load,
                "load_after": load_average(),
            }
            print(json.dumps(out), flush=True)
            results.append(out)
    finally:
        await adapter.stop()
    return results


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process, by thread name (same names summed)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for t in psutil.Process().threads():
        name = names.get(t.id, "native")
        # Pool threads share a prefix; one figure per pool.
        name = name.rsplit("_", 1)[0] if name.startswith(("kronicle-workflow", "asyncio")) else name
        out[name] = out.get(name, 0.0) + t.user_time + t.system_time
    return out


def _per_thread(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    # Threads that ended between the samples are lost; threads that started count from zero.
    return {k: round((v - before.get(k, 0.0)) * 1000 / n, 2) for k, v in sorted(after.items(), key=lambda kv: -kv[1])}


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kafka", default=None, help="an existing broker (a fresh namespace on it)")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--slots", type=int, default=200)
    parser.add_argument("--py-spy", default=None, help="write py-spy collapsed stacks of the last round here")
    asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
