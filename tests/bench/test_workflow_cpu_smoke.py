"""The handler micro-benchmark runs (no timing assertions): every workflow it drives completes."""

from __future__ import annotations

from bench.workflow_cpu import run


def test_the_handler_benchmark_completes_its_workflows() -> None:
    assert run(12, 5) > 0  # run() asserts that every workflow of each round closed


async def test_the_worker_benchmark_completes_its_workflows() -> None:
    from bench.workflow_cpu import run_worker

    # run_worker() asserts that every task got its answer and every workflow closed.
    assert await run_worker(12, 5) > 0
