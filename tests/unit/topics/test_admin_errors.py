"""Admin failures are translated into TopicAdminError with a hint (no broker needed)."""

from __future__ import annotations

import socket

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from kronicle.topics import InvalidNameError, TopicAdminError, ensure_namespace_topics, verify_copartitioned
from kronicle.topics._admin import _admin_error


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_cluster_is_a_topic_admin_error_that_says_what_to_check() -> None:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{closed_port()}", "log_level": 0})
    with pytest.raises(TopicAdminError, match=r"bootstrap\.servers") as info:
        verify_copartitioned(admin, "ns", timeout=1.0)
    assert isinstance(info.value.__cause__, KafkaException)


def test_names_are_validated_before_talking_to_kafka() -> None:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{closed_port()}", "log_level": 0})
    with pytest.raises(InvalidNameError):
        ensure_namespace_topics(admin, "bad name", 3, timeout=1.0)


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, "grant this client's principal CREATE"),
        (KafkaError.INVALID_REPLICATION_FACTOR, "replication_factor=-1"),
        (KafkaError.POLICY_VIOLATION, "broker's message"),
    ],
)
def test_broker_refusals_get_a_hint(code: int, hint: str) -> None:
    error = _admin_error("creating topic t", KafkaException(KafkaError(code, "broker says no")))
    assert "creating topic t failed: broker says no" in str(error)
    assert hint in str(error)
