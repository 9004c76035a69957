"""Property: whatever activations a run received, replaying them yields the same completions."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from kronicle import workflow
from kronicle.worker import _activation as act
from tests.unit.sdk.harness import Harness, payload, replay


@workflow.defn
class Busy:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.done = False

    @workflow.run
    async def run(self) -> list[str]:
        while not self.done:
            token = str(workflow.uuid4())[:8]
            got = await workflow.execute_activity("work", token, start_to_close_timeout=timedelta(seconds=5))
            self.items.append(f"{got}@{workflow.now().isoformat()}")
            try:
                await workflow.wait_condition(lambda: self.done, timeout=workflow.random().randint(1, 60))
            except TimeoutError:
                self.items.append("tick")
        return self.items

    @workflow.signal
    def add(self, item: str) -> None:
        self.items.append(item)

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.update
    async def count(self) -> int:
        await workflow.sleep(1)
        return len(self.items)

    @workflow.query
    def snapshot(self) -> list[str]:
        return list(self.items)


STEPS = st.lists(
    st.sampled_from(["add", "finish", "update", "query", "fire", "resolve", "cancel"]), min_size=1, max_size=25
)


def track(completion: act.Completion, timers: set[int], activities: set[int]) -> None:
    for cmd in completion.commands:
        match cmd:
            case act.StartTimer(seq=seq):
                timers.add(seq)
            case act.CancelTimer(seq=seq):
                timers.discard(seq)
            case act.ScheduleActivity(seq=seq):
                activities.add(seq)
            case act.RequestCancelActivity(seq=seq):
                activities.discard(seq)


@settings(max_examples=60, deadline=None)
@given(STEPS, st.integers(0, 2**32))
def test_replay_reproduces_every_completion(steps: list[str], seed: int) -> None:
    h = Harness(Busy)
    timers: set[int] = set()
    activities: set[int] = set()
    original = [h.start(seed=seed)]
    track(original[0], timers, activities)
    for i, step in enumerate(steps):
        job: act.Job
        if step == "add":
            job = act.SignalWorkflow("add", [payload(f"item{i}")])
        elif step == "finish":
            job = act.SignalWorkflow("finish")
        elif step == "update":
            job = act.DoUpdate(f"u{i}", "count")
        elif step == "query":
            job = act.QueryWorkflow(f"q{i}", "snapshot")
        elif step == "cancel":
            job = act.CancelWorkflow()
        elif step == "fire" and timers:
            job = act.FireTimer(min(timers))
            timers.discard(job.seq)
        elif step == "resolve" and activities:
            job = act.ResolveActivity(min(activities), "completed", payload(f"r{i}"))
            activities.discard(job.seq)
        else:
            continue
        completion = h.step(job, advance=timedelta(seconds=i + 1))
        assert completion.failure is None, completion.failure
        original.append(completion)
        track(completion, timers, activities)
    assert replay(Busy, h.activations) == original
