"""load_dir refuses schema folders that would break stable ids, and says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kronicle.schemas import SchemaManifestError, SchemaRegistry

from .helpers import record, write_folder

A1 = record("A", [{"name": "x", "type": "int"}])
A2 = record("A", [{"name": "x", "type": "long"}, {"name": "y", "type": "string", "default": ""}])
B1 = record("B", [{"name": "s", "type": "string"}])


def load_problems(root: Path) -> str:
    registry = SchemaRegistry()
    with pytest.raises(SchemaManifestError) as info:
        registry.load_dir(root)
    assert registry.subjects() == [], "a failed load must not add anything"
    return str(info.value)


def test_a_consistent_tree_loads_recursively(tmp_path: Path) -> None:
    write_folder(tmp_path, [(A1, 1, 1, "A.v1.avsc"), (A2, 3, 2, "A.v2.avsc")])
    write_folder(tmp_path / "sub", [(B1, 100, 1, "B.v1.avsc")])
    registry = SchemaRegistry()
    registry.load_dir(tmp_path)
    assert registry.subjects() == ["test.A", "test.B"]
    assert registry.versions("test.A") == [1, 2]
    assert registry.schema_id("test.A") == 3
    assert registry.schema_id("test.A", 1) == 1
    assert registry.schema_id("test.B") == 100


def test_an_avsc_without_an_id_is_refused(tmp_path: Path) -> None:
    write_folder(tmp_path, [(A1, 1, 1, "A.v1.avsc")])
    (tmp_path / "B.v1.avsc").write_text(json.dumps(B1))
    assert "B.v1.avsc: has no id" in load_problems(tmp_path)


def test_an_avsc_in_a_folder_without_manifest_is_refused(tmp_path: Path) -> None:
    write_folder(tmp_path, [(A1, 1, 1, "A.v1.avsc")])
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "B.v1.avsc").write_text(json.dumps(B1))
    assert "folder has no ids.json" in load_problems(tmp_path)


def test_a_schema_changed_without_a_new_version_is_refused(tmp_path: Path) -> None:
    write_folder(tmp_path, [(A1, 1, 1, "A.v1.avsc")])
    changed = record("A", [{"name": "x", "type": "long"}])
    (tmp_path / "A.v1.avsc").write_text(json.dumps(changed))
    message = load_problems(tmp_path)
    assert "test.A v1 (id 1)" in message
    assert "changed since it was given this id" in message


def test_a_changed_default_is_refused_even_though_the_canonical_form_ignores_it(tmp_path: Path) -> None:
    write_folder(tmp_path, [(A2, 1, 1, "A.v1.avsc")])
    edited = record("A", [{"name": "x", "type": "long"}, {"name": "y", "type": "string", "default": "other"}])
    (tmp_path / "A.v1.avsc").write_text(json.dumps(edited))
    assert "was edited" in load_problems(tmp_path)


def test_reformatting_a_schema_file_is_not_a_change(tmp_path: Path) -> None:
    write_folder(tmp_path, [(A1, 1, 1, "A.v1.avsc")])
    (tmp_path / "A.v1.avsc").write_text(json.dumps(A1, indent=8, sort_keys=True))
    SchemaRegistry().load_dir(tmp_path)


def test_a_reused_id_is_refused(tmp_path: Path) -> None:
    write_folder(tmp_path, [(A1, 7, 1, "A.v1.avsc"), (B1, 7, 1, "B.v1.avsc")])
    assert "id 7 is used twice" in load_problems(tmp_path)


def test_an_id_reused_across_folders_is_refused(tmp_path: Path) -> None:
    write_folder(tmp_path, [(A1, 7, 1, "A.v1.avsc")])
    write_folder(tmp_path / "workflow", [(B1, 7, 1, "B.v1.avsc")])
    assert "id 7 is used twice" in load_problems(tmp_path)


def test_a_subject_declared_in_two_folders_is_refused(tmp_path: Path) -> None:
    write_folder(tmp_path, [(A1, 1, 1, "A.v1.avsc")])
    write_folder(tmp_path / "workflow", [(A2, 100, 2, "A.v2.avsc")])
    assert "subject test.A is declared in two folders" in load_problems(tmp_path)


def test_a_gap_in_versions_is_refused(tmp_path: Path) -> None:
    write_folder(tmp_path, [(A1, 1, 1, "A.v1.avsc"), (A2, 2, 3, "A.v3.avsc")])
    assert "without gaps" in load_problems(tmp_path)


def test_a_file_defining_another_record_is_refused(tmp_path: Path) -> None:
    ids = write_folder(tmp_path, [(A1, 1, 1, "A.v1.avsc")])
    manifest = json.loads(ids.read_text())
    ids.write_text(json.dumps({"test.Other": manifest["test.A"]}))
    assert "defines 'test.A', not 'test.Other'" in load_problems(tmp_path)


def test_an_entry_missing_fields_is_refused(tmp_path: Path) -> None:
    write_folder(tmp_path, [(A1, 1, 1, "A.v1.avsc")])
    (tmp_path / "ids.json").write_text(json.dumps({"test.A": [{"version": 1, "file": "A.v1.avsc"}]}))
    message = load_problems(tmp_path)
    assert "id must be an integer" in message
    assert "fingerprint must be" in message


def test_an_invalid_avro_schema_is_refused(tmp_path: Path) -> None:
    bad = record("A", [{"name": "x", "type": "no.such.Type"}])
    write_folder(tmp_path, [(A1, 1, 1, "A.v1.avsc")])
    (tmp_path / "A.v1.avsc").write_text(json.dumps(bad))
    assert "not a valid Avro schema" in load_problems(tmp_path)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    write_folder(tmp_path, [(A1, 7, 1, "A.v1.avsc"), (B1, 7, 1, "B.v1.avsc")])
    (tmp_path / "C.avsc").write_text(json.dumps(record("C", [])))
    registry = SchemaRegistry()
    with pytest.raises(SchemaManifestError) as info:
        registry.load_dir(tmp_path)
    assert len(info.value.problems) == 2


def test_loading_ids_already_registered_is_refused(tmp_path: Path) -> None:
    write_folder(tmp_path, [(A1, 1, 1, "A.v1.avsc")])
    registry = SchemaRegistry()
    registry.register(B1, 1)
    with pytest.raises(SchemaManifestError, match="id 1 is used twice"):
        registry.load_dir(tmp_path)
    assert registry.subjects() == ["test.B"]


def test_register_refuses_a_non_record_schema() -> None:
    with pytest.raises(SchemaManifestError, match="record schema"):
        SchemaRegistry().register({"type": "string"}, 5)
    with pytest.raises(SchemaManifestError, match="not valid JSON"):
        SchemaRegistry().register("{nope", 5)


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaManifestError, match="not a directory"):
        SchemaRegistry().load_dir(tmp_path / "missing")
