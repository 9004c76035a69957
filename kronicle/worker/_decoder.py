"""A faster decoder for the records a worker reads (workflow and activity tasks).

fastavro spends about a microsecond on every union it reads, and a history
event is 42 ``["null", attributes]`` unions of which one is set: decoding a
workflow task took ~45 µs per event, the largest single cost of a workflow in
the worker. :class:`TaskDecoder` compiles each writer schema once into plain
Python readers, with a shortcut for a null union branch (one zero byte), which
decodes the same bytes to the same datum several times faster.

It is a shortcut, never the authority: it is used only for a record written
with the subject's latest schema (no resolution), only for schemas made of the
types it knows (no logical types), and the first records of every schema id
are also decoded by the registry and compared; any disagreement, error or
leftover byte falls back to the registry for good (or for that record), which
raises the registry's own errors.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Mapping
from typing import Any

from kronicle.schemas import SchemaRegistry

__all__ = ["TaskDecoder", "compile_reader"]

_log = logging.getLogger("kronicle.worker")

Reader = Callable[[bytes, int], tuple[Any, int]]
"""``(buffer, position) -> (value, next position)``."""

_HEADER = struct.Struct(">bI")
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")
_CHECKED = 20
"""Records per schema id decoded both ways before the shortcut is trusted alone."""


class UnsupportedSchemaError(ValueError):
    """The schema uses a feature the compiled readers do not implement (the registry decodes it)."""


def _long(buf: bytes, pos: int) -> tuple[int, int]:
    b = buf[pos]
    pos += 1
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos
    n = b & 0x7F
    shift = 7
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7


def _null(buf: bytes, pos: int) -> tuple[None, int]:
    return None, pos


def _boolean(buf: bytes, pos: int) -> tuple[bool, int]:
    return buf[pos] == 1, pos + 1


def _double(buf: bytes, pos: int) -> tuple[float, int]:
    return _DOUBLE.unpack_from(buf, pos)[0], pos + 8


def _float(buf: bytes, pos: int) -> tuple[float, int]:
    return _FLOAT.unpack_from(buf, pos)[0], pos + 4


def _bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = _long(buf, pos)
    end = pos + n
    if n < 0 or end > len(buf):
        raise ValueError("bytes run past the record")
    return buf[pos:end], end


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    n, pos = _long(buf, pos)
    end = pos + n
    if n < 0 or end > len(buf):
        raise ValueError("string runs past the record")
    return buf[pos:end].decode("utf-8"), end


_PRIMITIVES: dict[str, Reader] = {
    "null": _null,
    "boolean": _boolean,
    "int": _long,
    "long": _long,
    "float": _float,
    "double": _double,
    "bytes": _bytes,
    "string": _string,
}


def compile_reader(schema: Any, named: Mapping[str, Any] | None = None) -> Reader:
    """A reader for ``schema`` (a fastavro-parsed schema; named types are looked up in ``named``).

    Raises:
        UnsupportedSchemaError: the schema uses logical types, fixed or another feature not compiled here.
    """
    names = dict(named or {})
    if isinstance(schema, dict):
        names.update(schema.get("__named_schemas") or {})
    compiled: dict[str, Reader] = {}
    return _compile(schema, names, compiled)


def _compile(schema: Any, named: Mapping[str, Any], compiled: dict[str, Reader]) -> Reader:
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _PRIMITIVES[schema]
        if schema in compiled:
            return compiled[schema]
        if schema not in named:
            raise UnsupportedSchemaError(f"unknown named type {schema!r}")
        return _compile(named[schema], named, compiled)
    if isinstance(schema, list):
        return _union([_compile(branch, named, compiled) for branch in schema], schema)
    if not isinstance(schema, dict):
        raise UnsupportedSchemaError(f"unexpected schema {schema!r}")
    if "logicalType" in schema:
        raise UnsupportedSchemaError(f"logical type {schema['logicalType']!r}")
    kind = schema.get("type")
    if kind in {"record", "error"}:
        return _record(schema, named, compiled)
    if kind == "enum":
        symbols = tuple(schema["symbols"])

        def read_enum(buf: bytes, pos: int) -> tuple[str, int]:
            index, pos = _long(buf, pos)
            if index < 0:
                raise ValueError("negative enum index")
            return symbols[index], pos

        return read_enum
    if kind == "array":
        return _array(_compile(schema["items"], named, compiled))
    if kind == "map":
        return _map(_compile(schema["values"], named, compiled))
    if isinstance(kind, str) and kind in _PRIMITIVES and len(schema) == 1:
        return _PRIMITIVES[kind]
    if isinstance(kind, (dict, list)):
        return _compile(kind, named, compiled)
    raise UnsupportedSchemaError(f"type {kind!r}")


def _record(schema: Mapping[str, Any], named: Mapping[str, Any], compiled: dict[str, Reader]) -> Reader:
    # (name, reader, optional): an optional field's null (a single zero byte) is read in the loop,
    # without a call; most of a history event's fields are that.
    fields: list[tuple[str, Reader, bool]] = []

    def read_record(buf: bytes, pos: int) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        for name, reader, optional in fields:
            if optional and buf[pos] == 0:
                out[name] = None
                pos += 1
            else:
                out[name], pos = reader(buf, pos)
        return out, pos

    # Registered before its fields compile, so a recursive type refers to this very reader.
    compiled[str(schema["name"])] = read_record
    for field in schema["fields"]:
        kind = field["type"]
        optional = isinstance(kind, list) and len(kind) == 2 and kind[0] == "null"
        fields.append((str(field["name"]), _compile(kind, named, compiled), optional))
    return read_record


def _union(branches: list[Reader], schema: list[Any]) -> Reader:
    if len(branches) == 2 and schema[0] == "null":
        value_reader = branches[1]

        def read_optional(buf: bytes, pos: int) -> tuple[Any, int]:
            # Index 0 (null) is the single byte 0: the common case costs one comparison.
            if buf[pos] == 0:
                return None, pos + 1
            index, pos = _long(buf, pos)
            if index != 1:
                raise ValueError(f"union index {index} out of range")
            return value_reader(buf, pos)

        return read_optional
    options = tuple(branches)

    def read_union(buf: bytes, pos: int) -> tuple[Any, int]:
        index, pos = _long(buf, pos)
        if index < 0:
            raise ValueError("negative union index")
        return options[index](buf, pos)

    return read_union


def _array(items: Reader) -> Reader:
    def read_array(buf: bytes, pos: int) -> tuple[list[Any], int]:
        out: list[Any] = []
        while True:
            count, pos = _long(buf, pos)
            if count == 0:
                return out, pos
            if count < 0:
                count = -count
                _, pos = _long(buf, pos)  # the block's size in bytes
            for _ in range(count):
                item, pos = items(buf, pos)
                out.append(item)

    return read_array


def _map(values: Reader) -> Reader:
    def read_map(buf: bytes, pos: int) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        while True:
            count, pos = _long(buf, pos)
            if count == 0:
                return out, pos
            if count < 0:
                count = -count
                _, pos = _long(buf, pos)
            for _ in range(count):
                key, pos = _string(buf, pos)
                out[key], pos = values(buf, pos)

    return read_map


class TaskDecoder:
    """Decodes Confluent-framed records like :meth:`SchemaRegistry.decode`, faster (see the module docstring).

    Args:
        registry: The registry whose schemas (and errors) are the reference.
    """

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._readers: dict[int, tuple[str, Reader] | None] = {}
        self._unchecked: dict[int, int] = {}

    def decode(self, data: bytes) -> tuple[str, Any]:
        """``(subject, datum)`` of a framed record.

        Raises:
            SchemaDecodeError: as :meth:`SchemaRegistry.decode` does (it decodes whatever is not plain).
        """
        if len(data) > 5:
            magic, schema_id = _HEADER.unpack_from(data)
            entry = None
            if magic == 0:
                entry = self._readers[schema_id] if schema_id in self._readers else self._prepare(schema_id)
            if entry is not None:
                try:
                    datum, end = entry[1](data, 5)
                except Exception:  # noqa: BLE001 - the registry decodes it again and names the problem
                    return self._registry.decode(data)
                if end == len(data):
                    if self._unchecked.get(schema_id):
                        return self._check(schema_id, data, entry[0], datum)
                    return entry[0], datum
        return self._registry.decode(data)

    def _prepare(self, schema_id: int) -> tuple[str, Reader] | None:
        entry: tuple[str, Reader] | None = None
        reader = self._registry._readers.get(schema_id)
        if reader is not None and reader.reader is None:  # written with the latest version: no resolution
            try:
                entry = (reader.subject, compile_reader(reader.writer))
            except UnsupportedSchemaError as err:
                _log.debug("Schema id %d (%s) is decoded by the registry: %s", schema_id, reader.subject, err)
        self._readers[schema_id] = entry
        self._unchecked[schema_id] = _CHECKED
        return entry

    def _check(self, schema_id: int, data: bytes, subject: str, datum: Any) -> tuple[str, Any]:
        reference = self._registry.decode(data)
        if reference != (subject, datum):
            _log.warning(
                "The compiled decoder disagrees with fastavro on schema id %d (%s); using fastavro for it",
                schema_id,
                subject,
            )
            self._readers[schema_id] = None
            return reference
        self._unchecked[schema_id] -= 1
        return reference
