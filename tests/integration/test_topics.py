"""Topic creation, co-partitioning checks and murmur2 placement against a real broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigEntry, ConfigResource, ConfigSource

from kronicle.connectors.local_kafka import LocalCluster
from kronicle.topics import (
    DAY_MS,
    NAMESPACES_TOPIC,
    CoPartitioningError,
    NamespaceTopics,
    TopicNotFoundError,
    ensure_namespace_topics,
    ensure_namespaces_topic,
    ensure_task_queue_topics,
    ensure_topics,
    namespace_topic_specs,
    partition_counts,
    partition_for,
    verify_copartitioned,
)
from kronicle.topics._admin import _create
from tests.kafka_helpers import create_topics, drain


@pytest.fixture
def admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def ns() -> str:
    return f"it-{uuid.uuid4().hex[:10]}"


def topic_entries(admin: AdminClient, topic: str, timeout: float = 20.0) -> dict[str, ConfigEntry]:
    """The topic's config entries, as a broker that already knows the topic reports them.

    The request goes to any broker, and on a three-broker cluster that broker's metadata
    can lag the one ensure_* waited on; it then answers UNKNOWN_TOPIC_OR_PART for a moment.
    """
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    deadline = time.monotonic() + timeout
    while True:
        try:
            entries: dict[str, ConfigEntry] = admin.describe_configs([resource])[resource].result(timeout=30)
            return entries
        except KafkaException as exc:
            unknown = exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            if not unknown or time.monotonic() >= deadline:
                raise
        time.sleep(0.05)


def wait_visible(admin: AdminClient, topics: Sequence[str], timeout: float = 20.0) -> None:
    """Wait until the broker's metadata shows topics created by other tooling."""
    deadline = time.monotonic() + timeout
    while len(partition_counts(admin, topics)) < len(topics):
        assert time.monotonic() < deadline, f"{topics} not visible after {timeout} s"
        time.sleep(0.05)


def _metadata_showing(admin: AdminClient, topics: Sequence[str], timeout: float = 20.0) -> Any:
    """Cluster metadata that shows every one of ``topics``.

    Each read may be answered by another broker, and a broker's metadata can lag the
    one ensure_* waited on by a moment, so one read is not enough on a three-broker cluster.
    """
    deadline = time.monotonic() + timeout
    while True:
        metadata = admin.list_topics(timeout=timeout)
        if all(name in metadata.topics for name in topics):
            return metadata
        assert time.monotonic() < deadline, f"{topics} not all in the metadata after {timeout} s"
        time.sleep(0.05)


def source(entry: ConfigEntry) -> ConfigSource:
    return ConfigSource(getattr(entry.source, "value", entry.source))


def topic_config(admin: AdminClient, topic: str) -> dict[str, str]:
    return {name: entry.value for name, entry in topic_entries(admin, topic).items()}


def test_ensure_creates_every_namespace_topic_with_its_partitions_and_config(admin: AdminClient, ns: str) -> None:
    topics = ensure_namespace_topics(admin, ns, 3, history_retention_ms=30 * DAY_MS)
    assert topics == NamespaceTopics(ns)
    assert partition_counts(admin, topics.all) == dict.fromkeys(topics.all, 3)
    for spec in namespace_topic_specs(ns, 3, history_retention_ms=30 * DAY_MS):
        actual = topic_entries(admin, spec.name)
        for key, value in spec.config.items():
            # Set on the topic itself, not a broker default that happens to agree.
            assert (actual[key].value, source(actual[key])) == (value, ConfigSource.DYNAMIC_TOPIC_CONFIG), key
    assert topic_config(admin, topics.changelog)["cleanup.policy"] == "compact"
    assert topic_config(admin, topics.history)["retention.ms"] == str(30 * DAY_MS)


def test_a_second_ensure_is_a_no_op(admin: AdminClient, ns: str) -> None:
    specs = namespace_topic_specs(ns, 2)
    assert sorted(ensure_topics(admin, specs)) == sorted(s.name for s in specs)
    assert ensure_topics(admin, specs) == []
    ensure_namespace_topics(admin, ns, 2)
    assert verify_copartitioned(admin, ns) == 2


def test_ensure_refuses_an_existing_topic_with_another_partition_count(
    admin: AdminClient, ns: str, kafka_bootstrap: str
) -> None:
    t = NamespaceTopics(ns)
    create_topics(kafka_bootstrap, {t.commands: 4})
    wait_visible(admin, [t.commands])
    with pytest.raises(CoPartitioningError) as info:
        ensure_namespace_topics(admin, ns, 2)
    assert info.value.counts[t.commands] == 4
    assert "partitions=4" in str(info.value)
    # Refused before creating anything else.
    assert partition_counts(admin, t.all) == {t.commands: 4}


def test_a_topic_created_by_someone_else_meanwhile_is_checked_not_recreated(admin: AdminClient, ns: str) -> None:
    # The race ensure_topics handles: the topic appears between its metadata read
    # and its create request. Creating it again must report it, not fail.
    specs = namespace_topic_specs(ns, 2)[:1]
    assert _create(admin, specs, 30.0) == set()
    wait_visible(admin, [specs[0].name])
    assert _create(admin, specs, 30.0) == {specs[0].name}


def test_verify_copartitioned_names_each_topic_and_its_count(admin: AdminClient, ns: str, kafka_bootstrap: str) -> None:
    t = NamespaceTopics(ns)
    create_topics(kafka_bootstrap, {t.commands: 2, t.history: 2, t.changelog: 3})
    wait_visible(admin, t.copartitioned)
    with pytest.raises(CoPartitioningError) as info:
        verify_copartitioned(admin, ns)
    message = str(info.value)
    assert f"{t.commands} has 2 partitions" in message
    assert f"{t.changelog} has 3 partitions" in message
    assert info.value.counts == {t.commands: 2, t.history: 2, t.changelog: 3}


def test_verify_copartitioned_on_a_missing_namespace_says_to_create_it(admin: AdminClient, ns: str) -> None:
    with pytest.raises(TopicNotFoundError, match="create the namespace first") as info:
        verify_copartitioned(admin, ns)
    assert info.value.missing == list(NamespaceTopics(ns).copartitioned)


def test_task_queue_topics_default_to_the_namespace_partition_count(admin: AdminClient, ns: str) -> None:
    with pytest.raises(TopicNotFoundError):
        ensure_task_queue_topics(admin, ns, "greetings")
    ensure_namespace_topics(admin, ns, 3)
    wf, act = ensure_task_queue_topics(admin, ns, "greetings")
    assert (wf, act) == (f"kronicle.{ns}.tq.greetings.workflow", f"kronicle.{ns}.tq.greetings.activity")
    assert partition_counts(admin, [wf, act]) == {wf: 3, act: 3}
    assert topic_config(admin, act)["retention.ms"] == str(DAY_MS)
    assert ensure_task_queue_topics(admin, ns, "greetings") == (wf, act)


def test_namespaces_topic_is_compacted(admin: AdminClient) -> None:
    assert ensure_namespaces_topic(admin) == NAMESPACES_TOPIC
    assert ensure_namespaces_topic(admin) == NAMESPACES_TOPIC
    assert partition_counts(admin, [NAMESPACES_TOPIC]) == {NAMESPACES_TOPIC: 1}
    assert topic_config(admin, NAMESPACES_TOPIC)["cleanup.policy"] == "compact"


def test_partition_for_matches_where_a_murmur2_producer_puts_each_key(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    partitions = 7
    topic = topic_factory("murmur2", partitions=partitions)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random", "linger.ms": 5})
    keys = [f"workflow-{i}".encode() for i in range(200)] + [b"", b"\x00\xff", "\u00e9t\u00e9".encode()]
    for key in keys:
        producer.produce(topic, key=key, value=key)
    assert producer.flush(30) == 0

    records = drain(kafka_bootstrap, topic, expect=len(keys), read_committed=False)
    assert len(records) == len(keys)
    placed = {bytes(m.key() or b""): m.partition() for m in records}
    assert placed == {key: partition_for(key, partitions) for key in keys}
    assert len(set(placed.values())) == partitions, "200 keys should reach every partition"


@pytest.mark.cluster3
def test_replication_factor_three_sets_min_insync_replicas_two(kafka_cluster3: LocalCluster) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_cluster3.bootstrap_servers})
    ns = f"it-{uuid.uuid4().hex[:10]}"
    topics = ensure_namespace_topics(admin, ns, 2, replication_factor=3)
    metadata = _metadata_showing(admin, topics.all)
    for name in topics.all:
        assert all(len(p.replicas) == 3 for p in metadata.topics[name].partitions.values()), name
        entry = topic_entries(admin, name)["min.insync.replicas"]
        # Set on the topic itself, not inherited from the cluster's broker defaults.
        assert (entry.value, source(entry)) == ("2", ConfigSource.DYNAMIC_TOPIC_CONFIG), name
