"""Records written with an older schema version are read by the current one (BACKWARD compatibility).

There is no real second version of an engine schema yet, so these tests use a
test-only v1/v2 pair covering each allowed kind of change.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kronicle.schemas import AvroDecodeError, SchemaRegistry

from .helpers import record, write_folder

V1 = record(
    "Order",
    [
        {"name": "id", "type": "string"},
        {"name": "count", "type": "int"},
        {"name": "legacy", "type": "string", "default": "-"},
        {"name": "amount", "type": "float"},
        {"name": "customer", "type": "string"},
    ],
)
V2 = record(
    "Order",
    [
        {"name": "id", "type": "string"},
        {"name": "count", "type": "long"},  # widened by Avro promotion (int -> long)
        # "legacy" removed: it had a default
        {"name": "amount", "type": "double"},  # float -> double
        {"name": "client", "type": "string", "aliases": ["customer"]},  # renamed with an alias
        {"name": "note", "type": ["null", "string"], "default": None},  # added with a default
    ],
)
OLD = {"id": "o-1", "count": 3, "legacy": "x", "amount": 1.5, "customer": "ada"}
AS_V2 = {"id": "o-1", "count": 3, "amount": 1.5, "client": "ada", "note": None}


def test_a_v1_record_is_read_as_v2_after_the_schema_evolved() -> None:
    registry = SchemaRegistry()
    registry.register(V1, 1001, version=1)
    written_with_v1 = registry.encode("test.Order", OLD)
    registry.register(V2, 1002, version=2)

    assert registry.decode(written_with_v1) == ("test.Order", AS_V2)
    assert registry.decode_as(written_with_v1, "test.Order") == AS_V2


def test_encode_uses_the_latest_version() -> None:
    registry = SchemaRegistry()
    registry.register(V1, 1001, version=1)
    registry.register(V2, 1002, version=2)
    data = registry.encode("test.Order", AS_V2)
    assert int.from_bytes(data[1:5], "big") == 1002
    assert registry.decode(data) == ("test.Order", AS_V2)


def test_versions_registered_out_of_order_still_resolve_to_the_highest() -> None:
    registry = SchemaRegistry()
    registry.register(V2, 1002, version=2)
    registry.register(V1, 1001, version=1)
    assert registry.schema_id("test.Order") == 1002
    old = b"\x00" + (1001).to_bytes(4, "big") + _v1_body()
    assert registry.decode(old) == ("test.Order", AS_V2)


def test_evolution_through_files_keeps_the_old_file(tmp_path: Path) -> None:
    write_folder(tmp_path, [(V1, 101, 1, "Order.v1.avsc")])
    before = SchemaRegistry()
    before.load_dir(tmp_path)
    written_with_v1 = before.encode("test.Order", OLD)

    write_folder(tmp_path, [(V1, 101, 1, "Order.v1.avsc"), (V2, 102, 2, "Order.v2.avsc")])
    after = SchemaRegistry()
    after.load_dir(tmp_path)
    assert after.decode(written_with_v1) == ("test.Order", AS_V2)
    assert after.schema_text(101) == before.schema_text(101)


def test_an_incompatible_change_fails_to_read_old_records_with_a_clear_error() -> None:
    # Adding a field without a default is not BACKWARD compatible.
    broken = record("Order", [*V1["fields"], {"name": "required", "type": "int"}])
    registry = SchemaRegistry()
    registry.register(V1, 1001, version=1)
    written_with_v1 = registry.encode("test.Order", OLD)
    registry.register(broken, 1002, version=2)
    with pytest.raises(AvroDecodeError, match=r"test.Order v1 \(schema id 1001\)"):
        registry.decode(written_with_v1)


def _v1_body() -> bytes:
    registry = SchemaRegistry()
    registry.register(V1, 1, version=1)
    return registry.encode("test.Order", OLD)[5:]


def test_a_test_can_register_a_new_version_of_a_packaged_schema(tmp_path: Path) -> None:
    write_folder(tmp_path, [(V1, 101, 1, "Order.v1.avsc")])
    registry = SchemaRegistry()
    registry.load_dir(tmp_path)
    written_with_v1 = registry.encode("test.Order", OLD)
    registry.register(V2, 102, version=2)
    assert registry.decode(written_with_v1) == ("test.Order", AS_V2)
