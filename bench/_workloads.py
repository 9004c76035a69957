"""The workloads, written once against an :class:`~bench._adapters.EngineAdapter`.

Every workload drives the engine through the SDK's own client exactly as an
application would (``execute_workflow``, ``start_workflow``, ``handle.signal``,
``handle.result``); the call shapes are the same on both SDKs, so the code
below does not know which engine it measures.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
import uuid
from typing import Any

from bench._activities import SIGNAL_COUNT, STEP_COUNT
from bench._adapters import EngineAdapter

__all__ = ["percentiles", "saturation", "sequential_latency", "signals", "ten_activities"]


def percentiles(values_ms: list[float]) -> dict[str, float]:
    """p50/p90/p99 (nearest rank), mean, min, max and the count, in milliseconds."""
    if not values_ms:
        return {"n": 0}
    s = sorted(values_ms)

    def rank(q: float) -> float:
        return round(s[min(len(s) - 1, max(0, int(q * len(s) + 0.999999) - 1))], 2)

    return {
        "n": len(s),
        "p50_ms": rank(0.50),
        "p90_ms": rank(0.90),
        "p99_ms": rank(0.99),
        "mean_ms": round(sum(s) / len(s), 2),
        "min_ms": round(s[0], 2),
        "max_ms": round(s[-1], 2),
    }


async def _one(engine: EngineAdapter, workflow_id: str) -> float:
    started = time.perf_counter()
    result = await engine.client.execute_workflow(
        engine.wf.OneActivity.run, workflow_id, id=workflow_id, task_queue=engine.task_queue
    )
    elapsed = (time.perf_counter() - started) * 1000
    if result != workflow_id:
        raise AssertionError(f"{engine.name}: workflow {workflow_id} returned {result!r}")
    return elapsed


async def sequential_latency(engine: EngineAdapter, n: int, *, warmup: int = 20) -> dict[str, Any]:
    """Start-to-result latency of one-activity workflows run one after the other."""
    run = uuid.uuid4().hex[:6]
    for i in range(warmup):
        await _one(engine, f"warm-{run}-{i}")
    # The benchmark process hosts the client and worker of either engine; a full collection over
    # everything it has set up took 26-110 ms, so what is alive after the warm-up is frozen (for
    # both engines alike) and the measured workflows see only the collector's usual short passes.
    gc.collect()
    gc.freeze()
    try:
        latencies = [await _one(engine, f"seq-{run}-{i}") for i in range(n)]
    finally:
        gc.unfreeze()
    return {**percentiles(latencies), "samples_ms": [round(x, 2) for x in latencies]}


async def saturation(
    engine: EngineAdapter, total: int, concurrency: int, *, max_seconds: float | None = None
) -> dict[str, Any]:
    """``concurrency`` callers each run one-activity workflows back to back until ``total`` completed.

    With ``max_seconds`` no new workflow starts after that long (the running ones finish).
    Returns completed workflows per second over the whole level and the start-to-result
    latency percentiles at that concurrency.
    """
    run = uuid.uuid4().hex[:6]
    counter = itertools.count()
    latencies: list[float] = []
    errors: list[str] = []

    deadline = time.perf_counter() + (max_seconds if max_seconds is not None else float("inf"))

    async def caller() -> None:
        while (i := next(counter)) < total and time.perf_counter() < deadline:
            try:
                latencies.append(await _one(engine, f"sat-{run}-{i}"))
            except Exception as err:  # noqa: BLE001 - counted and reported, the level goes on
                errors.append(f"{type(err).__name__}: {err}")

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "workflows_planned": total,
        "completed": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "seconds": round(elapsed, 2),
        "throughput_wf_per_s": round(len(latencies) / elapsed, 1),
        **percentiles(latencies),
    }


async def ten_activities(engine: EngineAdapter, n: int) -> dict[str, Any]:
    """Start-to-result latency of a workflow running ``STEP_COUNT`` activities one after the other."""
    run = uuid.uuid4().hex[:6]
    latencies: list[float] = []
    for i in range(n):
        workflow_id = f"ten-{run}-{i}"
        started = time.perf_counter()
        result = await engine.client.execute_workflow(
            engine.wf.TenActivities.run, workflow_id, id=workflow_id, task_queue=engine.task_queue
        )
        latencies.append((time.perf_counter() - started) * 1000)
        if result != workflow_id:
            raise AssertionError(f"{engine.name}: workflow {workflow_id} returned {result!r}")
    return {"activities": STEP_COUNT, **percentiles(latencies)}


async def signals(engine: EngineAdapter, n: int) -> dict[str, Any]:
    """Start a workflow, send it ``SIGNAL_COUNT`` signals one after the other, wait for its result.

    Reports the time of the whole workflow and the latency of one signal call.
    """
    run = uuid.uuid4().hex[:6]
    totals: list[float] = []
    per_signal: list[float] = []
    for i in range(n):
        workflow_id = f"sig-{run}-{i}"
        started = time.perf_counter()
        handle = await engine.client.start_workflow(engine.wf.Signals.run, id=workflow_id, task_queue=engine.task_queue)
        for _ in range(SIGNAL_COUNT):
            t0 = time.perf_counter()
            await handle.signal(engine.wf.Signals.ping)
            per_signal.append((time.perf_counter() - t0) * 1000)
        result = await handle.result()
        totals.append((time.perf_counter() - started) * 1000)
        if result != SIGNAL_COUNT:
            raise AssertionError(f"{engine.name}: workflow {workflow_id} returned {result!r}")
    return {
        "signals": SIGNAL_COUNT,
        "workflow": percentiles(totals),
        "signal_call": percentiles(per_signal),
        "signals_per_s": round(SIGNAL_COUNT * n / (sum(totals) / 1000), 1) if totals else 0.0,
    }
