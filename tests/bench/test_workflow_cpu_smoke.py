"""The handler micro-benchmark runs (no timing assertions): every workflow it drives completes."""

from __future__ import annotations

from bench.workflow_cpu import run


def test_the_handler_benchmark_completes_its_workflows() -> None:
    assert run(12, 5) > 0  # run() asserts that every workflow of each round closed
