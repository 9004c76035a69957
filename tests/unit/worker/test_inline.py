"""Cheap workflow activations run on the worker's loop thread; slow or blocking ones go back to the threads."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from kronicle import workflow
from kronicle.worker._inline import InlinePolicy
from kronicle.worker._workflow_tasks import WorkflowTaskRunner
from tests.unit.worker.memory import MemoryLoop

THREADS: list[int] = []
"""Thread ids the workflows below ran their activations on."""


@workflow.defn(name="Recorder")
class Recorder:
    def __init__(self) -> None:
        self._go = False

    @workflow.run
    async def run(self) -> str:
        THREADS.append(threading.get_ident())
        await workflow.wait_condition(lambda: self._go)
        THREADS.append(threading.get_ident())
        return "done"

    @workflow.signal
    def go(self) -> None:
        self._go = True


@workflow.defn(name="Spinner")
class Spinner:
    """Spins without yielding once signalled (what the deadlock detector is for)."""

    def __init__(self) -> None:
        self._spin = False

    @workflow.run
    async def run(self) -> str:
        THREADS.append(threading.get_ident())
        await workflow.wait_condition(lambda: self._spin)
        while True:  # deliberately never yields
            pass

    @workflow.signal
    def spin(self) -> None:
        self._spin = True


def _spend_cpu(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_type_runs_inline_once_its_probation_was_cheap() -> None:
    policy = InlinePolicy("T", probation=3)
    seen = []
    for _ in range(4):
        seen.append(policy.inline)
        assert policy.run(lambda x: x + 1, 1) == 2
    assert seen == [False, False, False, True]
    assert policy.inline and not policy.offloaded


def test_cpu_heavy_activations_send_the_type_back_after_the_strikes() -> None:
    policy = InlinePolicy("T", cpu_budget=0.001, probation=0, strikes=3)
    for _ in range(2):
        policy.run(_spend_cpu, 0.005)
    assert policy.inline, "two slow activations are forgiven noise"
    policy.run(_spend_cpu, 0.005)
    assert policy.offloaded and not policy.inline


def test_strikes_are_forgiven_after_enough_cheap_activations() -> None:
    policy = InlinePolicy("T", cpu_budget=0.001, probation=0, strikes=2, forgive_after=5)
    policy.run(_spend_cpu, 0.005)
    for _ in range(5):
        policy.run(lambda x: x, 0)
    policy.run(_spend_cpu, 0.005)
    assert policy.inline
    policy.run(_spend_cpu, 0.005)
    assert policy.offloaded


def test_an_inline_activation_that_blocks_the_loop_sends_the_type_back_at_once() -> None:
    policy = InlinePolicy("T", wall_limit=0.05, probation=0)
    assert policy.inline
    policy.run(time.sleep, 0.1)
    assert policy.offloaded


def test_an_inline_activation_merely_preempted_is_only_a_strike() -> None:
    policy = InlinePolicy("T", wall_limit=0.05, probation=0, strikes=2)
    policy._observe(0.0001, 0.2, 0.005, blocked=False)  # long on the clock, but not its doing
    assert policy.inline
    policy._observe(0.0001, 0.2, 0.005, blocked=False)
    assert policy.offloaded


def test_on_the_threads_only_cpu_counts_not_the_wall_clock() -> None:
    policy = InlinePolicy("T", wall_limit=0.05, cpu_budget=0.001, probation=5, strikes=1)
    policy.run(time.sleep, 0.1)  # still in probation (on the threads): GIL and load waits look the same
    assert not policy.offloaded
    policy.run(_spend_cpu, 0.005)
    assert policy.offloaded


async def test_live_activations_of_a_cheap_type_run_on_the_loop_thread_after_probation() -> None:
    THREADS.clear()
    with ThreadPoolExecutor(2) as pool:
        loop = MemoryLoop([Recorder], executor=pool)
        policy = loop.runner._inline_policy("Recorder")
        assert policy is not None
        policy._probation = 2
        for i in range(3):
            loop.start(f"wf-{i}", "Recorder")
            await loop.run_until_idle()
            loop.signal(f"wf-{i}", "go")
            loop.bench.deliver()
            await loop.run_until_idle()
    here = threading.get_ident()
    assert len(THREADS) == 6
    assert here not in THREADS[:2], "the first activations run on the workflow threads"
    assert THREADS[2:] == [here] * 4
    assert loop.runner.stats["completed"] == 6


async def test_replays_run_on_the_threads_even_for_an_inline_type() -> None:
    THREADS.clear()
    with ThreadPoolExecutor(2) as pool:
        loop = MemoryLoop([Recorder], executor=pool, max_cached_workflows=0)
        policy = loop.runner._inline_policy("Recorder")
        assert policy is not None
        policy._probation = 0
        loop.start("wf", "Recorder")
        await loop.run_until_idle()
        loop.signal("wf", "go")
        loop.bench.deliver()
        await loop.run_until_idle()
    here = threading.get_ident()
    # Task 1 live (inline); task 2 replays task 1 (threads), then runs live (inline).
    assert len(THREADS) == 3
    assert THREADS[0] == here and THREADS[2] == here
    assert THREADS[1] != here
    assert loop.runner.stats["full_replay"] == 1


async def test_the_deadlock_detector_interrupts_an_inline_activation_and_the_type_moves_to_the_threads() -> None:
    THREADS.clear()
    with ThreadPoolExecutor(2) as pool:
        loop = MemoryLoop([Spinner], executor=pool)
        loop.runner = WorkflowTaskRunner(
            workflows=[Spinner],
            namespace="default",
            identity="memory-worker",
            data_converter=loop.converter,
            fetch_history=loop._fetch,
            clock=loop.runner._clock,
            executor=pool,
            deadlock_timeout=timedelta(seconds=0.3),
        )
        policy = loop.runner._inline_policy("Spinner")
        assert policy is not None
        policy._probation = 0
        policy._wall_limit = 0.1
        loop.start("wf", "Spinner")
        await loop.run_until_idle()
        assert len(THREADS) == 1 and THREADS[0] == threading.get_ident()
        started = time.monotonic()
        loop.signal("wf", "spin")
        loop.bench.deliver()
        await loop.step()
        assert time.monotonic() - started < 10
    name, failed = loop.responses[-1]
    assert name == "FailWorkflowTask"
    assert "deadlock" in failed["failure"]["message"].lower()
    assert policy.offloaded, "a type that stalled the loop runs on the threads from then on"
    # The interrupt was aimed at the workflow code only: the loop thread carries on normally.
    time.sleep(0.05)
    assert sum(range(1000)) == 499500


def test_without_a_deadlock_timeout_activations_never_run_inline() -> None:
    with ThreadPoolExecutor(1) as pool:
        loop = MemoryLoop([Recorder], executor=pool)
        runner = WorkflowTaskRunner(
            workflows=[Recorder],
            namespace="default",
            identity="memory-worker",
            data_converter=loop.converter,
            fetch_history=loop._fetch,
            executor=pool,
            deadlock_timeout=None,
        )
    assert runner._inline_policy("Recorder") is None
    assert loop.runner._inline_policy("Recorder") is not None


def test_older_generation_collections_are_told_apart_from_young_ones() -> None:
    import gc

    from kronicle.worker._inline import _gc_mark, _older_collected

    mark = _gc_mark()
    gc.collect(0)
    assert not _older_collected(mark), "a youngest-generation collection keeps the CPU budget"
    for generation in (1, 2):
        mark = _gc_mark()
        gc.collect(generation)
        assert _older_collected(mark), f"a generation-{generation} collection earns the larger budget"


def test_a_type_sent_back_returns_to_the_loop_after_enough_cheap_activations_a_limited_number_of_times() -> None:
    policy = InlinePolicy("T", wall_limit=0.05, probation=0, readmit_after=3, returns=1)
    policy._observe(0.0001, 0.2, 0.005, blocked=True)  # looks like a stall (e.g. a GIL wait on a loaded machine)
    assert policy.offloaded
    for _ in range(2):
        policy.run(lambda x: x, 0)
    policy._observe(0.01, 0.01, 0.005, blocked=False)  # a slow one on the threads starts the count again
    for _ in range(2):
        policy.run(lambda x: x, 0)
    assert policy.offloaded, "three cheap ones in a row are needed"
    policy.run(lambda x: x, 0)
    assert policy.inline and not policy.offloaded
    policy._observe(0.0001, 0.2, 0.005, blocked=True)
    for _ in range(10):
        policy.run(lambda x: x, 0)
    assert policy.offloaded, "no returns left: it stays on the threads"
