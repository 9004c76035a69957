"""Key-to-partition placement identical to the Java client's default partitioner."""

from __future__ import annotations

from confluent_kafka import murmur2 as _murmur2

__all__ = ["partition_for"]


def partition_for(key: bytes, partitions: int) -> int:
    """The partition the Java producer's default partitioner picks for ``key``.

    That is ``toPositive(murmur2(key)) % partitions``, the same placement as
    librdkafka's ``murmur2_random`` partitioner (and so Go/kcat producers
    configured with it), which is what lets any producer put a record on the
    partition that owns its workflow.

    Args:
        key: the serialized record key (e.g. the UTF-8 workflow id).
        partitions: the topic's partition count, > 0.

    Raises:
        ValueError: ``partitions`` is not positive.
        TypeError: ``key`` is not bytes-like.
    """
    # confluent_kafka.murmur2(key, n) already applies toPositive (& 0x7fffffff)
    # and the modulo; tests check it against Kafka's own Java vectors.
    if type(key) is not bytes:
        if not isinstance(key, (bytes, bytearray, memoryview)):
            raise TypeError(f"partition key must be bytes, not {type(key).__name__}; encode it (e.g. id.encode())")
        key = bytes(key)
    if partitions <= 0:
        raise ValueError(f"partition count must be positive, got {partitions}")
    return int(_murmur2(key, partitions))
