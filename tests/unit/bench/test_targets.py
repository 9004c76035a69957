"""bench.compare's targets: which figure decides that the engine's memory is flat."""

from __future__ import annotations

from typing import Any

from bench.compare import _targets


def _result(second_half: float, whole: float, warmup: dict[str, Any]) -> dict[str, Any]:
    engine = {"slope_mb_per_min_second_half": second_half, "slope_mb_per_min_all": whole}
    return {"kronicle": {"seq_p50_ms": 20, "seq_p99_ms": 40, "memory": {"rss": {"engine": engine}, "warmup": warmup}}}


def test_after_a_warm_up_the_whole_measured_run_must_be_flat() -> None:
    warmup = {"seconds": 300.0, "workflows": 1000}
    assert _targets(_result(0.5, 1.5, warmup))["engine_rss_flat"] is False
    assert _targets(_result(1.5, 0.5, warmup))["engine_rss_flat"] is True


def test_without_a_warm_up_the_second_half_is_the_measure() -> None:
    assert _targets(_result(0.5, 1.5, {}))["engine_rss_flat"] is True
    assert _targets(_result(1.5, 0.5, {}))["engine_rss_flat"] is False
