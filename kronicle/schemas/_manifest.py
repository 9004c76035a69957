"""Schema folders: ``*.avsc`` files plus an ``ids.json`` manifest that pins their ids.

A manifest maps each subject (a record's full name) to its versions::

    {
      "kronicle.TimerFired": [
        {"version": 1, "id": 2, "file": "TimerFired.v1.avsc",
         "fingerprint": "sha256:…", "source_sha256": "…"}
      ]
    }

``fingerprint`` is the SHA-256 of the schema's Parsing Canonical Form (what the
wire format depends on); ``source_sha256`` is the SHA-256 of the whole schema
as normalised JSON, so edits the canonical form ignores (a default, an alias, a
doc) are caught too. Both are checked at load time: a file that changed without
a new version does not load.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from kronicle.schemas._errors import SchemaManifestError

__all__ = [
    "MANIFEST_NAME",
    "SchemaVersion",
    "fingerprint",
    "manifest_entry",
    "read_schema_tree",
    "record_full_name",
    "source_sha256",
]

MANIFEST_NAME = "ids.json"
_MAX_ID = 2**31 - 1  # the Confluent header carries a signed 32-bit id
_FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.avsc$")


@dataclasses.dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One version of one subject, as declared by a manifest (or registered by a test)."""

    subject: str
    """The record's full name, e.g. ``kronicle.TimerFired`` (RecordNameStrategy)."""
    version: int
    """1, 2, ... in the order the schema evolved."""
    schema_id: int
    """The id written in the Confluent header of every record encoded with this version."""
    schema: dict[str, Any]
    """The schema as JSON (defaults, docs and aliases included)."""
    source: Path | None = None
    """The ``.avsc`` file it came from, if any."""


def record_full_name(schema: dict[str, Any]) -> str:
    """The full name of a record schema (``namespace.name``, or ``name`` if it already has a dot)."""
    name = str(schema.get("name", ""))
    namespace = schema.get("namespace")
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def fingerprint(schema: dict[str, Any]) -> str:
    """``sha256:<hex>`` of the schema's Parsing Canonical Form."""
    pcf = to_parsing_canonical_form(schema)
    return "sha256:" + hashlib.sha256(pcf.encode()).hexdigest()


def source_sha256(schema: dict[str, Any]) -> str:
    """SHA-256 of the whole schema as normalised JSON (key order and whitespace do not matter)."""
    return hashlib.sha256(json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def manifest_entry(path: Path, schema_id: int, version: int) -> dict[str, Any]:
    """The ``ids.json`` entry for a schema file (what ``python -m kronicle.schemas entry`` prints)."""
    schema = json.loads(path.read_text(encoding="utf-8"))
    return {
        "version": version,
        "id": schema_id,
        "file": path.name,
        "fingerprint": fingerprint(schema),
        "source_sha256": source_sha256(schema),
    }


def read_schema_tree(root: Path) -> list[SchemaVersion]:
    """Read every manifest under ``root`` (recursively) and check it against its files.

    Raises:
        SchemaManifestError: listing every problem found (a file without an id,
            a file changed without a new version, an id or subject declared
            twice, a gap in the versions, a schema that does not parse...).
    """
    if not root.is_dir():
        raise SchemaManifestError([f"{root} is not a directory"])
    problems: list[str] = []
    versions: list[SchemaVersion] = []
    manifests = sorted(root.rglob(MANIFEST_NAME))
    folders = {m.parent for m in manifests}
    listed: set[Path] = set()
    for manifest in manifests:
        versions.extend(_read_manifest(manifest, listed, problems))
    for avsc in sorted(root.rglob("*.avsc")):
        if avsc.parent not in folders:
            problems.append(f"{avsc}: folder has no {MANIFEST_NAME}; add one that gives this schema an id")
        elif avsc.resolve() not in listed:
            problems.append(f"{avsc}: has no id; add it to {avsc.parent / MANIFEST_NAME} as a new subject or version")
    problems.extend(check_unique(versions))
    if problems:
        raise SchemaManifestError(problems)
    return versions


def check_unique(versions: Iterable[SchemaVersion]) -> list[str]:
    """Problems with ids or (subject, version) pairs declared more than once."""
    problems: list[str] = []
    by_id: dict[int, SchemaVersion] = {}
    by_subject_version: dict[tuple[str, int], SchemaVersion] = {}
    folder_of_subject: dict[str, Path] = {}
    for v in versions:
        where = v.source or "<registered>"
        other = by_id.get(v.schema_id)
        if other is not None:
            problems.append(
                f"id {v.schema_id} is used twice: {other.subject} v{other.version} ({other.source or '<registered>'})"
                f" and {v.subject} v{v.version} ({where}); ids are never reused, give the new one a fresh id"
            )
        by_id.setdefault(v.schema_id, v)
        key = (v.subject, v.version)
        if key in by_subject_version:
            problems.append(
                f"{v.subject} v{v.version} is declared twice ({by_subject_version[key].source} and {where})"
            )
        by_subject_version.setdefault(key, v)
        if v.source is None:
            continue  # registered by a test or tool: belongs to no folder
        folder = v.source.parent
        if folder_of_subject.setdefault(v.subject, folder) != folder:
            problems.append(
                f"subject {v.subject} is declared in two folders ({folder_of_subject[v.subject]} and {folder});"
                " keep all versions of a subject in one ids.json"
            )
    return problems


def _read_manifest(manifest: Path, listed: set[Path], problems: list[str]) -> list[SchemaVersion]:
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"{manifest}: cannot read it as JSON ({exc})")
        return []
    if not isinstance(data, dict):
        problems.append(f"{manifest}: must be a JSON object mapping each subject to a list of versions")
        return []
    out: list[SchemaVersion] = []
    for subject, entries in sorted(data.items()):
        if not isinstance(entries, list) or not entries:
            problems.append(f"{manifest}: {subject} must map to a non-empty list of versions")
            continue
        found: list[int] = []
        for entry in entries:
            version = _read_entry(manifest, subject, entry, listed, problems)
            if version is not None:
                out.append(version)
                found.append(version.version)
        if found and sorted(found) != list(range(1, len(found) + 1)):
            problems.append(f"{manifest}: {subject} versions are {sorted(found)}; they must be 1, 2, ... without gaps")
    return out


def _read_entry(
    manifest: Path, subject: str, entry: Any, listed: set[Path], problems: list[str]
) -> SchemaVersion | None:
    where = f"{manifest}: {subject}"
    if not isinstance(entry, dict):
        problems.append(
            f"{where}: each version must be an object with version, id, file, fingerprint and source_sha256"
        )
        return None
    fields: dict[str, Any] = entry
    version: Any = fields.get("version")
    schema_id: Any = fields.get("id")
    file: Any = fields.get("file")
    fp: Any = fields.get("fingerprint")
    src: Any = fields.get("source_sha256")
    bad = [
        msg
        for ok, msg in (
            (_is_int(version) and version >= 1, "version must be an integer >= 1"),
            (_is_int(schema_id) and 1 <= schema_id <= _MAX_ID, f"id must be an integer in 1..{_MAX_ID}"),
            (isinstance(file, str) and _FILE_NAME.match(file), "file must be an .avsc file name in the same folder"),
            (isinstance(fp, str) and fp.startswith("sha256:"), "fingerprint must be 'sha256:<hex>'"),
            (isinstance(src, str), "source_sha256 must be the hex SHA-256 of the normalised schema JSON"),
        )
        if not ok
    ]
    if bad:
        problems.append(f"{where} {entry!r}: " + "; ".join(bad))
        return None
    where = f"{where} v{version} (id {schema_id})"
    path = manifest.parent / file
    listed.add(path.resolve())
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"{where}: cannot read {path} as JSON ({exc})")
        return None
    if not isinstance(schema, dict) or schema.get("type") != "record":
        problems.append(f"{where}: {path} must hold one Avro record schema (a JSON object with type 'record')")
        return None
    if record_full_name(schema) != subject:
        problems.append(f"{where}: {path} defines {record_full_name(schema)!r}, not {subject!r}")
        return None
    try:
        parse_schema(schema, named_schemas={})
    except Exception as exc:  # noqa: BLE001 - fastavro raises several unrelated types for a bad schema
        problems.append(f"{where}: {path} is not a valid Avro schema ({type(exc).__name__}: {exc})")
        return None
    if fingerprint(schema) != fp:
        problems.append(
            f"{where}: {path} changed since it was given this id (fingerprint {fingerprint(schema)}, manifest {fp});"
            " restore the file and add the change as a new version with a new id and a new file"
        )
        return None
    if src != source_sha256(schema):
        problems.append(
            f"{where}: {path} was edited (a default, alias or doc changed) since it was given this id;"
            " restore the file and add the change as a new version with a new id and a new file"
        )
        return None
    return SchemaVersion(subject, version, schema_id, schema, path)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
