"""The key format of ``kronicle.<ns>.state-changelog``.

A changelog record's key names the column family and the key a state write
touched; its value is the raw value bytes, or None (a tombstone) for a delete.
The key is the Confluent wire format (magic byte 0, 4-byte big-endian schema
id) followed by the Avro binary encoding of::

    {"type": "record", "name": "ChangelogKey", "namespace": "kronicle",
     "fields": [{"name": "cf", "type": "string"}, {"name": "key", "type": "bytes"}]}

so that standard Kafka tooling (a schema-registry-aware deserializer pointed at
the frontend) can decode it. The codec is written by hand rather than through
fastavro because it runs once per state write; ``tests/unit/state`` proves it
byte-identical to fastavro's ``schemaless_writer``.
"""

from __future__ import annotations

import functools
import struct
from typing import Any, Final

__all__ = [
    "CHANGELOG_KEY_SCHEMA",
    "CHANGELOG_KEY_SCHEMA_ID",
    "decode_changelog_key",
    "encode_changelog_key",
]

CHANGELOG_KEY_SCHEMA_ID: Final = 1
"""Schema id of ``kronicle.ChangelogKey`` (the schema registry uses the same id)."""

CHANGELOG_KEY_SCHEMA: Final[dict[str, Any]] = {
    "type": "record",
    "name": "ChangelogKey",
    "namespace": "kronicle",
    "doc": "Key of a record in kronicle.<ns>.state-changelog: which state entry it changes.",
    "fields": [
        {"name": "cf", "type": "string", "doc": "Column family of the state entry."},
        {"name": "key", "type": "bytes", "doc": "Key of the state entry within the column family."},
    ],
}
"""The Avro schema the key is encoded with (a dict, as fastavro's ``parse_schema`` takes it)."""

_HEADER: Final = b"\x00" + struct.pack(">I", CHANGELOG_KEY_SCHEMA_ID)
_HEADER_LEN: Final = len(_HEADER)
# An Avro long is at most 64 bits: 10 varint bytes of 7 bits each.
_MAX_VARINT_BYTES: Final = 10


def _zigzag_varint(n: int) -> bytes:
    """Avro's encoding of a long: zigzag, then little-endian base-128 varint."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


# Lengths below 64 (zigzag below 128) are one byte; precomputing them keeps the
# common case (short keys) to a table lookup.
_SMALL_LENGTHS: Final = tuple(bytes([n << 1]) for n in range(64))


@functools.lru_cache(maxsize=256)
def _prefix(cf: str) -> bytes:
    # There are only a handful of column families, so their encoded form
    # (header + cf length + cf bytes) is computed once per name.
    raw = cf.encode("utf-8")
    return _HEADER + _length(len(raw)) + raw


def _length(n: int) -> bytes:
    return _SMALL_LENGTHS[n] if n < 64 else _zigzag_varint(n)


def encode_changelog_key(cf: str, key: bytes) -> bytes:
    """Encode the changelog record key for the state entry ``(cf, key)``.

    Args:
        cf: Column family name.
        key: Key within the column family.

    Returns:
        The Confluent-framed Avro encoding of ``{"cf": cf, "key": key}``.
    """
    return _prefix(cf) + _length(len(key)) + key


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    """Decode one zigzag varint at ``pos``; returns (value, position after it)."""
    shift = 0
    z = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise ValueError(f"changelog key is truncated inside a length at byte {pos + i}")
        b = data[pos + i]
        z |= (b & 0x7F) << shift
        if not b & 0x80:
            return (z >> 1) ^ -(z & 1), pos + i + 1
        shift += 7
    raise ValueError(f"changelog key has an over-long varint at byte {pos}")


def _read_bytes(data: bytes, pos: int, field: str) -> tuple[bytes, int]:
    n, pos = _read_long(data, pos)
    if n < 0:
        raise ValueError(f"changelog key field {field!r} has a negative length {n}")
    end = pos + n
    if end > len(data):
        raise ValueError(f"changelog key field {field!r} needs {n} bytes but only {len(data) - pos} remain")
    return data[pos:end], end


def decode_changelog_key(data: bytes) -> tuple[str, bytes]:
    """Decode a changelog record key into ``(cf, key)``.

    Args:
        data: The record key as read from the changelog topic.

    Returns:
        The column family and the key within it.

    Raises:
        ValueError: ``data`` is not a ChangelogKey in the Confluent wire format
            with schema id 1 (the message says which part is wrong). A record
            like that was not written by Kronicle's engine: check what else
            produces to the changelog topic.
    """
    # Fast path for the common shape (both lengths under 64, so one varint byte
    # each); restore decodes every changelog record, so this is its hot loop.
    if len(data) > _HEADER_LEN + 1 and data.startswith(_HEADER):
        n = data[_HEADER_LEN]
        if not n & 0x81:
            cf_end = _HEADER_LEN + 1 + (n >> 1)
            if cf_end < len(data):
                m = data[cf_end]
                if not m & 0x81 and cf_end + 1 + (m >> 1) == len(data):
                    cf = _CF_NAMES.get(data[_HEADER_LEN + 1 : cf_end])
                    if cf is not None:
                        return cf, data[cf_end + 1 :]
    cf, key = _decode(data)
    if len(_CF_NAMES) < _CF_NAMES_MAX:
        _CF_NAMES[cf.encode("utf-8")] = cf
    return cf, key


# Column family names seen so far, by their UTF-8 bytes (there are only a few).
_CF_NAMES: dict[bytes, str] = {}
_CF_NAMES_MAX: Final = 256


def _decode(data: bytes) -> tuple[str, bytes]:
    if len(data) < _HEADER_LEN:
        raise ValueError(f"changelog key is {len(data)} bytes, shorter than the 5-byte Confluent header")
    if data[0] != 0:
        raise ValueError(f"changelog key starts with magic byte {data[0]}, expected 0 (Confluent wire format)")
    if data[:_HEADER_LEN] != _HEADER:
        (schema_id,) = struct.unpack_from(">I", data, 1)
        raise ValueError(f"changelog key has schema id {schema_id}, expected {CHANGELOG_KEY_SCHEMA_ID}")
    raw_cf, pos = _read_bytes(data, _HEADER_LEN, "cf")
    key, pos = _read_bytes(data, pos, "key")
    if pos != len(data):
        raise ValueError(f"changelog key has {len(data) - pos} unexpected trailing bytes")
    try:
        cf = raw_cf.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"changelog key field 'cf' is not valid UTF-8: {exc}") from exc
    return cf, key
