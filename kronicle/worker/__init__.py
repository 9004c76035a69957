"""Workers: run workflows and activities from Kafka task queues; replay histories.

``Worker`` consumes a task queue's workflow and activity topics directly from
Kafka and answers on the namespace's commands topic; ``Replayer`` replays
stored histories against workflow code to catch non-determinism before a
deploy. See ``docs/worker.md``.
"""

from __future__ import annotations

from kronicle.worker._replayer import Replayer, WorkflowReplayResult, WorkflowReplayResults
from kronicle.worker._worker import Worker, WorkerClient, WorkerError

__all__ = [
    "Replayer",
    "Worker",
    "WorkerClient",
    "WorkerError",
    "WorkflowReplayResult",
    "WorkflowReplayResults",
]
