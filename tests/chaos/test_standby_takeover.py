"""Two workflow engines with standby replicas: kill -9 one under steady load, measure the takeover."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.chaos.conftest import Scale
from tests.chaos.harness import (
    HistoryReader,
    LoadDriver,
    ScriptedWorker,
    SteadyLoad,
    WorkflowEngineProcess,
    fresh_namespace,
    new_registry,
    print_figures,
    restore_counts,
)

PARTITIONS = 4


@pytest.mark.timeout(1800)
def test_standby_takes_over_a_killed_engine_and_nothing_is_lost(
    kafka_bootstrap: str, tmp_path: Path, scale: Scale
) -> None:
    registry = new_registry()
    topics = fresh_namespace(kafka_bootstrap, PARTITIONS)
    queue = f"q{uuid.uuid4().hex[:6]}"
    a = WorkflowEngineProcess(kafka_bootstrap, topics, tmp_path / "a" / "state", "a", standby=True).start()
    b = WorkflowEngineProcess(kafka_bootstrap, topics, tmp_path / "b" / "state", "b", standby=True).start()
    reader = HistoryReader(kafka_bootstrap, topics, registry).start()
    worker = ScriptedWorker(kafka_bootstrap, topics, queue, registry).start()
    driver = LoadDriver(kafka_bootstrap, topics, queue, registry)
    total = max(scale.workflows, 200)
    warm = total // 5
    load_seconds = max(25.0, total / 60)  # long enough after the kill to cover the takeover several times over
    try:
        for i in range(warm):
            driver.start(i)
        driver.flush()
        # Both engines serve, and every partition has state for the standbys to mirror.
        assert reader.wait_closed(warm, scale.wait) == warm, "warm-up workflows did not finish"
        time.sleep(1.0)
        load = SteadyLoad(driver, warm, total - warm, per_second=(total - warm) / load_seconds).start()
        time.sleep(3.0)
        a.kill9()
        killed = time.monotonic()
        load.join(scale.wait)
        closed = reader.wait_closed(total, scale.wait)
        reader.settle(3.0)
        gaps = reader.longest_partition_gap(killed, range(PARTITIONS))
    finally:
        worker.stop()
        reader.stop()
        a.terminate()
        b.terminate()
    report = reader.check(driver)
    # The partitions that moved stall for the takeover; b's own partitions only for their usual gaps.
    takeover = max(gaps.values())
    print_figures(
        "standby-takeover",
        scale=scale.name,
        workflows=len(driver.started),
        kills=1,
        closed=closed,
        problems=len(report.problems),
        takeover_s=f"{takeover:.1f}",
        longest_gap_per_partition_s={p: round(t, 1) for p, t in sorted(gaps.items())},
        restored_records_by_b=restore_counts(b.log_text()),
    )
    assert not worker.stats.errors, worker.stats.errors[:5]
    report.raise_if_failed()
    assert report.closed == len(driver.started)
