"""Helpers to build schema folders on disk for manifest tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kronicle.schemas import manifest_entry


def record(name: str, fields: list[dict[str, Any]], namespace: str | None = "test", **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "record", "name": name, "fields": fields, **extra}
    if namespace:
        schema["namespace"] = namespace
    return schema


def write_folder(folder: Path, schemas: list[tuple[dict[str, Any], int, int, str]]) -> Path:
    """Write (schema, id, version, file name) tuples and a matching ids.json; returns the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, list[dict[str, Any]]] = {}
    for schema, schema_id, version, file in schemas:
        path = folder / file
        path.write_text(json.dumps(schema, indent=2), encoding="utf-8")
        subject = f"{schema['namespace']}.{schema['name']}" if schema.get("namespace") else schema["name"]
        manifest.setdefault(subject, []).append(manifest_entry(path, schema_id, version))
    ids = folder / "ids.json"
    ids.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return ids
