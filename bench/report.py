"""Turn ``bench/results/latest.json`` into the tables of ``docs/benchmarks.md`` and a PNG chart.

Usage::

    python -m bench.report [--results bench/results/latest.json] [--doc docs/benchmarks.md]
                           [--chart docs/img/benchmarks.png] [--stdout]

Only the part of the doc between ``<!-- bench:results:start -->`` and
``<!-- bench:results:end -->`` is generated; the analysis around it is written
by hand. ``--stdout`` prints the tables instead of touching the doc.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["chart", "main", "tables"]

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"
ENGINES = ("kronicle", "temporal")


_PART_NAMES = {
    "rss": "resident set (RSS)",
    "rocksdb_block_cache": "RocksDB block cache, memtables included (bounded)",
    "rss_minus_rocksdb": "RSS less RocksDB's block cache",
    "malloc_in_use": "glibc heap in use",
    "malloc_free": "glibc free lists",
    "malloc_mmap": "glibc mmapped chunks",
    "python_blocks_k": "Python allocated blocks (thousands)",
}


def _engine_parts(parts: dict[str, dict[str, float]]) -> list[str]:
    """The engine's memory by part over the memory run: what grows, and whether it is bounded."""
    if not parts:
        return []
    out = [
        "",
        "The engine's memory by part (from its /metrics every 10 s):",
        "",
        "| part (MB unless noted) | first | last | per minute, second half | per minute, all |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, name in _PART_NAMES.items():
        p = parts.get(key)
        if p:
            out.append(
                f"| {name} | {_fmt(p['first'])} | {_fmt(p['last'])} | {_fmt(p['slope_mb_per_min_second_half'], 2)} |"
                f" {_fmt(p.get('slope_mb_per_min_all'), 2)} |"
            )
    rss, cache = parts.get("rss"), parts.get("rocksdb_block_cache")
    if rss and cache and rss["slope_mb_per_min_second_half"] > 0:
        share = cache["slope_mb_per_min_second_half"] / rss["slope_mb_per_min_second_half"]
        out.append(f"\nRocksDB's bounded cache filling is {share:.0%} of the engine's RSS slope over the second half.")
    return out


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _load(values: list[float] | None) -> str:
    return "/".join(f"{v:.1f}" for v in values) if values else "-"


def _cpu(cpu: dict[str, float] | None) -> str:
    if not cpu:
        return "-"
    parts = [f"{name} {ms:.1f}" for name, ms in cpu.items() if name != "total"]
    return f"**{cpu['total']:.1f}** ({', '.join(parts)})"


def tables(result: dict[str, Any]) -> str:
    """The markdown tables for one results document."""
    engines = [e for e in ENGINES if e in result]
    m, v = result["machine"], result["versions"]
    out = [
        f"Run {result['started']} to {result.get('finished', '?')} (UTC), plan: `{_plan_name(result)}`.",
        "",
        f"Machine: {m['cpus']} cores, {m['ram_gb']} GB RAM, {m['cpu_model']}, {m['os']}. "
        f"Load average (1/5/15 min) at start {_load(result.get('load_at_start'))}, "
        f"at end {_load(result.get('load_at_end'))}.",
        "",
        f"Versions: Kronicle {v.get('kronicle')}, Apache Kafka {v.get('kafka')}, confluent-kafka "
        f"{v.get('confluent_kafka')} (librdkafka {v.get('librdkafka')}), Temporal CLI {v.get('temporal_cli')}, "
        f"temporalio {v.get('temporalio')}, Python {v.get('python')}.",
        "",
        "| | " + " | ".join(engines) + " |",
        "| --- |" + " ---: |" * len(engines),
    ]

    def row(label: str, get: Any) -> None:
        cells = []
        for e in engines:
            try:
                cells.append(_fmt(get(result[e])))
            except (KeyError, TypeError, IndexError):
                cells.append("-")
        out.append(f"| {label} | " + " | ".join(cells) + " |")

    row("**throughput, completed wf/s (best level)**", lambda r: r["throughput_wf_per_s"])
    row("  at concurrency", lambda r: r["throughput_concurrency"])
    row(
        "  CPU ms per workflow, all processes",
        lambda r: next(lv for lv in r["sweep"] if lv["concurrency"] == r["throughput_concurrency"])["cpu_ms_per_wf"][
            "total"
        ],
    )
    row("**sequential one-activity workflow p50 ms**", lambda r: r["seq_p50_ms"])
    row("  p90 ms", lambda r: r["seq_p90_ms"])
    row("  p99 ms", lambda r: r["seq_p99_ms"])
    row("  workflows measured", lambda r: r["sequential"]["n"])
    row("10 sequential activities, p50 ms", lambda r: r["ten_activities"]["p50_ms"])
    row("10 sequential activities, p99 ms", lambda r: r["ten_activities"]["p99_ms"])
    row("100-signal workflow, p50 ms", lambda r: r["signals"]["workflow"]["p50_ms"])
    row("  one signal call, p50 ms", lambda r: r["signals"]["signal_call"]["p50_ms"])
    row("  one signal call, p99 ms", lambda r: r["signals"]["signal_call"]["p99_ms"])
    if "comparison" in result:
        c = result["comparison"]
        out += [
            "",
            f"Kronicle/Temporal throughput: **{c['throughput_ratio']}x**; "
            f"Temporal/Kronicle sequential p50: **{c['seq_p50_ratio']}x**.",
        ]
    out += ["", "Saturation sweep (closed loop: *concurrency* callers, each starting the next workflow when its "
            "last one returned; latency is start to result):", "",
            "| engine | concurrency | workflows | seconds | wf/s | p50 ms | p90 ms | p99 ms | errors | CPU ms/wf"
            " | load before |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]  # fmt: skip
    for e in engines:
        for lv in result[e]["sweep"]:
            out.append(
                f"| {e} | {lv['concurrency']} | {_fmt(lv['completed'])} | {_fmt(lv['seconds'])} | "
                f"{_fmt(lv['throughput_wf_per_s'])} | {_fmt(lv.get('p50_ms'))} | {_fmt(lv.get('p90_ms'))} | "
                f"{_fmt(lv.get('p99_ms'))} | {lv['errors']} | {_cpu(lv.get('cpu_ms_per_wf'))} | "
                f"{_load(lv.get('load_before'))} |"
            )
    out += ["", "Sequential latency per round (the engines alternate, a fresh server each):", "",
            "| engine | round | p50 ms | p90 ms | p99 ms | load before | load after |",
            "| --- | ---: | ---: | ---: | ---: | --- | --- |"]  # fmt: skip
    for e in engines:
        for i, r in enumerate(result[e].get("light_rounds", []), 1):
            s = r["sequential"]
            out.append(
                f"| {e} | {i} | {_fmt(s.get('p50_ms'))} | {_fmt(s.get('p90_ms'))} | {_fmt(s.get('p99_ms'))} | "
                f"{_load(r['load_before'])} | {_load(r['load_after'])} |"
            )
    mem = result.get("kronicle", {}).get("memory")
    if mem:
        warm = mem.get("warmup") or {}
        if warm:
            engine_warm = (warm.get("rss") or {}).get("engine") or {}
            out += ["", f"The memory run starts with {warm['seconds']:.0f} s of the same saturation on the same engine "
                    f"process ({_fmt(warm['workflows'])} workflows), in which the engine's RSS went from "
                    f"{_fmt(engine_warm.get('first_mb'))} to {_fmt(engine_warm.get('last_mb'))} MB; the figures "
                    "below are of the measured run after it (the chart shows both)."]  # fmt: skip
        out += ["", f"Resident memory during {mem['seconds']:.0f} s at saturation ({_fmt(mem['workflows'])} workflows, "
                f"{_fmt(mem['throughput_wf_per_s'])} wf/s, load {_load(mem['load'][0])} → {_load(mem['load'][1])}):",
                "", "| process | first MB | last MB | max MB | slope MB/min (second half) | slope MB/min (all) |",
                "| --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for name, s in mem["rss"].items():
            if s:
                out.append(
                    f"| {name} | {_fmt(s['first_mb'])} | {_fmt(s['last_mb'])} | {_fmt(s['max_mb'])} | "
                    f"{_fmt(s['slope_mb_per_min_second_half'], 2)} | {_fmt(s['slope_mb_per_min_all'], 2)} |"
                )
        rocks = mem.get("rocksdb_mb") or {}
        if mem.get("state_cache_mb") or rocks:
            out.append(
                f"\nThe engine ran with `--state-cache-mb {mem.get('state_cache_mb', 64)}` (RocksDB's bound: block"
                f" cache with memtables); its block cache held {(rocks.get('start') or {}).get('block_cache', '?')} MB"
                f" at the start and {(rocks.get('end') or {}).get('block_cache', '?')} MB at the end of the run."
            )
        out += _engine_parts(mem.get("engine_parts") or {})
    for e in engines:
        rss = result[e].get("saturation_rss") or {}
        parts = [f"{name} max {_fmt(s.get('max_mb'))} MB" for name, s in rss.items() if s]
        if parts:
            out.append(f"\n{e} server memory during the sweep: " + ", ".join(parts) + ".")
    raw = result.get("raw_kafka")
    if raw:
        out += [
            "",
            f"Raw Kafka ceiling (transactional consume → produce 2 records → commit, batches of up to "
            f"1,000, {raw['record_bytes']}-byte records): **{_fmt(raw['records_per_s'])} records/s**; the engine "
            f"shell with the counter handler on the same broker: {_fmt(raw['counter_engine_commands_per_s'])} "
            f"commands/s (load {_load(raw['load_before'])}). A one-activity workflow is 2 commands on Kronicle "
            f"when its worker runs the activity eagerly and chains the next workflow task (start, one "
            f"workflow-task completion carrying the activity's result and the closing command; 4 without), "
            f"so the raw ceiling is about {_fmt(raw['records_per_s'] / 2)} workflows/s "
            f"({_fmt(raw['records_per_s'] / 4)} without eager activities).",
        ]
    targets = result.get("targets") or {}
    if targets:
        out += ["", "Targets: " + ", ".join(f"{k} **{'met' if ok else 'NOT met'}**" for k, ok in targets.items()) + "."]
    return "\n".join(out) + "\n"


def _plan_name(result: dict[str, Any]) -> str:
    plan = result.get("plan", {})
    if plan.get("memory_s", 0) >= 600:
        return "full"
    return "quick" if plan.get("seq", 0) >= 200 else "smoke"


def chart(result: dict[str, Any], path: Path) -> None:
    """Throughput per concurrency, sequential latency percentiles, and the engine's memory over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = [e for e in ENGINES if e in result]
    colours = {"kronicle": "#1f77b4", "temporal": "#ff7f0e"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for e in engines:
        sweep = result[e]["sweep"]
        ax.plot([lv["concurrency"] for lv in sweep], [lv["throughput_wf_per_s"] for lv in sweep], "o-",
                label=e, color=colours[e])  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("concurrent callers")
    ax.set_ylabel("completed workflows / s")
    ax.set_title("Saturation throughput (one-activity workflow)")
    ax.legend()
    ax.grid(alpha=0.3)
    ax = axes[1]
    labels = ["p50", "p90", "p99"]
    width = 0.8 / max(1, len(engines))
    for i, e in enumerate(engines):
        seq = result[e]["sequential"]
        values = [seq[f"{p}_ms"] for p in labels]
        xs = [j + i * width for j in range(len(labels))]
        ax.bar(xs, values, width, label=e, color=colours[e])
        for x, val in zip(xs, values, strict=True):
            ax.annotate(f"{val:.0f}", (x, val), ha="center", va="bottom", fontsize=8)
    ax.set_xticks([j + width * (len(engines) - 1) / 2 for j in range(len(labels))], labels)
    ax.set_ylabel("ms, start to result")
    ax.set_title("Sequential latency, one workflow at a time")
    ax.legend()
    ax = axes[2]
    mem = result.get("kronicle", {}).get("memory")
    if mem:
        for name, s in mem["rss"].items():
            if s.get("samples"):
                ax.plot([t / 60 for t, _ in s["samples"]], [r for _, r in s["samples"]], label=name)
        if mem.get("measured_from_s"):
            ax.axvline(mem["measured_from_s"] / 60, color="grey", linestyle="--", linewidth=1, label="end of warm-up")
        ax.set_xlabel("minutes at saturation")
        ax.set_ylabel("resident memory, MB")
        ax.set_title("Kronicle memory at saturation")
        ax.legend()
        ax.grid(alpha=0.3)
    else:
        ax.set_axis_off()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument("--doc", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--chart", type=Path, default=Path("docs/img/benchmarks.png"))
    parser.add_argument("--stdout", action="store_true", help="print the tables; write neither doc nor chart")
    args = parser.parse_args(argv)
    result = json.loads(args.results.read_text())
    text = tables(result)
    if args.stdout:
        print(text)
        return
    doc = args.doc.read_text() if args.doc.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    if START not in doc or END not in doc:
        raise SystemExit(f"{args.doc} has no {START} ... {END} section to fill in")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    args.doc.write_text(f"{head}{START}\n{text}\n![benchmarks](img/{args.chart.name})\n\n{END}{tail}")
    chart(result, args.chart)
    print(f"wrote {args.doc} and {args.chart}")


if __name__ == "__main__":
    main()
