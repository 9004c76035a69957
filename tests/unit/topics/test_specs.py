"""Topic configs per kind."""

from __future__ import annotations

import pytest

from kronicle.topics import (
    DAY_MS,
    NAMESPACES_TOPIC,
    NamespaceTopics,
    TopicSpec,
    namespace_topic_specs,
    namespaces_topic_spec,
    task_queue_topic_specs,
)


def by_name(specs: list[TopicSpec]) -> dict[str, TopicSpec]:
    return {s.name: s for s in specs}


def test_namespace_topics_have_the_documented_configs() -> None:
    t = NamespaceTopics("ns")
    specs = by_name(namespace_topic_specs("ns", 6, history_retention_ms=30 * DAY_MS))
    assert set(specs) == set(t.all)
    assert dict(specs[t.commands].config) == {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}
    assert dict(specs[t.history].config) == {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)}
    assert dict(specs[t.changelog].config) == {"cleanup.policy": "compact"}
    assert dict(specs[t.visibility].config) == {"cleanup.policy": "compact"}
    assert dict(specs[t.dlq].config) == {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}
    assert all(s.partitions == 6 and s.replication_factor == -1 for s in specs.values())
    assert {s.name for s in specs.values() if s.copartitioned} == set(t.copartitioned)


def test_history_is_kept_forever_by_default() -> None:
    specs = by_name(namespace_topic_specs("ns", 1))
    assert specs["kronicle.ns.history"].config["retention.ms"] == "-1"


def test_task_queue_topics_keep_tasks_one_day() -> None:
    specs = task_queue_topic_specs("ns", "q", 4)
    assert [s.name for s in specs] == ["kronicle.ns.tq.q.workflow", "kronicle.ns.tq.q.activity"]
    for s in specs:
        assert dict(s.config) == {"cleanup.policy": "delete", "retention.ms": str(DAY_MS)}
        assert not s.copartitioned


def test_namespaces_topic_is_one_compacted_partition() -> None:
    spec = namespaces_topic_spec()
    assert (spec.name, spec.partitions, dict(spec.config)) == (NAMESPACES_TOPIC, 1, {"cleanup.policy": "compact"})


@pytest.mark.parametrize(("rf", "min_isr"), [(-1, None), (1, None), (2, None), (3, "2"), (5, "2")])
def test_min_insync_replicas_is_two_from_replication_factor_three(rf: int, min_isr: str | None) -> None:
    specs = [*namespace_topic_specs("ns", 3, rf), *task_queue_topic_specs("ns", "q", 3, rf), namespaces_topic_spec(rf)]
    for spec in specs:
        assert spec.config.get("min.insync.replicas") == min_isr
        assert spec.replication_factor == rf


def test_spec_config_is_read_only() -> None:
    spec = namespaces_topic_spec()
    with pytest.raises(TypeError):
        spec.config["cleanup.policy"] = "delete"  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"partitions": 0}, "partition count"),
        ({"replication_factor": 0}, "replication factor"),
        ({"history_retention_ms": 0}, "retention"),
        ({"history_retention_ms": -5}, "retention"),
    ],
)
def test_out_of_range_values_are_refused(kwargs: dict[str, int], match: str) -> None:
    args = {"partitions": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        namespace_topic_specs("ns", **args)


def test_new_topic_args() -> None:
    spec = namespace_topic_specs("ns", 2, 3)[0]
    assert spec.new_topic_args() == {
        "topic": "kronicle.ns.commands",
        "num_partitions": 2,
        "replication_factor": 3,
        "config": {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS), "min.insync.replicas": "2"},
    }
