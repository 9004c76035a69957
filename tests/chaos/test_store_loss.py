"""A RocksDB directory deleted while its engine is stopped: state comes back from the changelog."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import pytest

from tests.chaos.conftest import Scale
from tests.chaos.harness import (
    HistoryReader,
    LoadDriver,
    ScriptedWorker,
    WorkflowEngineProcess,
    fresh_namespace,
    new_registry,
    print_figures,
    restore_counts,
)


@pytest.mark.timeout(1800)
def test_workflows_in_flight_survive_their_store_being_deleted(
    kafka_bootstrap: str, tmp_path: Path, scale: Scale
) -> None:
    registry = new_registry()
    topics = fresh_namespace(kafka_bootstrap)
    queue = f"q{uuid.uuid4().hex[:6]}"
    state = tmp_path / "e0" / "state"
    engine = WorkflowEngineProcess(kafka_bootstrap, topics, state, "e0").start()
    reader = HistoryReader(kafka_bootstrap, topics, registry).start()
    worker = ScriptedWorker(kafka_bootstrap, topics, queue, registry).start()
    driver = LoadDriver(kafka_bootstrap, topics, queue, registry)
    rounds = 1 if scale.name == "short" else 4
    per_round = scale.workflows // rounds
    restarts: list[float] = []
    try:
        for r in range(rounds):
            batch = range(r * per_round, (r + 1) * per_round)
            # Without their signals these runs wait half-way, their state only in the store.
            for i in batch:
                driver.start(i, signals=False)
            driver.flush()
            deadline = time.monotonic() + scale.wait
            while worker.stats.activity_tasks < batch.stop and time.monotonic() < deadline:
                time.sleep(0.2)
            reader.settle(2.0)
            if r % 2 == 0:
                engine.terminate()
            else:
                engine.kill9()
            shutil.rmtree(state)
            began = time.monotonic()
            engine.start()
            for i in batch:
                driver.signal(i)
            driver.flush()
            restarts.append(began)
        closed = reader.wait_closed(len(driver.started), scale.wait)
        reader.settle(3.0)
    finally:
        worker.stop()
        reader.stop()
        engine.terminate()
    report = reader.check(driver)
    restored = restore_counts(engine.log_text())
    first = [min(reader.first_after(t, range(4)).values(), default=float("nan")) for t in restarts]
    print_figures(
        "store-deleted",
        scale=scale.name,
        workflows=len(driver.started),
        deletions=rounds,
        closed=closed,
        problems=len(report.problems),
        restored_records_per_partition=restored[-4:],
        first_progress_after_restart_s=[round(f, 1) for f in first],
    )
    assert not worker.stats.errors, worker.stats.errors[:5]
    report.raise_if_failed()
    assert report.closed == len(driver.started)
    # The deleted stores were rebuilt from the changelog, not started empty.
    assert sum(restored[-4:]) > 0, restored
