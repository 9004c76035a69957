"""The schema registry: ids, versions and the Confluent-framed Avro codec.

Every record Kronicle writes is ``0x00`` + a 4-byte big-endian schema id + the
Avro binary body (the Confluent wire format), so standard Kafka tooling can
decode it. Encoding always uses the subject's latest version; decoding reads
with the writer's version (from the id) and resolves to the latest version, so
a record written before a schema change is still read (backward compatibility).

This is on the per-command hot path: everything that can be prepared once
(parsed schemas, the 5-byte header, whether resolution is needed) is prepared
when a schema is added, and ``encode``/``decode`` are a dict lookup plus one
fastavro call.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.validation import ValidationError, validate

from kronicle.schemas._errors import (
    AvroDecodeError,
    BadMagicByteError,
    SchemaEncodeError,
    SchemaManifestError,
    TruncatedRecordError,
    UnexpectedSchemaError,
    UnknownSchemaIdError,
    UnknownSubjectError,
)
from kronicle.schemas._fastpath import SparseWriter, SplicedWriter, sparse_writer, spliced_writer
from kronicle.schemas._manifest import SchemaVersion, check_unique, read_schema_tree, record_full_name

__all__ = ["SchemaRegistry", "default_registry"]

_MAGIC = 0
_HEADER = struct.Struct(">bI")
_HEADER_SIZE = _HEADER.size

# What fastavro raises for a body that does not match its schema: running out of
# bytes (EOFError, IndexError past the end of a varint), bad UTF-8, a union index
# or enum symbol out of range, an impossible length, or a resolution failure.
_DECODE_ERRORS = (
    EOFError,
    IndexError,
    UnicodeDecodeError,
    ValueError,
    TypeError,
    KeyError,
    OverflowError,
    MemoryError,
    struct.error,
    SchemaResolutionError,
)
_ENCODE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError, struct.error)

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class _Writer:
    header: bytes
    parsed: Any
    version: SchemaVersion
    defaults: dict[str, Any]
    """Top-level field defaults of a record schema. fastavro writes a missing field about three times
    slower than a present one, and most records (history events above all) leave most fields out."""
    nested: dict[str, dict[str, Any]]
    """Field defaults of the records one level down (a record field, or a union of null and a record)."""
    sparse: SparseWriter | None
    """The group-by-group writer of a record with many optional record fields (``_fastpath``), if it has them."""
    checked: set[str] = dataclasses.field(default_factory=set)
    """Shapes (optional fields set, spliced fields) whose shortcut output was compared with fastavro's."""
    spliced: dict[str, SplicedWriter | None] = dataclasses.field(default_factory=dict)
    """Per array field: its spliced writer (None: not spliceable, or the check failed)."""


def _record_defaults(parsed: Any) -> dict[str, Any]:
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        return {}
    return {f["name"]: f["default"] for f in parsed.get("fields", ()) if "default" in f}


def _nested_defaults(parsed: Any) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        return nested
    for f in parsed.get("fields", ()):
        branches = f["type"] if isinstance(f["type"], list) else [f["type"]]
        records = [b for b in branches if isinstance(b, dict) and b.get("type") == "record"]
        if len(records) == 1 and (defaults := _record_defaults(records[0])):
            nested[f["name"]] = defaults
    return nested


@dataclasses.dataclass(frozen=True, slots=True)
class _Reader:
    subject: str
    writer: Any
    reader: Any | None
    """The latest version's parsed schema, or None when the writer is the latest (no resolution work)."""
    version: SchemaVersion


class SchemaRegistry:
    """Schemas by subject and id, with the Confluent-framed Avro codec.

    Build one with :meth:`load_dir` (or use :func:`default_registry` for
    Kronicle's own schemas); tests may :meth:`register` schemas directly.
    """

    def __init__(self) -> None:
        self._by_id: dict[int, SchemaVersion] = {}
        self._by_subject: dict[str, dict[int, SchemaVersion]] = {}
        self._parsed: dict[int, Any] = {}
        self._texts: dict[int, str] = {}
        self._writers: dict[str, _Writer] = {}
        self._readers: dict[int, _Reader] = {}
        self._plain: set[str] = set()
        """Subjects whose sparse shortcut disagreed with fastavro once: written by fastavro alone from then on."""

    # -- building ----------------------------------------------------------

    def load_dir(self, path: Path) -> None:
        """Add every schema under ``path`` (recursively), as declared by its ``ids.json`` manifests.

        Nothing is added unless the whole tree is consistent.

        Raises:
            SchemaManifestError: listing every problem (a file without an id, a
                file changed without a new version, an id used twice, a subject
                declared in two folders or already registered, ...).
        """
        self._add(read_schema_tree(Path(path)))

    def register(self, schema: dict[str, Any] | str, schema_id: int, version: int = 1) -> None:
        """Add one version of a record schema under an explicit id (for tests and tools).

        Args:
            schema: the record schema as a dict or JSON text.
            schema_id: the id to write in the record header; must be unused.
            version: the subject's version number; the highest one is the latest.

        Raises:
            SchemaManifestError: the schema is not a valid record schema, or the
                id or (subject, version) is already taken.
        """
        try:
            raw: Any = json.loads(schema) if isinstance(schema, str) else schema
        except ValueError as exc:
            raise SchemaManifestError([f"schema id {schema_id}: not valid JSON ({exc})"]) from exc
        if not isinstance(raw, dict) or raw.get("type") != "record":
            raise SchemaManifestError([f"schema id {schema_id}: must be an Avro record schema (type 'record')"])
        self._add([SchemaVersion(record_full_name(raw), version, schema_id, raw)])

    def _add(self, versions: list[SchemaVersion]) -> None:
        existing = [v for subject in self._by_subject.values() for v in subject.values()]
        problems = check_unique([*existing, *versions])
        parsed: dict[int, Any] = {}
        for v in versions:
            try:
                # One named-type namespace per version: two versions of a record
                # share a name and must not overwrite each other.
                parsed[v.schema_id] = parse_schema(v.schema, named_schemas={})
            except Exception as exc:  # noqa: BLE001 - fastavro raises several unrelated types for a bad schema
                problems.append(f"{v.subject} v{v.version} (id {v.schema_id}): not a valid Avro schema ({exc})")
        if problems:
            raise SchemaManifestError(problems)
        for v in versions:
            self._by_id[v.schema_id] = v
            self._by_subject.setdefault(v.subject, {})[v.version] = v
            self._parsed[v.schema_id] = parsed[v.schema_id]
            self._texts[v.schema_id] = json.dumps(v.schema, separators=(",", ":"))
        for subject in {v.subject for v in versions}:
            self._rebuild(subject)

    def _rebuild(self, subject: str) -> None:
        by_version = self._by_subject[subject]
        latest = by_version[max(by_version)]
        latest_parsed = self._parsed[latest.schema_id]
        self._writers[subject] = _Writer(
            _HEADER.pack(_MAGIC, latest.schema_id),
            latest_parsed,
            latest,
            _record_defaults(latest_parsed),
            _nested_defaults(latest_parsed),
            sparse_writer(latest_parsed),
        )
        for v in by_version.values():
            reader = None if v is latest else latest_parsed
            self._readers[v.schema_id] = _Reader(subject, self._parsed[v.schema_id], reader, v)

    # -- codec -------------------------------------------------------------

    def encode(self, name: str, datum: Any) -> bytes:
        """Encode ``datum`` with the latest version of subject ``name``, Confluent-framed.

        Raises:
            UnknownSubjectError: no schema is registered under ``name``.
            SchemaEncodeError: the datum does not fit the schema (the message
                names the field when it can).
        """
        writer = self._writers.get(name)
        if writer is None:
            raise self._unknown_subject(name)
        if writer.sparse is not None and type(datum) is dict and name not in self._plain:
            # Fills in the defaults of the one set attribute record itself; the nulls need none.
            data = self._encode_sparse(writer, writer.sparse, datum)
            if data is not None:
                return data
        if writer.defaults and type(datum) is dict:
            filled = {**writer.defaults, **datum}
            for field, value in datum.items():
                inner = writer.nested.get(field)
                if inner is not None and type(value) is dict:
                    filled[field] = {**inner, **value}
            datum = filled
        return _encode_plain(writer, datum)

    def _encode_sparse(self, writer: _Writer, sparse: SparseWriter, datum: dict[str, Any]) -> bytes | None:
        buf = io.BytesIO()
        buf.write(writer.header)
        try:
            shape = sparse.write(buf, datum)
        except _ENCODE_ERRORS:
            return None  # fastavro's own pass raises the error with its message
        data = buf.getvalue()
        if shape not in writer.checked:
            if data != _encode_plain(writer, datum):
                _log.warning("the sparse Avro writer of %s disagrees with fastavro; using fastavro", writer.version)
                self._plain.add(writer.version.subject)
                return None
            writer.checked.add(shape)
        return data

    def encode_with_items(self, name: str, datum: dict[str, Any], field: str, items: Sequence[bytes]) -> bytes:
        """Encode ``datum`` with its array ``field`` made of ``items``, records encoded already.

        The same bytes as :meth:`encode` with ``field`` set to the decoded items,
        without decoding and re-encoding them: ``items`` are Confluent-framed
        records of the array's item subject. An item framed with another schema
        id than that subject's latest (written before a schema change) is decoded
        and written again, so the result is always in the latest schemas.

        Raises:
            UnknownSubjectError: no schema is registered under ``name``.
            SchemaEncodeError: the datum does not fit the schema.
        """
        writer = self._writers.get(name)
        if writer is None:
            raise self._unknown_subject(name)
        if field not in writer.spliced:
            writer.spliced[field] = spliced_writer(writer.parsed, field)
        spliced = writer.spliced[field]
        item_writer = self._writers.get(spliced.item_subject) if spliced is not None else None
        if spliced is None or item_writer is None:
            return self.encode(name, {**datum, field: [self.decode(item)[1] for item in items]})
        header = item_writer.header
        bodies = [
            item[_HEADER_SIZE:] if item[:_HEADER_SIZE] == header else self._reencode(item, spliced.item_subject)
            for item in items
        ]
        filled = {**writer.defaults, **datum} if writer.defaults else datum
        buf = io.BytesIO()
        buf.write(writer.header)
        try:
            spliced.write(buf, filled, bodies)
        except _ENCODE_ERRORS:
            return self.encode(name, {**datum, field: [self.decode(item)[1] for item in items]})
        data = buf.getvalue()
        if field not in writer.checked:
            expected = self.encode(name, {**datum, field: [self.decode(item)[1] for item in items]})
            if data != expected:
                _log.warning("spliced Avro of %s.%s disagrees with fastavro; not splicing it", writer.version, field)
                writer.spliced[field] = None
                return expected
            writer.checked.add(field)
        return data

    def _reencode(self, item: bytes, subject: str) -> bytes:
        return self.encode(subject, self.decode_as(item, subject))[_HEADER_SIZE:]

    def decode(self, data: bytes) -> tuple[str, Any]:
        """Decode a Confluent-framed record into (subject, datum), resolved to the subject's latest version.

        Raises:
            SchemaDecodeError: one of its subclasses, with a message that says
                what is wrong (suitable as a dead-letter reason).
        """
        reader = self._reader_for(data)
        return reader.subject, _read(reader, data)

    def decode_as(self, data: bytes, name: str) -> Any:
        """Decode a record that must be of subject ``name``.

        Raises:
            UnexpectedSchemaError: the record is of another subject.
            SchemaDecodeError: as for :meth:`decode`.
        """
        reader = self._reader_for(data)
        if reader.subject != name:
            raise UnexpectedSchemaError(
                f"expected a {name} record but schema id {reader.version.schema_id} is"
                f" {reader.subject} v{reader.version.version}; the record was written to the wrong topic or key"
            )
        return _read(reader, data)

    def _reader_for(self, data: bytes) -> _Reader:
        if len(data) < _HEADER_SIZE:
            raise TruncatedRecordError(
                f"record is {len(data)} bytes; a Confluent-framed Avro record needs at least {_HEADER_SIZE}"
                " (magic byte 0 and a 4-byte schema id)"
            )
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            hint = " (it looks like JSON)" if data[:1] in (b"{", b"[") else ""
            raise BadMagicByteError(
                f"first byte is 0x{data[0]:02x}, expected 0x00: the record is not in the Confluent wire format{hint};"
                " produce it with a Kronicle or Confluent Avro serializer"
            )
        reader = self._readers.get(schema_id)
        if reader is None:
            raise UnknownSchemaIdError(
                f"unknown schema id {schema_id}: this registry knows ids {_id_ranges(self._readers)};"
                " the producer used a schema this build does not have (upgrade Kronicle, or check the producer)",
                schema_id,
            )
        return reader

    # -- lookups -----------------------------------------------------------

    def schema_id(self, name: str, version: int | None = None) -> int:
        """The id of subject ``name`` at ``version`` (default: the latest)."""
        by_version = self._by_subject.get(name)
        if by_version is None:
            raise self._unknown_subject(name)
        if version is None:
            return self._writers[name].version.schema_id
        try:
            return by_version[version].schema_id
        except KeyError:
            raise UnknownSubjectError(
                f"{name} has no version {version}; its versions are {sorted(by_version)}"
            ) from None

    def schema_text(self, schema_id: int) -> str:
        """The schema with this id as compact JSON text (as a Confluent Schema Registry serves it)."""
        try:
            return self._texts[schema_id]
        except KeyError:
            raise UnknownSchemaIdError(
                f"unknown schema id {schema_id}: this registry knows ids {_id_ranges(self._readers)}", schema_id
            ) from None

    def subjects(self) -> list[str]:
        """All subjects (record full names), sorted."""
        return sorted(self._by_subject)

    def versions(self, subject: str) -> list[int]:
        """The versions of ``subject``, ascending."""
        by_version = self._by_subject.get(subject)
        if by_version is None:
            raise self._unknown_subject(subject)
        return sorted(by_version)

    def _unknown_subject(self, name: str) -> UnknownSubjectError:
        known = ", ".join(self.subjects()) or "none"
        return UnknownSubjectError(
            f"no schema for {name!r} (known: {known}); add its .avsc and ids.json entry, or check the record name"
        )


def _encode_plain(writer: _Writer, datum: Any) -> bytes:
    buf = io.BytesIO()
    buf.write(writer.header)
    try:
        schemaless_writer(buf, writer.parsed, datum)
    except _ENCODE_ERRORS as exc:
        raise SchemaEncodeError(_explain_encode_error(writer, datum, exc)) from exc
    return buf.getvalue()


def _read(reader: _Reader, data: bytes) -> Any:
    buf = io.BytesIO(data)
    buf.seek(_HEADER_SIZE)
    try:
        datum = schemaless_reader(buf, reader.writer, reader.reader)
    except _DECODE_ERRORS as exc:
        v = reader.version
        raise AvroDecodeError(
            f"cannot decode {v.subject} v{v.version} (schema id {v.schema_id}) record of {len(data)} bytes:"
            f" {type(exc).__name__}: {exc}; the record is corrupt or was written with another schema under this id"
        ) from exc
    extra = len(data) - buf.tell()
    if extra:
        v = reader.version
        raise AvroDecodeError(
            f"{v.subject} v{v.version} (schema id {v.schema_id}) record has {extra} bytes left after the Avro body;"
            " the record is corrupt or was written with another schema under this id"
        )
    return datum


def _explain_encode_error(writer: _Writer, datum: Any, exc: Exception) -> str:
    v = writer.version
    head = f"cannot encode {v.subject} v{v.version} (schema id {v.schema_id})"
    # Only on the error path: fastavro's validator names the field and the bad value.
    try:
        validate(datum, writer.parsed, raise_errors=True)
    except ValidationError as verr:
        details = "; ".join(str(e) for e in verr.errors) or str(verr)
        return f"{head}: {details}"
    except Exception:  # noqa: BLE001 - the validator itself choked; fall back to fastavro's message
        pass
    return f"{head}: {type(exc).__name__}: {exc}"


def _id_ranges(ids: dict[int, Any]) -> str:
    if not ids:
        return "none"
    ordered = sorted(ids)
    runs: list[str] = []
    start = prev = ordered[0]
    for i in [*ordered[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(runs)


@functools.cache
def default_registry() -> SchemaRegistry:
    """The registry of Kronicle's own schemas (``kronicle/schemas/**``), loaded once.

    Raises:
        SchemaManifestError: the installed schema files are inconsistent.
    """
    registry = SchemaRegistry()
    registry.load_dir(Path(__file__).parent)
    return registry
