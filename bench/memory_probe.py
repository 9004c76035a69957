"""What grows in the engine process at saturation: RSS next to RocksDB, glibc and Python figures.

Usage::

    python -m bench.memory_probe [--seconds 600] [--callers 200] [--out mem.jsonl]
        [--cache-mb 16 [--memtable-mb 8]] [--tracemalloc]
        [--malloc-arena-max 2] [--malloc-trim-seconds 30] [--mallopt M_MMAP_THRESHOLD=131072]

Starts the dev stack (a fresh broker, the engine and the frontend, one
partition, like ``kronicle server start-dev --partitions 1``, with the
allocator tuned as start-dev tunes it: ``kronicle._memory``) in a child
process that writes one JSON line every ``--period`` seconds: RSS (and its
anonymous and file-backed parts), CPU seconds, threads, the state store's
``memory_usage()`` and RocksDB properties summed over column families,
glibc's ``malloc_info`` (heap size, free lists and mmaps, in total and per
arena), the malloc_trim counters, the gc object count and, with
``--tracemalloc``, Python's traced total and, every sixth sample, the source
lines whose allocations grew most since the first such sample (KB, blocks). This process runs the bench's
worker and closed-loop callers for ``--seconds``, then prints the slopes and
the CPU milliseconds per workflow of both processes.

For an A/B against another source tree, run this file from each tree at the
same time (``PYTHONPATH`` at each); a tree without ``kronicle._memory`` runs
untuned.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import psutil

_PROPS = (
    "rocksdb.size-all-mem-tables",
    "rocksdb.cur-size-active-mem-table",
    "rocksdb.num-immutable-mem-table",
    "rocksdb.mem-table-flush-pending",
    "rocksdb.num-running-flushes",
    "rocksdb.total-sst-files-size",
    "rocksdb.estimate-table-readers-mem",
)
_COUNTS = {"rocksdb.num-immutable-mem-table", "rocksdb.mem-table-flush-pending", "rocksdb.num-running-flushes"}


def _malloc_info() -> dict[str, Any]:
    """glibc's heap size and the free bytes in it, MB, in total and per arena (empty off glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return {}
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    with tempfile.NamedTemporaryFile(suffix=".xml") as tmp:
        fp = libc.fopen(tmp.name.encode(), b"w")
        libc.malloc_info(0, fp)
        libc.fclose(fp)
        xml = Path(tmp.name).read_text()
    tail = xml[xml.rfind("</heap>") :]
    system = re.search(r'<system type="current" size="(\d+)"', tail)
    mmap = re.search(r'<total type="mmap" count="\d+" size="(\d+)"', tail)
    free = sum(int(m) for m in re.findall(r'<total type="(?:fast|rest)" count="\d+" size="(\d+)"', tail))
    arenas = []  # (heap MB, free MB) of each arena: which threads' arenas hold the free memory
    for heap in re.findall(r"<heap nr=\"\d+\">.*?</heap>", xml, re.S):
        size = re.search(r'<system type="current" size="(\d+)"', heap)
        hfree = sum(int(m) for m in re.findall(r'<total type="(?:fast|rest)" count="\d+" size="(\d+)"', heap))
        arenas.append([round(int(size.group(1)) / 2**20, 1) if size else 0.0, round(hfree / 2**20, 1)])
    return {
        "malloc_heap_mb": round(int(system.group(1)) / 2**20, 1) if system else 0.0,
        "malloc_free_mb": round(free / 2**20, 1),
        "malloc_mmap_mb": round(int(mmap.group(1)) / 2**20, 1) if mmap else 0.0,
        "malloc_arenas": arenas,
    }


def _smaps() -> dict[str, float]:
    """Anonymous and file-backed resident memory, MB, from /proc/self/smaps_rollup."""
    try:
        text = Path("/proc/self/smaps_rollup").read_text()
    except OSError:
        return {}
    kb = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+):\s+(\d+) kB", text, re.M)}
    return {
        "anon_mb": round(kb.get("Anonymous", 0) / 1024, 1),
        "file_mb": round(kb.get("Rss", 0) / 1024 - kb.get("Anonymous", 0) / 1024, 1),
    }


def _sample(stack: Any, proc: psutil.Process, traced: bool) -> dict[str, Any]:
    cpu = proc.cpu_times()
    rec: dict[str, Any] = {
        "rss_mb": round(proc.memory_info().rss / 2**20, 1),
        "cpu_s": round(cpu.user + cpu.system, 2),
        "threads": proc.num_threads(),
        **_smaps(),
    }
    engine = stack.engine
    store = engine.processor.store
    usage = store.memory_usage()
    rec["rocksdb_mb"] = {
        "block_cache": round(usage.block_cache_bytes / 2**20, 1),
        "memtables": round(usage.memtable_bytes / 2**20, 1),
    }
    props = dict.fromkeys(_PROPS, 0)
    with engine.processor.store_lock:
        for part in store._partitions.values():
            for family in (*part.cfs.values(), part.meta):
                for prop in _PROPS:
                    props[prop] += int(family.property_int_value(prop) or 0)
    rec["rocksdb_props_mb"] = {
        k.removeprefix("rocksdb."): v if k in _COUNTS else round(v / 2**20, 1) for k, v in props.items()
    }
    rec["rocksdb_mb"]["pinned"] = round(usage.pinned_bytes / 2**20, 1)
    rec.update(_malloc_info())
    from prometheus_client import REGISTRY

    trims = REGISTRY.get_sample_value("kronicle_process_malloc_trims_total")
    if trims is not None:
        rec["trims"] = int(trims)
        rec["trim_s"] = round(REGISTRY.get_sample_value("kronicle_process_malloc_trim_seconds_sum") or 0.0, 4)
        rec["trim_cpu_s"] = round(REGISTRY.get_sample_value("kronicle_process_malloc_trim_cpu_seconds_total") or 0.0, 4)
        released = REGISTRY.get_sample_value("kronicle_process_malloc_trim_released_bytes_total") or 0.0
        rec["trim_released_mb"] = round(released / 2**20, 1)
    rec["gc_objects"] = len(gc.get_objects())  # not counting those gc.freeze() moved out of the collector's way
    rec["gc_frozen"] = gc.get_freeze_count()
    rec["python_blocks_k"] = round(sys.getallocatedblocks() / 1000, 1)
    producer = getattr(getattr(engine.processor, "_txn", None), "_producer", None)
    if producer is not None:  # librdkafka's queue: records produced and not yet acknowledged
        with contextlib.suppress(Exception):
            rec["producer_queue"] = len(producer)
    if traced:
        rec["traced_mb"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
    return rec


def _serve_tuned(args: argparse.Namespace) -> None:
    # The allocator is tuned as `kronicle server start-dev` tunes it, before any thread exists.
    try:
        from kronicle._memory import AllocatorOptions, tune_allocator
    except ImportError:  # a source tree from before kronicle._memory (an A/B against an old main)
        if args.malloc_arena_max or args.malloc_trim_seconds:
            print("note: this kronicle has no kronicle._memory; the allocator stays untuned", file=sys.stderr)
        asyncio.run(_serve(args))
        return
    for setting in args.mallopt:
        _mallopt(setting)
    with tune_allocator(AllocatorOptions(arena_max=args.malloc_arena_max, trim_interval_s=args.malloc_trim_seconds)):
        asyncio.run(_serve(args))


# glibc's mallopt parameters (malloc.h) that an experiment may want to set.
_MALLOPT = {"M_TRIM_THRESHOLD": -1, "M_TOP_PAD": -2, "M_MMAP_THRESHOLD": -3, "M_MMAP_MAX": -4, "M_ARENA_TEST": -7}


def _mallopt(setting: str) -> None:
    name, _, value = setting.partition("=")
    if name not in _MALLOPT or not value.isdigit():
        raise SystemExit(f"--mallopt takes NAME=BYTES with NAME one of {', '.join(_MALLOPT)}, not {setting!r}")
    libc = ctypes.CDLL(None)
    if libc.mallopt(ctypes.c_int(_MALLOPT[name]), ctypes.c_int(int(value))) != 1:
        raise SystemExit(f"glibc refused mallopt({name}, {value})")
    print(f"mallopt({name}, {value})", file=sys.stderr)


async def _serve(args: argparse.Namespace) -> None:
    from kronicle.connectors.dev_stack import DevStack
    from kronicle.state.store import StoreOptions

    store = StoreOptions(
        block_cache_bytes=(args.cache_mb or 64) << 20,
        memtable_bytes=(args.memtable_mb or args.cache_mb // 2 or 32) << 20,
    )
    if args.tracemalloc:
        tracemalloc.start()
    stack = DevStack(port=0, namespace="default", partitions=1, store_options=store)
    await stack.start()
    print(f"frontend http://{stack.frontend_address}", flush=True)
    stop = threading.Event()

    def sampler() -> None:
        proc, t0 = psutil.Process(), time.monotonic()
        first: tracemalloc.Snapshot | None = None
        with Path(args.out).open("w") as out:
            for n in itertools.count():
                if stop.wait(args.period):
                    break
                rec = {"t": round(time.monotonic() - t0, 1), **_sample(stack, proc, args.tracemalloc)}
                if args.tracemalloc and n % 6 == 5:  # what grew since the first of these, by line (costly: seldom)
                    snap = tracemalloc.take_snapshot()
                    if first is None:
                        first = snap
                    else:
                        top = snap.compare_to(first, "lineno")[:12]
                        rec["tracemalloc_growth"] = [
                            [str(d.traceback), round(d.size_diff / 2**10, 1), d.count_diff] for d in top
                        ]
                out.write(json.dumps(rec) + "\n")
                out.flush()

    threading.Thread(target=sampler, daemon=True).start()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await done.wait()
    stop.set()
    await stack.stop()


def _slope(points: list[tuple[float, float]]) -> float:
    n = len(points)
    if n < 2:
        return 0.0
    mt, mv = sum(t for t, _ in points) / n, sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (v - mv) for t, v in points) / var * 60 if var else 0.0


async def _drive(args: argparse.Namespace) -> None:
    from bench._adapters import KronicleAdapter
    from kronicle.client import Client
    from kronicle.worker import Worker

    cmd = [sys.executable, "-m", "bench.memory_probe", "--serve", *sys.argv[1:]]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    address = await asyncio.get_running_loop().run_in_executor(None, server.stdout.readline)
    if not address.startswith("frontend http://"):
        raise RuntimeError(f"the probe's server did not start: {address!r}")
    client = await Client.connect(address.split("http://", 1)[1].strip(), namespace="default")
    wf = KronicleAdapter(slots=args.callers).wf
    worker = Worker(
        client,
        task_queue="bench",
        workflows=[wf.OneActivity],
        activities=[wf.echo],
        max_concurrent_activities=200,
        max_concurrent_workflow_tasks=200,
    )
    await worker.start()
    run, counter, done = uuid.uuid4().hex[:6], itertools.count(), 0
    deadline = time.monotonic() + args.seconds

    async def caller() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            workflow_id = f"mem-{run}-{next(counter)}"
            await client.execute_workflow(wf.OneActivity.run, workflow_id, id=workflow_id, task_queue="bench")
            done += 1

    try:
        await asyncio.gather(*(caller() for _ in range(args.callers)))
    finally:
        await worker.shutdown()
        await client.close()
        server.send_signal(signal.SIGTERM)
        await asyncio.get_running_loop().run_in_executor(None, server.wait, 60)
    cpu = time.process_time()
    rows = [json.loads(line) for line in Path(args.out).read_text().splitlines()]
    rss = [(r["t"], r["rss_mb"]) for r in rows]
    rest = [(r["t"], r["rss_mb"] - r["rocksdb_mb"]["block_cache"]) for r in rows]
    figures = {
        "rocksdb_block_cache_mb": lambda r: r["rocksdb_mb"]["block_cache"],
        "malloc_in_use_mb": lambda r: r.get("malloc_heap_mb", 0) - r.get("malloc_free_mb", 0),
        "malloc_free_mb": lambda r: r.get("malloc_free_mb", 0),
        "anon_outside_heap_mb": lambda r: r.get("anon_mb", 0) - r.get("malloc_heap_mb", 0),
        "python_blocks_k": lambda r: r.get("python_blocks_k", 0),
        "gc_objects_k": lambda r: r.get("gc_objects", 0) / 1000,
    }
    half = rows[len(rows) // 2 :]
    parts = {
        name: [round(get(rows[0]), 1), round(get(rows[-1]), 1), round(_slope([(r["t"], get(r)) for r in half]), 2)]
        for name, get in figures.items()
    }
    summary = {
        "parts_first_last_slope_second_half": parts,
        "workflows": done,
        "wf_per_s": round(done / args.seconds, 1),
        "load": os.getloadavg(),
        "rss_first_last_max_mb": [rss[0][1], rss[-1][1], max(v for _, v in rss)] if rss else [],
        "rss_slope_second_half_mb_per_min": round(_slope(rss[len(rss) // 2 :]), 2),
        "rss_minus_rocksdb_slope_second_half_mb_per_min": round(_slope(rest[len(rest) // 2 :]), 2),
        "rocksdb_mb_at_end": rows[-1]["rocksdb_mb"] if rows else {},
        "malloc_heap_free_mb_at_end": [rows[-1].get("malloc_heap_mb"), rows[-1].get("malloc_free_mb")] if rows else [],
        "engine_cpu_ms_per_wf": round(rows[-1]["cpu_s"] * 1000 / done, 3) if rows and done else None,
        "bench_cpu_ms_per_wf": round(cpu * 1000 / done, 3) if done else None,
        "trims_calls_wall_s_cpu_s_released_mb": [
            rows[-1].get(k) for k in ("trims", "trim_s", "trim_cpu_s", "trim_released_mb")
        ]
        if rows
        else [],
    }
    print(json.dumps(summary, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--callers", type=int, default=200)
    parser.add_argument("--period", type=float, default=10, help="seconds between samples")
    parser.add_argument("--out", default="memory-probe.jsonl", help="where the samples go (JSON lines)")
    parser.add_argument(
        "--cache-mb",
        type=int,
        default=0,
        help="StoreOptions.block_cache_bytes (default 64; bench.compare's memory run: 16)",
    )
    parser.add_argument(
        "--memtable-mb", type=int, default=0, help="StoreOptions.memtable_bytes (default half the cache)"
    )
    parser.add_argument("--tracemalloc", action="store_true", help="also record Python's traced memory")
    parser.add_argument(
        "--malloc-arena-max", type=int, default=2, help="glibc malloc arena cap of the engine process (0: glibc's)"
    )
    parser.add_argument(
        "--malloc-trim-seconds", type=float, default=30.0, help="malloc_trim(0) period in the engine process (0: off)"
    )
    parser.add_argument(
        "--mallopt",
        action="append",
        default=[],
        metavar="NAME=BYTES",
        help="one more glibc mallopt() in the engine process before it starts, e.g. M_MMAP_THRESHOLD=131072",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve_tuned(args)
    else:
        asyncio.run(_drive(args))


if __name__ == "__main__":
    main()
