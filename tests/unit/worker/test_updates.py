"""Updates: delivered in workflow tasks, validated, accepted, completed; replayed from history."""

from __future__ import annotations

from kronicle import _wire
from kronicle.worker import Replayer
from kronicle.worker._history import attrs
from tests.unit.worker.memory import CONVERTER, MemoryLoop, payloads, value
from tests.unit.worker.workflows import Renamer


def update(loop: MemoryLoop, update_id: str, name: str) -> None:
    loop.bench.send(
        "UpdateWorkflow",
        {"workflow_id": "wf", "update_id": update_id, "name": "rename", "input": payloads(name), "reply_to": "replies"},
    )


def stages(loop: MemoryLoop) -> list[tuple[str, str]]:
    return [(v["update_id"], v["stage"]) for _, v in loop.bench.records("replies")]


async def test_update_is_validated_accepted_completed_and_replays() -> None:
    loop = MemoryLoop([Renamer])
    loop.start("wf", "Renamer")
    await loop.run_until_idle()
    update(loop, "u1", "Ann")
    update(loop, "u2", "")  # rejected by the validator
    await loop.run_until_idle()
    assert ("u1", "ACCEPTED") in stages(loop) and ("u2", "REJECTED") in stages(loop)
    loop.runner.evict_all()  # the completion after the timer is computed from a full replay
    loop.bench.advance(1000)
    await loop.run_until_idle()
    assert ("u1", "COMPLETED") in stages(loop)
    completed = next(v for _, v in loop.bench.records("replies") if v["stage"] == "COMPLETED")
    assert CONVERTER.payload_converter.from_payload(_wire.payload_from_bytes(completed["result"][0])) == "nobody -> Ann"
    loop.signal("wf", "finish")
    await loop.run_until_idle()
    history = loop.history("wf")
    assert value(attrs(history[-1])["result"]) == "Ann"
    types = [e["event_type"] for e in history]
    assert "WorkflowExecutionUpdateAccepted" in types and "WorkflowExecutionUpdateCompleted" in types
    assert (await Replayer(workflows=[Renamer]).replay_workflow(history)).replay_failure is None
