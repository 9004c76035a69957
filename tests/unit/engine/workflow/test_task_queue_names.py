"""A start naming a task queue Kafka cannot have is rejected by the handler, before any topic is touched."""

from __future__ import annotations

import pytest

from kronicle.engine.handler import InvalidCommand
from tests.unit.engine.workflow.harness import CODEC, Bench


@pytest.mark.parametrize("queue", ["no spaces!", "ü", "x" * 300])
def test_a_start_with_an_impossible_task_queue_is_invalid(queue: str) -> None:
    b = Bench()
    value = {"workflow_id": "wf", "workflow_type": "T", "task_queue": queue, "request_id": "r"}
    with pytest.raises(InvalidCommand, match="task_queue"):
        b.send("StartWorkflow", value)
    assert b.ctx.effects.outputs == []


def test_with_a_reply_topic_the_caller_gets_invalid_argument() -> None:
    b = Bench()
    value = {"workflow_id": "wf", "workflow_type": "T", "task_queue": "a/b", "request_id": "r", "reply_to": "replies"}
    b.send("StartWorkflow", value)
    (reply,) = [o for o in b.ctx.effects.outputs if o.topic == "replies"]
    assert reply.value is not None
    _, answer = CODEC.decode(reply.value)
    assert (answer["ok"], answer["error_type"]) == (False, "InvalidArgument")
