"""partition_for equals the Java client's default partitioner: toPositive(murmur2(key)) % n."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kronicle.topics import partition_for

# From Kafka's clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java
# (testMurmur2): the signed 32-bit hash Utils.murmur2 returns.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def reference_murmur2(data: bytes) -> int:
    """Kafka's Utils.murmur2 written out in Python (signed 32-bit result), as an independent check."""
    m, r, mask = 0x5BD1E995, 24, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for i in range(length // 4):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    tail = length & ~3
    rest = length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: bytes, n: int) -> int:
    return (reference_murmur2(key) & 0x7FFFFFFF) % n


def test_reference_implementation_matches_kafkas_java_vectors() -> None:
    for key, expected in JAVA_MURMUR2.items():
        assert reference_murmur2(key) == expected


@pytest.mark.parametrize("key", list(JAVA_MURMUR2))
@pytest.mark.parametrize("n", [1, 2, 3, 7, 12, 100, 2**31 - 1])
def test_partition_for_matches_java_vectors(key: bytes, n: int) -> None:
    assert partition_for(key, n) == (JAVA_MURMUR2[key] & 0x7FFFFFFF) % n


@given(key=st.binary(max_size=100), n=st.integers(min_value=1, max_value=10_000))
def test_partition_for_matches_the_reference_for_any_key(key: bytes, n: int) -> None:
    assert partition_for(key, n) == java_partition(key, n)


def test_bytes_like_keys_are_accepted() -> None:
    assert partition_for(bytearray(b"abc"), 12) == partition_for(b"abc", 12)
    assert partition_for(memoryview(b"abc"), 12) == partition_for(b"abc", 12)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="encode it"):
        partition_for("abc", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        partition_for(b"abc", 0)
