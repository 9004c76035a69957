"""Small helpers for tests that talk to a real broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, Message
from confluent_kafka.admin import AdminClient, NewTopic


def create_topics(
    bootstrap: str,
    partitions_by_topic: Mapping[str, int],
    *,
    replication_factor: int = -1,
    config: Mapping[str, str] | None = None,
) -> None:
    """Create topics and wait until every one is created (-1 = broker default RF)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(t, n, replication_factor, config=dict(config or {})) for t, n in partitions_by_topic.items()],
        operation_timeout=30,
    )
    for future in futures.values():
        future.result(timeout=60)


def consumer(bootstrap: str, *, read_committed: bool = True, **extra: Any) -> Consumer:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": f"test-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed" if read_committed else "read_uncommitted",
    }
    conf.update(extra)
    return Consumer(conf)


def drain(
    bootstrap: str, topic: str, *, expect: int | None = None, timeout: float = 20.0, read_committed: bool = True
) -> list[Message]:
    """Read a topic from the start until ``expect`` records arrived, or until it is quiet for 2 s."""
    c = consumer(bootstrap, read_committed=read_committed)
    c.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None:
                if expect is None and out and time.monotonic() - quiet_since > 2.0:
                    break
                continue
            if msg.error():
                continue
            out.append(msg)
            quiet_since = time.monotonic()
            if expect is not None and len(out) >= expect:
                break
    finally:
        c.close()
    return out
