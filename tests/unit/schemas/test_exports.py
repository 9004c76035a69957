"""The public surface of kronicle.schemas is locked."""

from __future__ import annotations

import kronicle.schemas


def test_exported_names() -> None:
    assert kronicle.schemas.__all__ == [
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
    assert kronicle.schemas.__all__ == sorted(kronicle.schemas.__all__)
    for name in kronicle.schemas.__all__:
        assert hasattr(kronicle.schemas, name)


def test_decode_errors_share_one_base() -> None:
    for cls in (
        kronicle.schemas.TruncatedRecordError,
        kronicle.schemas.BadMagicByteError,
        kronicle.schemas.UnknownSchemaIdError,
        kronicle.schemas.UnexpectedSchemaError,
        kronicle.schemas.AvroDecodeError,
    ):
        assert issubclass(cls, kronicle.schemas.SchemaDecodeError)
        assert issubclass(cls, kronicle.schemas.SchemaError)
