"""The schema error tree.

::

    SchemaError
    ├── SchemaManifestError      an ids.json / .avsc set that must not load
    ├── UnknownSubjectError      a record name this registry has no schema for
    ├── SchemaEncodeError        a datum that does not fit its schema
    └── SchemaDecodeError        bytes that cannot be decoded (the engine dead-letters these)
        ├── TruncatedRecordError     shorter than the 5-byte Confluent header
        ├── BadMagicByteError        first byte is not 0
        ├── UnknownSchemaIdError     the 4-byte id is not in this registry
        ├── UnexpectedSchemaError    decode_as() got another record type
        └── AvroDecodeError          the Avro body does not match the writer's schema
"""

from __future__ import annotations

__all__ = [
    "AvroDecodeError",
    "BadMagicByteError",
    "SchemaDecodeError",
    "SchemaEncodeError",
    "SchemaError",
    "SchemaManifestError",
    "TruncatedRecordError",
    "UnexpectedSchemaError",
    "UnknownSchemaIdError",
    "UnknownSubjectError",
]


class SchemaError(Exception):
    """Base of every error raised by :mod:`kronicle.schemas`."""


class SchemaManifestError(SchemaError):
    """A schema folder is inconsistent (missing id, edited file, reused id, ...).

    ``problems`` lists every problem found, so one run shows them all.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            "schema manifest check failed:\n  - "
            + "\n  - ".join(self.problems)
            + "\n(see docs/schemas.md: every change is a new version with a new id; old files are never edited)"
        )


class UnknownSubjectError(SchemaError):
    """A record name (subject) that the registry has no schema for."""


class SchemaEncodeError(SchemaError):
    """A datum does not fit the schema it is encoded with."""


class SchemaDecodeError(SchemaError):
    """Bytes that cannot be decoded into a record; ``str(exc)`` says why."""


class TruncatedRecordError(SchemaDecodeError):
    """The record is shorter than the 5-byte Confluent header."""


class BadMagicByteError(SchemaDecodeError):
    """The record's first byte is not the Confluent magic byte 0."""


class UnknownSchemaIdError(SchemaDecodeError):
    """The schema id in the record's header is not known to this registry."""

    def __init__(self, message: str, schema_id: int) -> None:
        super().__init__(message)
        self.schema_id = schema_id


class UnexpectedSchemaError(SchemaDecodeError):
    """``decode_as`` found a record of another type than the one asked for."""


class AvroDecodeError(SchemaDecodeError):
    """The Avro body does not decode with the writer's schema (corrupt or mislabelled)."""
