"""Kronicle's own schema files agree with their manifests, and the engine ids stay fixed."""

from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import pytest
from fastavro.utils import generate_many

import kronicle.schemas
from kronicle.schemas import SchemaRegistry, default_registry
from kronicle.schemas._manifest import read_schema_tree

PACKAGE_DIR = Path(kronicle.schemas.__file__).parent


def test_every_package_schema_file_has_an_id_and_matches_its_fingerprint() -> None:
    # read_schema_tree raises on: an .avsc without id, a file edited without a
    # new version, an id used twice, a subject in two folders, version gaps.
    versions = read_schema_tree(PACKAGE_DIR)
    listed = {v.source.resolve() for v in versions if v.source}
    assert listed == {p.resolve() for p in PACKAGE_DIR.rglob("*.avsc")}


def test_engine_schema_ids_are_pinned() -> None:
    # The state engine hand-encodes ChangelogKey with id 1: these must never move.
    registry = default_registry()
    assert registry.schema_id("kronicle.ChangelogKey", 1) == 1
    assert registry.schema_id("kronicle.TimerFired", 1) == 2


def test_engine_ids_are_below_100_and_workflow_ids_are_100_or_more() -> None:
    for v in read_schema_tree(PACKAGE_DIR):
        assert v.source is not None
        if v.source.parent.resolve() == PACKAGE_DIR.resolve():
            assert 1 <= v.schema_id <= 99, f"{v.subject} v{v.version}: engine schemas use ids 1-99"
        else:
            assert v.schema_id >= 100, f"{v.subject} v{v.version}: workflow schemas use ids 100+"


def test_default_registry_is_cached() -> None:
    assert default_registry() is default_registry()


def test_every_old_version_is_readable_by_the_latest() -> None:
    registry = SchemaRegistry()
    registry.load_dir(PACKAGE_DIR)
    for v in read_schema_tree(PACKAGE_DIR):
        for datum in generate_many(v.schema, 20):
            buf = io.BytesIO()
            buf.write(b"\x00" + v.schema_id.to_bytes(4, "big"))
            fastavro.schemaless_writer(buf, fastavro.parse_schema(v.schema, named_schemas={}), datum)
            subject, _ = registry.decode(buf.getvalue())
            assert subject == v.subject


@pytest.mark.parametrize(
    ("cf", "key"),
    [("state", b"wf-1"), ("", b""), ("h\u00e9llo", bytes(range(200)))],
)
def test_changelog_key_layout_matches_the_hand_encoding(cf: str, key: bytes) -> None:
    # Documents the bytes the state engine writes by hand for speed.
    def varint(n: int) -> bytes:
        z = (n << 1) ^ (n >> 63)
        out = bytearray()
        while z > 0x7F:
            out.append((z & 0x7F) | 0x80)
            z >>= 7
        out.append(z)
        return bytes(out)

    cf_bytes = cf.encode()
    expected = b"\x00\x00\x00\x00\x01" + varint(len(cf_bytes)) + cf_bytes + varint(len(key)) + key
    assert default_registry().encode("kronicle.ChangelogKey", {"cf": cf, "key": key}) == expected


def test_the_state_stores_hand_written_changelog_key_matches_the_registry() -> None:
    # kronicle.state.changelog encodes ChangelogKey by hand with its own copy of
    # the schema; both must stay the same wire format under the same id.
    from kronicle.schemas import fingerprint
    from kronicle.state.changelog import CHANGELOG_KEY_SCHEMA, CHANGELOG_KEY_SCHEMA_ID, encode_changelog_key

    registry = default_registry()
    assert registry.schema_id("kronicle.ChangelogKey") == CHANGELOG_KEY_SCHEMA_ID
    assert fingerprint(CHANGELOG_KEY_SCHEMA) == fingerprint(json.loads(registry.schema_text(CHANGELOG_KEY_SCHEMA_ID)))
    data = encode_changelog_key("timers", b"\x00\x01due")
    assert registry.decode(data) == ("kronicle.ChangelogKey", {"cf": "timers", "key": b"\x00\x01due"})
