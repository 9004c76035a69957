"""The public surface of kronicle.engine.workflow is small and locked."""

from __future__ import annotations

import kronicle.engine.workflow as wf
from kronicle.engine.handler import TIMER_COLUMN_FAMILIES, Handler
from tests.unit.engine.workflow.harness import CODEC


def test_exported_names() -> None:
    assert wf.__all__ == sorted(wf.__all__)
    assert wf.__all__ == [
        "COLUMN_FAMILIES",
        "WorkflowHandler",
        "WorkflowOptions",
        "WorkflowTopics",
        "continued_run_id",
        "describe",
        "read_history",
        "start_run_id",
    ]


def test_handler_satisfies_the_engine_contract() -> None:
    handler: Handler = wf.WorkflowHandler(topics=wf.WorkflowTopics("default"), encode=CODEC.encode, decode=CODEC.decode)
    assert tuple(handler.column_families) == wf.COLUMN_FAMILIES
    assert not set(handler.column_families) & set(TIMER_COLUMN_FAMILIES)


def test_topic_names() -> None:
    topics = wf.WorkflowTopics("ns1")
    assert (topics.commands, topics.history, topics.visibility) == (
        "kronicle.ns1.commands",
        "kronicle.ns1.history",
        "kronicle.ns1.visibility",
    )
    assert topics.workflow_tasks("q") == "kronicle.ns1.tq.q.workflow"
    assert topics.activity_tasks("q") == "kronicle.ns1.tq.q.activity"
