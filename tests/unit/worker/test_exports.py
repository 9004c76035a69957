"""The public names of kronicle.worker are locked."""

from __future__ import annotations

import kronicle.worker


def test_worker_exports() -> None:
    assert kronicle.worker.__all__ == [
        "Replayer",
        "Worker",
        "WorkerClient",
        "WorkerError",
        "WorkflowReplayResult",
        "WorkflowReplayResults",
    ]
    for name in kronicle.worker.__all__:
        assert hasattr(kronicle.worker, name)
