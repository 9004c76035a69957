"""Creating and checking Kronicle's topics through a Kafka AdminClient.

Everything here is synchronous and idempotent: ``ensure_*`` creates what is
missing, accepts what exists with the right shape, and refuses (before creating
anything) when an existing co-partitioned topic has another partition count.
Existing topics' configs are left alone, since an operator may have tuned them.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from kronicle.topics._errors import CoPartitioningError, TopicAdminError, TopicNotFoundError
from kronicle.topics._names import NamespaceTopics
from kronicle.topics._specs import (
    DEFAULT_HISTORY_RETENTION_MS,
    DEFAULT_TASK_QUEUE_RETENTION_MS,
    TopicSpec,
    namespace_topic_specs,
    namespaces_topic_spec,
    task_queue_topic_specs,
)

__all__ = [
    "ensure_namespace_topics",
    "ensure_namespaces_topic",
    "ensure_task_queue_topics",
    "ensure_topics",
    "partition_counts",
    "verify_copartitioned",
]

DEFAULT_TIMEOUT_S = 30.0
_UNREACHABLE = {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN}
_NOT_AUTHORISED = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED}


def ensure_namespace_topics(
    admin: AdminClient,
    namespace: str,
    partitions: int,
    replication_factor: int = -1,
    *,
    history_retention_ms: int = DEFAULT_HISTORY_RETENTION_MS,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> NamespaceTopics:
    """Create the topics of ``namespace`` that do not exist yet.

    Args:
        admin: an AdminClient for the cluster.
        namespace: the namespace name (Kafka topic characters).
        partitions: partition count of commands, history and changelog (and
            visibility and dlq when they are created).
        replication_factor: replicas per partition; -1 uses the broker default.
        history_retention_ms: ``retention.ms`` of the history topic; -1 keeps it
            forever (see ``DEFAULT_HISTORY_RETENTION_MS``).
        timeout: seconds to wait for the broker.

    Returns:
        The namespace's topic names.

    Raises:
        CoPartitioningError: commands, history or changelog exists with another
            partition count (nothing is created then).
        TopicAdminError: the broker refused or could not be reached.
    """
    specs = namespace_topic_specs(namespace, partitions, replication_factor, history_retention_ms=history_retention_ms)
    ensure_topics(admin, specs, timeout=timeout)
    return NamespaceTopics(namespace)


def ensure_task_queue_topics(
    admin: AdminClient,
    namespace: str,
    queue: str,
    partitions: int | None = None,
    replication_factor: int = -1,
    *,
    retention_ms: int = DEFAULT_TASK_QUEUE_RETENTION_MS,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> tuple[str, str]:
    """Create the workflow-task and activity-task topics of a task queue if missing.

    Args:
        partitions: partition count; None uses the namespace's partition count
            (which then must exist).

    Returns:
        (workflow task topic, activity task topic).

    Raises:
        TopicNotFoundError: ``partitions`` is None and the namespace does not exist.
        TopicAdminError: the broker refused or could not be reached.
    """
    if partitions is None:
        partitions = verify_copartitioned(admin, namespace, timeout=timeout)
    specs = task_queue_topic_specs(namespace, queue, partitions, replication_factor, retention_ms=retention_ms)
    ensure_topics(admin, specs, timeout=timeout)
    return specs[0].name, specs[1].name


def ensure_namespaces_topic(
    admin: AdminClient, replication_factor: int = -1, *, timeout: float = DEFAULT_TIMEOUT_S
) -> str:
    """Create the compacted namespace registry topic ``kronicle._namespaces`` if missing; returns its name."""
    spec = namespaces_topic_spec(replication_factor)
    ensure_topics(admin, [spec], timeout=timeout)
    return spec.name


def verify_copartitioned(admin: AdminClient, namespace: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> int:
    """The partition count shared by the namespace's commands, history and changelog topics.

    Raises:
        TopicNotFoundError: one of them does not exist.
        CoPartitioningError: their partition counts differ.
        TopicAdminError: the broker could not be reached.
    """
    names = NamespaceTopics(namespace)
    counts = partition_counts(admin, names.copartitioned, timeout=timeout)
    missing = [t for t in names.copartitioned if t not in counts]
    if missing:
        raise TopicNotFoundError(
            f"namespace {namespace!r} does not exist or is incomplete: missing topic(s) {', '.join(missing)};"
            " create the namespace first (kronicle.topics.ensure_namespace_topics or `kronicle namespace create`)",
            missing,
        )
    if len(set(counts.values())) > 1:
        raise _copartitioning_error(namespace, counts)
    return counts[names.commands]


def ensure_topics(admin: AdminClient, specs: Sequence[TopicSpec], *, timeout: float = DEFAULT_TIMEOUT_S) -> list[str]:
    """Create the topics in ``specs`` that are missing; returns the names it created.

    Raises:
        CoPartitioningError: a spec marked ``copartitioned`` exists with another
            partition count (checked before anything is created, and again after).
        TopicAdminError: the broker refused or could not be reached.
    """
    existing = partition_counts(admin, [s.name for s in specs], timeout=timeout)
    _check_counts(specs, existing)
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    raced = _create(admin, missing, timeout)
    # Creation is acknowledged by the controller before every broker's metadata
    # shows the topic; wait, so a caller can produce to it straight away. Topics
    # someone else created in the meantime (raced) get their counts checked.
    visible = _wait_for(admin, [s.name for s in missing], timeout)
    absent = [s.name for s in missing if s.name not in visible]
    if absent:
        raise TopicAdminError(
            f"created {', '.join(absent)} but the brokers' metadata does not show it after {timeout:.0f} s;"
            " check the cluster's health and retry (creation is idempotent)"
        )
    _check_counts(specs, {**existing, **visible})
    return [s.name for s in missing if s.name not in raced]


def partition_counts(
    admin: AdminClient, topics: Iterable[str], *, timeout: float = DEFAULT_TIMEOUT_S
) -> dict[str, int]:
    """Partition count of each of ``topics`` that exists (missing topics are left out).

    Raises:
        TopicAdminError: the cluster metadata could not be read.
    """
    # Metadata for all topics, never for named ones: a named metadata request
    # can auto-create the topic on brokers with auto.create.topics.enable.
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise _admin_error("reading cluster metadata", exc) from exc
    counts: dict[str, int] = {}
    for name in topics:
        topic = metadata.topics.get(name)
        if topic is None or (topic.error is not None and not topic.partitions):
            continue
        counts[name] = len(topic.partitions)
    return counts


def _check_counts(specs: Sequence[TopicSpec], existing: Mapping[str, int]) -> None:
    copartitioned = [s for s in specs if s.copartitioned]
    wrong = [s for s in copartitioned if s.name in existing and existing[s.name] != s.partitions]
    if not wrong:
        return
    counts = {s.name: existing[s.name] for s in copartitioned if s.name in existing}
    detail = ", ".join(f"{t} has {n} partitions" for t, n in counts.items())
    raise CoPartitioningError(
        f"cannot use {wrong[0].partitions} partitions: {detail}; commands, history and state-changelog of a"
        f" namespace must have the same partition count. Pass partitions={existing[wrong[0].name]} to match the"
        " existing topics or, if the namespace holds no data yet, delete those topics first",
        counts,
    )


def _copartitioning_error(namespace: str, counts: Mapping[str, int]) -> CoPartitioningError:
    detail = ", ".join(f"{t} has {n} partitions" for t, n in counts.items())
    most = max(counts.values())
    return CoPartitioningError(
        f"namespace {namespace!r} is not co-partitioned: {detail}. A workflow's commands, history and state must"
        f" live on the same partition number. If the namespace holds no data yet, delete its topics and create it"
        f" again; otherwise add partitions to reach {most} (kafka-topics.sh --alter --partitions {most}) only after"
        " stopping the engine, knowing that this moves existing keys to other partitions",
        dict(counts),
    )


def _create(admin: AdminClient, specs: Sequence[TopicSpec], timeout: float) -> set[str]:
    """Create topics; returns the names that already existed (another creator won the race)."""
    try:
        futures = admin.create_topics(
            [NewTopic(**s.new_topic_args()) for s in specs], operation_timeout=timeout, request_timeout=timeout
        )
    except KafkaException as exc:
        raise _admin_error("creating topics", exc) from exc
    raced: set[str] = set()
    for name, future in futures.items():
        try:
            future.result(timeout=timeout + 5)
        except KafkaException as exc:
            if _code(exc) == KafkaError.TOPIC_ALREADY_EXISTS:
                raced.add(name)
                continue
            raise _admin_error(f"creating topic {name}", exc) from exc
        except concurrent.futures.TimeoutError as exc:
            raise TopicAdminError(
                f"creating topic {name} did not finish within {timeout:.0f} s; check the broker's health"
                " and retry (creation is idempotent)"
            ) from exc
    return raced


def _wait_for(admin: AdminClient, names: Iterable[str], timeout: float) -> dict[str, int]:
    wanted = list(names)
    deadline = time.monotonic() + timeout
    while True:
        counts = partition_counts(admin, wanted, timeout=timeout)
        if len(counts) == len(wanted) or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


def _code(exc: KafkaException) -> Any:
    err = exc.args[0] if exc.args else None
    return err.code() if isinstance(err, KafkaError) else None


def _admin_error(action: str, exc: KafkaException) -> TopicAdminError:
    err = exc.args[0] if exc.args else None
    if not isinstance(err, KafkaError):
        return TopicAdminError(f"{action} failed: {exc}")
    code, text = err.code(), err.str()
    if code in _UNREACHABLE:
        hint = "check that the admin client's bootstrap.servers point at a running Kafka cluster"
    elif code in _NOT_AUTHORISED:
        hint = (
            "grant this client's principal CREATE and DESCRIBE on topics with prefix 'kronicle.',"
            " or have an operator create them"
        )
    elif code == KafkaError.INVALID_REPLICATION_FACTOR:
        hint = "the replication factor exceeds the number of brokers; pass replication_factor=-1 for the broker default"
    else:
        hint = "see the broker's message above"
    return TopicAdminError(f"{action} failed: {text} ({err.name()}); {hint}")
