"""The namespace registry: a compacted Kafka topic, ``kronicle._namespaces``, read into memory.

Each record is keyed by namespace name; its value is the namespace's
description as UTF-8 JSON (:meth:`NamespaceInfo.to_json`). The topic is
compacted, so it keeps the latest description of every namespace forever.
A :class:`NamespaceRegistry` reads the topic from the beginning when it
starts and keeps following it on a background thread, so every frontend sees
every change, its own and other frontends', within moments.

Creating a namespace also creates its topics (``kronicle.topics``), then
writes the record; a write returns once the registry has read its own record
back, so a describe right after a create sees it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from kronicle.topics import NAMESPACES_TOPIC, NamespaceTopics, ensure_namespace_topics, ensure_namespaces_topic

__all__ = [
    "DEFAULT_NAMESPACE_RETENTION_MS",
    "NAMESPACE_STATES",
    "NamespaceAlreadyExistsError",
    "NamespaceInfo",
    "NamespaceNotFoundError",
    "NamespaceRegistry",
]

_log = logging.getLogger(__name__)

DEFAULT_NAMESPACE_RETENTION_MS = 7 * 24 * 3600 * 1000
"""How long closed runs are kept when a namespace is created without a retention (Temporal's dev default is 1 day;
we keep the engine's default of 7 days)."""

NAMESPACE_STATES = ("REGISTERED", "DEPRECATED")
"""Temporal's namespace states that Kronicle records (there is no delete yet)."""

_WAIT_S = 15.0


class NamespaceNotFoundError(KeyError):
    """No namespace of that name is registered."""


class NamespaceAlreadyExistsError(ValueError):
    """A namespace of that name is already registered."""


@dataclasses.dataclass(frozen=True)
class NamespaceInfo:
    """One namespace as the registry records it (Temporal's NamespaceInfo and config, flattened)."""

    name: str
    """The namespace name (Kafka topic characters)."""
    description: str = ""
    """Free text."""
    owner_email: str = ""
    """Who to ask about it."""
    retention_ms: int = DEFAULT_NAMESPACE_RETENTION_MS
    """How long a closed run's state and events are kept (Temporal's workflow execution retention period)."""
    state: str = "REGISTERED"
    """``REGISTERED`` or ``DEPRECATED`` (recorded; a deprecated namespace still serves)."""
    partitions: int = 4
    """Partition count of the namespace's commands, history and changelog topics."""
    created_time_ms: int = 0
    """When it was created (Unix ms)."""
    updated_time_ms: int = 0
    """When it was last changed (Unix ms)."""
    data: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Free key-value pairs (Temporal's namespace data)."""

    def to_json(self) -> dict[str, Any]:
        """The JSON form (the record value, and the HTTP API's namespace object)."""
        out = dataclasses.asdict(self)
        out["data"] = dict(self.data)
        return out

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> NamespaceInfo:
        """Read :meth:`to_json`'s form; unknown fields are ignored (newer writers)."""
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in value.items() if k in names}
        fields["data"] = dict(fields.get("data") or {})
        return cls(**fields)


class NamespaceRegistry:
    """Namespaces from ``kronicle._namespaces``, kept current by a consumer thread.

    ``start()`` and the writes block (call them from an executor in async code);
    ``get`` and ``list`` read memory.

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        replication_factor: For the registry topic and the namespaces' topics (-1: broker default).
    """

    def __init__(self, bootstrap_servers: str, *, replication_factor: int = -1) -> None:
        self._bootstrap = bootstrap_servers
        self._replication_factor = replication_factor
        self._admin = AdminClient({"bootstrap.servers": bootstrap_servers})
        self._namespaces: dict[str, NamespaceInfo] = {}
        self._applied = -1  # offset of the last record read
        self._changed = threading.Condition()
        self._write_lock = threading.Lock()
        self._stopping = threading.Event()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Create the topic if missing, read it to the end, and keep following it.

        Raises:
            TopicAdminError: the broker could not be reached.
            TimeoutError: the topic could not be read to its end within ``timeout``.
        """
        if self._thread is not None:
            return
        ensure_namespaces_topic(self._admin, self._replication_factor)
        consumer = Consumer(
            {
                "bootstrap.servers": self._bootstrap,
                "group.id": "kronicle-namespaces-reader",  # never committed: assign() below, no group state
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,
            }
        )
        consumer.assign([TopicPartition(NAMESPACES_TOPIC, 0, OFFSET_BEGINNING)])
        self._consumer = consumer
        self._producer = Producer({"bootstrap.servers": self._bootstrap, "enable.idempotence": True, "acks": "all"})
        self._thread = threading.Thread(target=self._follow, name="kronicle-namespaces", daemon=True)
        self._thread.start()
        self._catch_up(timeout)

    def stop(self) -> None:
        """Stop following the topic (idempotent)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None

    # -- reads --------------------------------------------------------------------

    def get(self, name: str) -> NamespaceInfo | None:
        """The namespace, or None."""
        with self._changed:
            return self._namespaces.get(name)

    def list(self) -> list[NamespaceInfo]:
        """Every namespace, by name."""
        with self._changed:
            return [self._namespaces[k] for k in sorted(self._namespaces)]

    # -- writes -------------------------------------------------------------------

    def create(self, info: NamespaceInfo) -> NamespaceInfo:
        """Create the namespace's topics and register it.

        Raises:
            InvalidNameError: the name cannot be part of a topic name.
            ValueError: a field is out of range.
            NamespaceAlreadyExistsError: it is registered already.
            TopicAdminError, CoPartitioningError: its topics could not be created.
        """
        NamespaceTopics(info.name)  # validates the name
        _check(info)
        with self._write_lock:
            self._catch_up(_WAIT_S)
            if self.get(info.name) is not None:
                raise NamespaceAlreadyExistsError(info.name)
            ensure_namespace_topics(self._admin, info.name, info.partitions, self._replication_factor)
            now = int(time.time() * 1000)
            return self._write(dataclasses.replace(info, created_time_ms=now, updated_time_ms=now))

    def ensure(self, info: NamespaceInfo) -> NamespaceInfo:
        """The registered namespace ``info.name``, registering (and creating the topics of) ``info`` if it is not."""
        try:
            return self.create(info)
        except NamespaceAlreadyExistsError:
            existing = self.get(info.name)
            assert existing is not None
            return existing

    def update(self, name: str, **changes: Any) -> NamespaceInfo:
        """Change ``description``, ``owner_email``, ``retention_ms``, ``state`` or ``data`` of a namespace.

        Raises:
            NamespaceNotFoundError: it is not registered.
            ValueError: an unknown field, or a value out of range.
        """
        allowed = {"description", "owner_email", "retention_ms", "state", "data"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)}; changeable: {sorted(allowed)}")
        with self._write_lock:
            self._catch_up(_WAIT_S)
            current = self.get(name)
            if current is None:
                raise NamespaceNotFoundError(name)
            changed = dataclasses.replace(current, **changes, updated_time_ms=int(time.time() * 1000))
            _check(changed)
            return self._write(changed)

    def _write(self, info: NamespaceInfo) -> NamespaceInfo:
        producer = self._producer
        if producer is None:
            raise RuntimeError("the namespace registry is not started")
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            outcome["error"], outcome["offset"] = err, msg.offset()
            done.set()

        value = json.dumps(info.to_json(), sort_keys=True).encode()
        producer.produce(NAMESPACES_TOPIC, key=info.name.encode(), value=value, on_delivery=on_delivery)
        deadline = time.monotonic() + _WAIT_S
        while not done.is_set() and time.monotonic() < deadline:
            producer.poll(0.05)
        if not done.is_set() or outcome["error"] is not None:
            raise RuntimeError(f"could not write namespace {info.name!r} to {NAMESPACES_TOPIC}: {outcome.get('error')}")
        self._wait_applied(int(outcome["offset"]), _WAIT_S)
        return info

    # -- following the topic ------------------------------------------------------

    def _follow(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self._stopping.is_set():
            msg = consumer.poll(0.1)
            if msg is None:
                continue
            if msg.error():
                _log.warning("%s: %s", NAMESPACES_TOPIC, msg.error())
                continue
            self._apply(msg)

    def _apply(self, msg: Message) -> None:
        name = (msg.key() or b"").decode("utf-8", "replace")
        raw = msg.value()
        info: NamespaceInfo | None = None
        if raw is not None:
            try:
                info = NamespaceInfo.from_json(json.loads(raw))
            except (ValueError, TypeError) as err:  # a bad record must not stop the registry
                _log.warning(
                    "%s offset %s: undecodable namespace record (%s); skipped", NAMESPACES_TOPIC, msg.offset(), err
                )
        with self._changed:
            if raw is None:
                self._namespaces.pop(name, None)
            elif info is not None:
                self._namespaces[name] = info
            self._applied = int(msg.offset() or 0)
            self._changed.notify_all()

    def _catch_up(self, timeout: float) -> None:
        """Wait until every record written before now has been read."""
        deadline = time.monotonic() + timeout
        consumer = Consumer({"bootstrap.servers": self._bootstrap, "group.id": "kronicle-namespaces-watermark"})
        try:
            while True:
                try:
                    _, high = consumer.get_watermark_offsets(
                        TopicPartition(NAMESPACES_TOPIC, 0), timeout=max(deadline - time.monotonic(), 1.0)
                    )
                    break
                except KafkaException as err:
                    # A topic created a moment ago may not have a leader yet (NOT_LEADER_FOR_PARTITION).
                    if time.monotonic() >= deadline:
                        raise TimeoutError(
                            f"cannot read the end offset of {NAMESPACES_TOPIC} ({err}); is the broker reachable?"
                        ) from err
                    time.sleep(0.2)
        finally:
            consumer.close()
        if high > 0:
            self._wait_applied(high - 1, max(deadline - time.monotonic(), 1.0))

    def _wait_applied(self, offset: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._applied < offset:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"the namespace registry did not read {NAMESPACES_TOPIC} up to offset {offset} within"
                        f" {timeout:.0f} s; is the broker reachable?"
                    )
                self._changed.wait(min(left, 0.2))


def _check(info: NamespaceInfo) -> None:
    if info.state not in NAMESPACE_STATES:
        raise ValueError(f"state must be one of {', '.join(NAMESPACE_STATES)}, not {info.state!r}")
    if info.retention_ms < 60_000:
        raise ValueError("retention_ms must be at least 60000 (one minute)")
    if not 1 <= info.partitions <= 1000:
        raise ValueError("partitions must be between 1 and 1000")
    for name, text in (("description", info.description), ("owner_email", info.owner_email)):
        if len(text) > 1000:
            raise ValueError(f"{name} must be at most 1000 characters")
