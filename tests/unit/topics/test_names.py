"""Topic names per namespace, and the names Kafka would refuse."""

from __future__ import annotations

import dataclasses

import pytest

from kronicle.topics import MAX_TOPIC_NAME_LENGTH, NAMESPACES_TOPIC, InvalidNameError, NamespaceTopics


def test_namespace_topic_names() -> None:
    t = NamespaceTopics("default")
    assert t.commands == "kronicle.default.commands"
    assert t.history == "kronicle.default.history"
    assert t.changelog == "kronicle.default.state-changelog"
    assert t.visibility == "kronicle.default.visibility"
    assert t.dlq == "kronicle.default.dlq"
    assert t.copartitioned == (t.commands, t.history, t.changelog)
    assert NAMESPACES_TOPIC == "kronicle._namespaces"


def test_task_queue_names() -> None:
    t = NamespaceTopics.for_namespace("prod-eu_1")
    assert t.task_queue("greetings", "workflow") == "kronicle.prod-eu_1.tq.greetings.workflow"
    assert t.task_queue("greetings", "activity") == "kronicle.prod-eu_1.tq.greetings.activity"


def test_for_namespace_equals_the_constructor_and_is_frozen() -> None:
    t = NamespaceTopics.for_namespace("a")
    assert t == NamespaceTopics("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.namespace = "b"  # type: ignore[misc]


@pytest.mark.parametrize("name", ["", "a b", "ns/1", "ns:1", "caf\u00e9", "a*"])
def test_illegal_namespace_names_are_refused_with_what_is_allowed(name: str) -> None:
    with pytest.raises(InvalidNameError, match=r"a-z, A-Z, 0-9, '\.', '_' and '-'"):
        NamespaceTopics(name)


def test_invalid_name_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="contains ' '"):
        NamespaceTopics("a b")


def test_the_longest_namespace_still_fits_every_topic_name() -> None:
    longest = MAX_TOPIC_NAME_LENGTH - len("kronicle.") - len(".state-changelog")
    t = NamespaceTopics("n" * longest)
    assert max(len(name) for name in t.all) == MAX_TOPIC_NAME_LENGTH
    with pytest.raises(InvalidNameError, match="at most"):
        NamespaceTopics("n" * (longest + 1))


def test_queue_names_are_validated_against_the_full_topic_length() -> None:
    t = NamespaceTopics("ns")
    room = MAX_TOPIC_NAME_LENGTH - len("kronicle.ns.tq.") - len(".activity")
    assert len(t.task_queue("q" * room, "activity")) == MAX_TOPIC_NAME_LENGTH
    with pytest.raises(InvalidNameError, match="task queue name"):
        t.task_queue("q" * (room + 1), "workflow")
    with pytest.raises(InvalidNameError, match="task queue name"):
        t.task_queue("bad queue", "workflow")
    with pytest.raises(InvalidNameError, match="'workflow' or 'activity'"):
        t.task_queue("q", "signal")  # type: ignore[arg-type]
