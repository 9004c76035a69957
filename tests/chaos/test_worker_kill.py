"""kill -9 SDK worker processes mid-activity and mid-workflow-task, restart them: every workflow completes once.

Two ``kronicle.worker.Worker`` processes (``python -m tests.chaos.sdk_worker``)
serve one task queue, against the real engine and frontend (a ``DevStack`` in
the test process). While workflows are started and signalled, one worker at a
time is killed -9 and started again a moment later. The engine must notice
what the dead worker held: a workflow task it never completed times out and is
scheduled again, an activity attempt that stops heartbeating times out after
2 s and is retried (its ``ActivityTaskStarted`` then carries ``attempt > 1``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kronicle import _wire
from kronicle.client import Client
from kronicle.connectors.dev_stack import DevStack
from kronicle.connectors.local_kafka import die_with_parent
from kronicle.converter import DataConverter
from kronicle.testing.history_check import check_histories
from kronicle.topics import NamespaceTopics
from tests.chaos.conftest import Scale
from tests.chaos.harness import REPO, HistoryReader, new_registry, print_figures, rng
from tests.chaos.sdk_worker import WORKFLOW_TYPE, bonus_for, expected_result

WORKERS = 2
TASK_TIMEOUT = timedelta(seconds=3)
"""Workflow task timeout: how soon a task a dead worker held is scheduled again."""


class WorkerProcess:
    """An SDK worker in a subprocess that can be killed -9."""

    def __init__(self, frontend: str, namespace: str, queue: str, identity: str, log_dir: Path) -> None:
        self.cmd = [
            sys.executable, "-m", "tests.chaos.sdk_worker",
            "--frontend", frontend, "--namespace", namespace, "--queue", queue, "--identity", identity,
        ]  # fmt: skip
        self.log = log_dir / f"worker-{identity}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_from = 0

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until this start of the worker serves its queue (it prints ``worker ready``)."""
        deadline = time.monotonic() + timeout
        while b"worker ready" not in self.log.read_bytes()[self._log_from :]:
            assert self.alive(), f"worker {self.log.stem} exited while starting; see {self.log}"
            assert time.monotonic() < deadline, f"worker {self.log.stem} not ready after {timeout} s"
            await asyncio.sleep(0.1)

    def start(self) -> WorkerProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(die_with_parent(self.cmd), stdout=out, stderr=subprocess.STDOUT, env=env)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def terminate(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def encoded(value: Any) -> list[bytes]:
    return _wire.payloads_to_bytes(DataConverter.default.payload_converter.to_payloads([value]))


async def start_and_signal(client: Client, workflow_id: str, x: int, queue: str) -> None:
    handle = await client.start_workflow(
        WORKFLOW_TYPE, x, id=workflow_id, task_queue=queue, task_timeout=TASK_TIMEOUT, request_id=f"start-{workflow_id}"
    )
    await handle.signal("bonus", bonus_for(x), request_id=f"bonus-{workflow_id}")


@pytest.mark.timeout(1800)
async def test_killing_workers_mid_activity_and_mid_workflow_task_loses_and_repeats_nothing(
    kafka_bootstrap: str, tmp_path: Path, scale: Scale
) -> None:
    short = scale.name == "short"
    workflows = scale.workflows if short else 2000
    kills = scale.kills if short else 20
    random = rng()
    namespace = f"wk{uuid.uuid4().hex[:8]}"
    queue = f"q{uuid.uuid4().hex[:6]}"
    stack = DevStack(kafka=kafka_bootstrap, data_dir=tmp_path / "stack", port=0, namespace=namespace)
    await stack.start()
    assert stack.engine is not None
    stack.engine.ensure_task_queue(queue)
    reader = HistoryReader(kafka_bootstrap, NamespaceTopics(namespace), new_registry()).start()
    workers = [
        WorkerProcess(stack.frontend_address, namespace, queue, f"w{i}", tmp_path).start() for i in range(WORKERS)
    ]
    client = await Client.connect(stack.frontend_address, namespace=namespace)
    ids = [f"wk-{i}" for i in range(workflows)]
    kill_log: list[str] = []
    try:
        # Start the workflows over a few seconds, in small concurrent groups, while the kills go on;
        # spread enough (~4 s in the short run) that the first kills find activities running even
        # when workers and engine are quick.
        async def load() -> None:
            for first in range(0, workflows, 20):
                group = range(first, min(workflows, first + 20))
                await asyncio.gather(*(start_and_signal(client, ids[i], i, queue) for i in group))
                await asyncio.sleep(0.6 if short else 0.05)

        async def chaos() -> None:
            # A kill must find activities running on its victim. A worker still starting (slow on a
            # loaded machine: a restarted one may take seconds) holds none, so each kill waits until
            # its victim serves the queue, then a moment (an attempt takes ~1 s) for it to take some.
            for _ in range(kills):
                victim = workers[random.randrange(WORKERS)]
                await victim.wait_ready()
                await asyncio.sleep(random.uniform(0.8, 1.5))
                victim.kill9()
                kill_log.append(victim.log.stem)
                await asyncio.sleep(random.uniform(0.5, 1.5))
                victim.start()
                await asyncio.sleep(random.uniform(1.5, 3.0))

        started = time.monotonic()
        await asyncio.gather(load(), chaos())
        deadline = time.monotonic() + scale.wait
        while reader.closed_count() < workflows and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        elapsed = time.monotonic() - started
        closed = reader.closed_count()
        await asyncio.to_thread(reader.settle, 3.0)
        results = await asyncio.gather(*(client.get_workflow_handle(wid).result() for wid in ids[: min(50, workflows)]))
    finally:
        await client.close()
        for worker in workers:
            worker.terminate()
        reader.stop()
        await stack.stop()
    histories = {wid: list(events) for wid, events in reader.events.items()}
    report = check_histories(
        histories,
        {wid: encoded(expected_result(i)) for i, wid in enumerate(ids)},
        expected_signals={wid: [f"bonus-{wid}"] for wid in ids},
    )
    retried = sum(
        1
        for events in histories.values()
        for e in events
        if e["event_type"] == "ActivityTaskStarted" and e["activity_task_started_event_attributes"]["attempt"] > 1
    )
    task_timeouts = sum(1 for events in histories.values() for e in events if e["event_type"] == "WorkflowTaskTimedOut")
    print_figures(
        "worker-kill",
        scale=scale.name,
        workflows=workflows,
        worker_kills=len(kill_log),
        closed=closed,
        problems=len(report.problems),
        activities_retried=retried,
        workflow_tasks_timed_out=task_timeouts,
        all_closed_after_s=round(elapsed, 1),
    )
    report.raise_if_failed()
    assert report.closed == workflows
    assert results == [expected_result(i) for i in range(len(results))]
    assert retried > 0, "no activity attempt was cut short by a kill: the scenario did not test what it should"
