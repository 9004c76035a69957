"""Avro schemas (``*.avsc``) and their Confluent-framed encoding.

Kronicle's records are Avro, framed in the Confluent wire format (magic byte 0,
a 4-byte big-endian schema id, the Avro binary body), with one subject per
record full name (RecordNameStrategy). Schema files and the ``ids.json``
manifests that pin their ids live next to this module; see ``docs/schemas.md``
for how ids are assigned and how a schema may evolve.

Typical use::

    from kronicle.schemas import default_registry

    registry = default_registry()
    data = registry.encode("kronicle.TimerFired", {"key": b"wf", "timer_id": b"t", "due_ms": 0, "payload": b""})
    subject, datum = registry.decode(data)
"""

from __future__ import annotations

from kronicle.schemas._errors import (
    AvroDecodeError,
    BadMagicByteError,
    SchemaDecodeError,
    SchemaEncodeError,
    SchemaError,
    SchemaManifestError,
    TruncatedRecordError,
    UnexpectedSchemaError,
    UnknownSchemaIdError,
    UnknownSubjectError,
)
from kronicle.schemas._manifest import SchemaVersion, fingerprint, manifest_entry
from kronicle.schemas._registry import SchemaRegistry, default_registry

__all__ = [
    "AvroDecodeError",
    "BadMagicByteError",
    "SchemaDecodeError",
    "SchemaEncodeError",
    "SchemaError",
    "SchemaManifestError",
    "SchemaRegistry",
    "SchemaVersion",
    "TruncatedRecordError",
    "UnexpectedSchemaError",
    "UnknownSchemaIdError",
    "UnknownSubjectError",
    "default_registry",
    "fingerprint",
    "manifest_entry",
]
