"""Throughput and CPU per workflow minute by minute, at saturation, on one engine process.

Usage::

    python -m bench.throughput_drift [MINUTES] [PROFILE_MINUTES]

Starts ``kronicle server start-dev --partitions 1 --state-cache-mb 16`` (the memory
run's engine), then runs 400 closed-loop callers in one-minute levels for MINUTES
(default 15) and prints, per minute, completed workflows per second, the p50 and
the CPU milliseconds per workflow of the engine, the broker and this process
(worker + client). PROFILE_MINUTES (comma-separated, e.g. ``2,14``) record the
engine and this process with py-spy for 30 s in those minutes
(``throughput-drift-prof-{engine,client}-M.txt``, collapsed stacks) to compare
what costs more later in a run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench import _workloads as workloads
from bench._adapters import KronicleAdapter
from bench._machine import cpu_seconds, load_average


async def main(minutes: int, profile_at: set[int]) -> None:
    adapter = KronicleAdapter(slots=200, partitions=1, state_cache_mb=16)
    await adapter.start()
    # py-spy comes with the dev extra, next to this interpreter (the venv need not be on PATH).
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    try:
        await workloads.sequential_latency(adapter, 0, warmup=50)
        pids = adapter.server_pids()
        for minute in range(minutes):
            profilers = []
            if minute in profile_at and py_spy:
                for role, pid in (("engine", pids["engine"]), ("client", os.getpid())):
                    out = f"throughput-drift-prof-{role}-{minute}.txt"
                    cmd = [py_spy, "record", "-d", "30", "-r", "50", "--nonblocking", "-f", "raw", "-o", out]
                    profilers.append(
                        subprocess.Popen([*cmd, "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    )
            before = cpu_seconds(pids)
            level = await workloads.saturation(adapter, 10**9, 400, max_seconds=60)
            after = cpu_seconds(pids)
            done = max(1, level["completed"])
            per_wf = {k: round((after[k] - before[k]) * 1000 / done, 2) for k in after if k in before}
            print(
                f"minute {minute}: {level['throughput_wf_per_s']} wf/s, p50 {level.get('p50_ms')} ms,"
                f" CPU ms/wf {per_wf}, load {load_average()}",
                flush=True,
            )
            for profiler in profilers:
                profiler.wait()
    finally:
        await adapter.stop()


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 15,
            {int(m) for m in sys.argv[2].split(",")} if len(sys.argv) > 2 else set(),
        )
    )
