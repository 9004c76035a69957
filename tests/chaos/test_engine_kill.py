"""kill -9 workflow engine processes at random moments, repeatedly, under load; nothing is lost or doubled."""

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
    WorkflowEngineProcess,
    fresh_namespace,
    new_registry,
    print_figures,
    rng,
)


@pytest.mark.timeout(1800)
def test_engines_killed_at_random_moments_lose_and_repeat_nothing(
    kafka_bootstrap: str, tmp_path: Path, scale: Scale
) -> None:
    random = rng()
    registry = new_registry()
    topics = fresh_namespace(kafka_bootstrap)
    queue = f"q{uuid.uuid4().hex[:6]}"
    engines = [
        WorkflowEngineProcess(kafka_bootstrap, topics, tmp_path / f"e{i}" / "state", f"e{i}").start() for i in range(2)
    ]
    reader = HistoryReader(kafka_bootstrap, topics, registry).start()
    worker = ScriptedWorker(kafka_bootstrap, topics, queue, registry).start()
    driver = LoadDriver(kafka_bootstrap, topics, queue, registry)
    chunk = max(1, scale.workflows // (scale.kills + 1))
    began = time.monotonic()
    try:
        for kill in range(scale.kills):
            for i in range(kill * chunk, (kill + 1) * chunk):
                driver.start(i)
            driver.flush()
            time.sleep(random.uniform(0.5, 3.0))
            victim = random.choice(engines)
            victim.kill9()
            # Signals sent again while an engine is down: each must still apply once.
            driver.resend_signals(random.sample(driver.started, min(5, len(driver.started))))
            driver.flush()
            time.sleep(random.uniform(0.0, 2.0))
            victim.start()
        for i in range(scale.kills * chunk, scale.workflows):
            driver.start(i)
        driver.flush()
        closed = reader.wait_closed(len(driver.started), scale.wait)
        elapsed = time.monotonic() - began
        reader.settle(3.0)
    finally:
        worker.stop()
        reader.stop()
        for engine in engines:
            engine.terminate()
    report = reader.check(driver)
    print_figures(
        "engine-kill9",
        scale=scale.name,
        workflows=len(driver.started),
        kills=scale.kills,
        closed=closed,
        problems=len(report.problems),
        seconds=f"{elapsed:.1f}",
        workflow_tasks=worker.stats.workflow_tasks,
    )
    assert not worker.stats.errors, worker.stats.errors[:5]
    report.raise_if_failed()
    assert report.closed == len(driver.started)
