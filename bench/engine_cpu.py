"""CPU per completed workflow of Kronicle's engine + frontend process, A/B in one sitting.

Runs only Kronicle's saturation level (one-activity workflows, closed-loop
callers) on one shared local broker, once per *variant* and round, each on a
fresh ``kronicle server start-dev --partitions 1`` process whose ``PYTHONPATH``
is the variant's source tree, so a change and its baseline are measured
alternately in the same sitting on the same broker::

    python -m bench.engine_cpu --variant base=/work/main --variant new=$PWD \\
        --callers 200 --workflows 2000 --rounds 2 [--profile 15]

The worker and the client run in this process (from this process's own
``kronicle``). Prints completed wf/s and CPU ms per workflow of the engine
process, the broker (whole-broker CPU, shared by every run on it) and this
process, and the load average. ``--profile S`` records the engine process with
py-spy for S seconds during each level and prints the top functions per thread.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import _workloads as workloads
from bench._adapters import KronicleAdapter
from bench._machine import cpu_seconds, load_average

__all__ = ["main", "summarise_profile"]


def summarise_profile(path: Path, top: int = 25) -> str:
    """Per-thread totals and the functions with the most inclusive samples, from py-spy's raw (collapsed) output."""
    threads: collections.Counter[str] = collections.Counter()
    inclusive: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = frames[0]
        threads[thread] += n
        for frame in set(frames[1:]):
            inclusive[thread][frame] += n
    out = []
    for thread, total in threads.most_common(6):
        out.append(f"== {thread}: {total} samples")
        for frame, n in inclusive[thread].most_common(top):
            out.append(f"  {100 * n / total:5.1f}%  {frame}")
    return "\n".join(out)


async def _level(adapter: KronicleAdapter, args: argparse.Namespace, label: str) -> dict[str, Any]:
    await workloads.sequential_latency(adapter, 0, warmup=args.warmup)
    await workloads.saturation(adapter, args.callers * 2, args.callers)  # fill the pipeline first
    load = load_average()
    spy: subprocess.Popen[bytes] | None = None
    profile_out = Path(tempfile.gettempdir()) / f"engine-cpu-{label}-{os.getpid()}.txt"
    if args.profile:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        cmd = [py_spy, "record", "--threads", "-r", "200", "-d", str(args.profile)]
        cmd += ["-p", str(adapter.server_pids()["engine"]), "-o", str(profile_out), "--format", "raw"]
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = cpu_seconds(adapter.server_pids())
    threads_before = _thread_cpu(adapter.server_pids()["engine"])
    level = await workloads.saturation(adapter, args.workflows, args.callers)
    after = cpu_seconds(adapter.server_pids())
    threads_after = _thread_cpu(adapter.server_pids()["engine"])
    if spy is not None:
        spy.wait(60)
        if profile_out.exists():
            print(f"--- profile {label} ({profile_out})")
            print(summarise_profile(profile_out, args.top))
    done = max(1, level["completed"])
    cpu = {k: round((after[k] - before[k]) * 1000 / done, 2) for k in after if k in before}
    per_thread = {
        tid: (name, (t - threads_before.get(tid, (name, 0.0))[1]) * 1000 / done)
        for tid, (name, t) in threads_after.items()
    }
    top = sorted(per_thread.items(), key=lambda kv: -kv[1][1])[:8]
    print(f"{label} engine threads, CPU ms/wf: " + ", ".join(f"{tid} {name} {ms:.2f}" for tid, (name, ms) in top))
    return {
        "label": label,
        "wf_per_s": level["throughput_wf_per_s"],
        "completed": level["completed"],
        "errors": level["errors"],
        "p50_ms": level.get("p50_ms"),
        "cpu_ms_per_wf": cpu,
        "load": load,
    }


async def _run(args: argparse.Namespace) -> None:
    from kronicle.connectors.local_kafka import LocalBroker

    variants = [v.split("=", 1) for v in args.variant]
    with LocalBroker() as broker:
        results = []
        for rnd in range(args.rounds):
            for name, tree in variants:
                # ``python -m`` puts the working directory first on the path: the server must start in the tree.
                os.environ["PYTHONPATH"] = str(Path(tree).resolve())
                here = os.getcwd()
                os.chdir(tree)
                adapter = KronicleAdapter(slots=200, partitions=1, kafka=broker.bootstrap_servers)
                try:
                    await adapter.start()
                finally:
                    os.chdir(here)
                try:
                    pids = adapter.server_pids()
                    pids["kafka_broker"] = broker_pid(broker)
                    adapter.server_pids = lambda pids=pids: pids  # type: ignore[method-assign]
                    res = await _level(adapter, args, f"{name}-r{rnd}")
                finally:
                    await adapter.stop()
                results.append(res)
                print(
                    f"{res['label']}: {res['wf_per_s']} wf/s ({res['completed']} wf, {res['errors']} errors,"
                    f" p50 {res['p50_ms']} ms) CPU ms/wf {res['cpu_ms_per_wf']} load {res['load']}",
                    flush=True,
                )


def _thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of each thread of ``pid`` by OS thread id, with its name (``comm``)."""
    out: dict[int, tuple[str, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def broker_pid(broker: Any) -> int:
    """The broker JVM's pid."""
    process = broker._node(broker.node_ids()[0]).process
    return int(process.pid) if process is not None else os.getpid()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", required=True, help="NAME=SOURCE_TREE (repeatable)")
    parser.add_argument("--callers", type=int, default=200)
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0, help="py-spy the engine process for this many seconds")
    parser.add_argument("--top", type=int, default=30)
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
