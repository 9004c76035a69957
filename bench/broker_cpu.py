"""CPU per completed workflow with different local-broker settings, A/B in one sitting.

Each *variant* is a set of broker settings (server properties, JVM options,
heap). Per round and variant this starts a fresh single-node broker with those
settings, a fresh ``kronicle server start-dev --partitions 1 --kafka`` on it,
and the worker + client in this process, then measures sequential latency
(one-activity workflows one after the other) and a saturation level, and
prints completed wf/s, CPU ms per workflow of the broker, the engine process
and this process, the sequential p50/p90, the broker's resident memory and the
load average::

    python -m bench.broker_cpu --variant g1 --variant base --rounds 2

``--list`` prints the built-in variants; ``--variant NAME:key=value,...`` adds
server properties to a built-in one (``jvm=`` replaces the JVM options,
space-separated; ``heap=`` the heap flags).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
from typing import Any

import psutil

from bench import _workloads as workloads
from bench._adapters import KronicleAdapter
from bench._machine import cpu_seconds, load_average
from bench.engine_cpu import _thread_cpu

__all__ = ["VARIANTS", "main"]

_G1 = ("-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20")

VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},  # the current defaults of kronicle.connectors.local_kafka
    "g1": {"jvm": _G1, "heap": "-Xms256m -Xmx768m"},  # the defaults before the serial collector
    "serial": {"jvm": ("-XX:+UseSerialGC",)},
    "parallel": {"jvm": ("-XX:+UseParallelGC",)},
    "g1_512": {"jvm": _G1, "heap": "-Xms256m -Xmx512m"},
    "serial512": {"jvm": ("-XX:+UseSerialGC",), "heap": "-Xms128m -Xmx512m"},
    "internal1": {"config": {"offsets.topic.num.partitions": "1", "transaction.state.log.num.partitions": "1"}},
    "threads": {"config": {"num.network.threads": "1", "num.io.threads": "2"}},
    "bgthreads": {"config": {"background.threads": "2", "log.cleaner.threads": "1", "num.replica.fetchers": "1"}},
    "heartbeat": {"config": {"group.consumer.heartbeat.interval.ms": "3000"}},
    "c2": {"jvm": ("-XX:+UseSerialGC",)},  # serial512 with C2, before C1 only became the default
}


def _parse(spec: str) -> tuple[str, dict[str, Any]]:
    name, _, extra = spec.partition(":")
    variant = dict(VARIANTS[name.split("+")[0]])
    for part in name.split("+")[1:]:  # "serial+internal1": merge built-ins
        other = VARIANTS[part]
        variant = {**variant, **{k: v for k, v in other.items() if k != "config"}}
        variant["config"] = {**variant.get("config", {}), **other.get("config", {})}
    config = dict(variant.get("config", {}))
    for item in filter(None, extra.split(",")):
        key, _, value = item.partition("=")
        if key == "jvm":
            variant["jvm"] = tuple(value.split())
        elif key == "heap":
            variant["heap"] = value.replace("_", " ")
        else:
            config[key] = value
    variant["config"] = config
    return spec, variant


async def _one(name: str, variant: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from kronicle.connectors.local_kafka import LocalBroker

    kwargs: dict[str, Any] = {"extra_config": variant["config"]}
    if "jvm" in variant:
        kwargs["jvm_options"] = variant["jvm"]
    if "heap" in variant:
        kwargs["heap"] = variant["heap"]
    with LocalBroker(**kwargs) as broker:
        adapter = KronicleAdapter(slots=200, partitions=1, kafka=broker.bootstrap_servers)
        await adapter.start()
        try:
            process = broker._node(1).process
            assert process is not None
            pids = {**adapter.server_pids(), "broker": _java_pid(process.pid)}
            await workloads.saturation(adapter, args.fill, args.callers)  # warm the broker's JIT first
            seq = await workloads.sequential_latency(adapter, args.seq, warmup=args.warmup)
            await workloads.saturation(adapter, args.callers * 2, args.callers)  # fill the pipeline
            load = load_average()
            before = cpu_seconds(pids)
            threads_before = _thread_cpu(pids["broker"])
            level = await workloads.saturation(adapter, args.workflows, args.callers)
            after = cpu_seconds(pids)
            threads_after = _thread_cpu(pids["broker"])
            rss_mb = psutil.Process(pids["broker"]).memory_info().rss / 2**20
        finally:
            await adapter.stop()
    done = max(1, level["completed"])
    cpu = {k: round((after[k] - before[k]) * 1000 / done, 2) for k in after if k in before}
    # JVM thread names are cut to 15 characters by the kernel; group them without their numbers.
    groups: collections.Counter[str] = collections.Counter()
    for tid, (thread, t) in threads_after.items():
        groups[re.sub(r"[-_]?\d+", "", thread)] += (t - threads_before.get(tid, (thread, 0.0))[1]) * 1000 / done
    return {
        "broker_threads": {k: round(v, 2) for k, v in groups.most_common(8) if v >= 0.01},
        "variant": name,
        "wf_per_s": level["throughput_wf_per_s"],
        "errors": level["errors"],
        "cpu_ms_per_wf": cpu,
        "seq_p50_ms": round(seq["p50_ms"], 1),
        "seq_p90_ms": round(seq["p90_ms"], 1),
        "seq_p99_ms": round(seq["p99_ms"], 1),
        "broker_rss_mb": round(rss_mb),
        "load": load,
    }


def _java_pid(pid: int) -> int:
    """The JVM's pid: ``setpriv`` execs it, so normally the child itself."""
    proc = psutil.Process(pid)
    children = proc.children()
    return children[0].pid if children and "java" not in proc.name() else pid


async def _run(args: argparse.Namespace) -> None:
    variants = [_parse(v) for v in args.variant]
    results: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        for name, variant in variants:
            res = await _one(name, variant, args)
            res["round"] = rnd
            results.append(res)
            c = res["cpu_ms_per_wf"]
            print(
                f"r{rnd} {name:<24} {res['wf_per_s']:>6} wf/s  CPU ms/wf broker {c.get('broker')} engine"
                f" {c.get('engine')} bench {c.get('bench_process')}  seq p50/p90/p99 {res['seq_p50_ms']}/"
                f"{res['seq_p90_ms']}/{res['seq_p99_ms']} ms  broker RSS {res['broker_rss_mb']} MB"
                f"  errors {res['errors']}"
                f"  load {res['load']}",
                flush=True,
            )
            print(f"    broker threads, CPU ms/wf: {res['broker_threads']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", default=[], help="NAME[+NAME][:key=value,...] (repeatable)")
    parser.add_argument("--list", action="store_true", help="print the built-in variants and exit")
    parser.add_argument("--callers", type=int, default=200)
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--seq", type=int, default=100, help="sequential workflows measured")
    parser.add_argument("--fill", type=int, default=1000, help="workflows run before measuring the level")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if args.list or not args.variant:
        for name, variant in VARIANTS.items():
            print(f"{name}: {variant}")
        return
    os.environ.setdefault("PYTHONPATH", os.getcwd())
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
