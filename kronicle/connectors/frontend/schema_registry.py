"""A read-only, Confluent-compatible Schema Registry over Kronicle's own schemas.

Every record Kronicle writes is framed in the Confluent wire format (magic byte
0, a 4-byte schema id, the Avro body), and the ids are pinned in the
``ids.json`` manifests (``docs/schemas.md``). Serving the read side of the
Confluent Schema Registry REST API for those ids lets stock tooling — the
``confluent_kafka.schema_registry`` serializers and deserializers, kcat
``-s value=avro``, Kafka Connect, ksqlDB — decode every Kronicle topic and
produce commands, pointed at the frontend (``http://<frontend>:7333``).

Subjects (``docs/kafka-ingress.md`` explains the choice):

- **Record-name subjects** (RecordNameStrategy): one per record full name,
  ``kronicle.workflow.StartWorkflow``, with the versions of ``ids.json``.
  Compatibility BACKWARD, as ``docs/schemas.md`` requires.
- **Topic subjects** (TopicNameStrategy, the serializers' default) of the
  served namespace: ``kronicle.<ns>.history-value`` (HistoryEventBatch),
  ``kronicle.<ns>.visibility-value`` (VisibilityRecord), and
  ``kronicle.<ns>.commands-value``, which holds every version of every
  command type, ordered by schema id (compatibility NONE, since one topic
  carries several record types). A new id only ever appends a version, so
  version numbers never change.

Nothing can be registered: ``POST /subjects/{s}/versions`` answers the
existing id when the schema is already there (what a serializer with
``auto.register.schemas=True`` needs) and error 42205 otherwise. Schemas are
matched by their Parsing Canonical Form, which is what the wire format depends
on, so a copy with other whitespace, docs or defaults finds its id.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web
from fastavro import parse_schema

from kronicle.schemas import SchemaRegistry, fingerprint
from kronicle.topics import NamespaceTopics

__all__ = [
    "COMMAND_SUBJECTS",
    "CONTENT_TYPE",
    "SchemaRegistryApi",
    "add_schema_registry_routes",
    "schema_registry_openapi_paths",
]

_log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
"""The content type of every answer, as the Confluent Schema Registry sends it."""

COMMAND_SUBJECTS: tuple[str, ...] = (
    "kronicle.TimerFired",
    "kronicle.workflow.StartWorkflow",
    "kronicle.workflow.SignalWorkflow",
    "kronicle.workflow.SignalWithStartWorkflow",
    "kronicle.workflow.RequestCancelWorkflow",
    "kronicle.workflow.TerminateWorkflow",
    "kronicle.workflow.UpdateWorkflow",
    "kronicle.workflow.QueryWorkflow",
    "kronicle.workflow.CompleteWorkflowTask",
    "kronicle.workflow.FailWorkflowTask",
    "kronicle.workflow.CompleteActivityTask",
    "kronicle.workflow.FailActivityTask",
    "kronicle.workflow.HeartbeatActivityTask",
    "kronicle.workflow.ReportActivityTaskCanceled",
    "kronicle.workflow.ChildWorkflowResult",
    "kronicle.workflow.ExternalCommandResult",
)
"""The record types the engine reads from ``kronicle.<ns>.commands`` (a unit test keeps this in step with it)."""

_TOPIC_SUBJECTS: dict[str, tuple[str, ...]] = {
    "commands": COMMAND_SUBJECTS,
    "history": ("kronicle.workflow.HistoryEventBatch",),
    "visibility": ("kronicle.workflow.VisibilityRecord",),
}
_MAX_BODY = 1024 * 1024  # Confluent Cloud's own limit for one schema
_MAX_ID = 2**31 - 1
_INT = re.compile(r"[0-9]{1,10}")
_READ_ONLY = (
    "Kronicle's schema registry is read-only: its schemas ship with Kronicle and are pinned in ids.json"
    " (see docs/schemas.md); produce records with the schemas it serves (GET /subjects/{subject}/versions/latest)"
)

_Handler = Callable[[web.Request], Awaitable[web.Response]]


class _RegistryError(Exception):
    """An error answered in Confluent's shape: ``{"error_code": 40403, "message": ...}``."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


class _Subject:
    __slots__ = ("compatibility", "ids", "records")

    def __init__(self, ids: list[int], compatibility: str, records: tuple[str, ...]) -> None:
        self.ids = ids
        """Schema id of version n at index n - 1."""
        self.compatibility = compatibility
        self.records = records
        """The record full names this subject holds."""


def _answer(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":")), status=status, content_type=CONTENT_TYPE, charset="utf-8"
    )


def _guard(handler: _Handler) -> _Handler:
    # Every answer, errors included, is in Confluent's shape: clients read error_code from the body.
    async def guarded(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except _RegistryError as err:
            return _answer({"error_code": err.error_code, "message": err.message}, err.status)
        except Exception:  # noqa: BLE001 - the boundary: a bug is a logged 500, never a crash
            _log.exception("unexpected error in %s %s", request.method, request.path)
            return _answer({"error_code": 50001, "message": "internal error; the frontend's log has the details"}, 500)

    guarded.__doc__ = handler.__doc__
    return guarded


class SchemaRegistryApi:
    """The registry endpoints over one :class:`~kronicle.schemas.SchemaRegistry`.

    Args:
        registry: The schemas to serve (``engine.registry``).
        namespaces: Namespaces whose topic subjects (``kronicle.<ns>.commands-value``, ...) are served.
    """

    def __init__(self, registry: SchemaRegistry, namespaces: Iterable[str]) -> None:
        self._registry = registry
        self._texts: dict[int, str] = {}
        self._fingerprints: dict[int, str] = {}
        self._subjects: dict[str, _Subject] = {}
        for name in registry.subjects():
            ids = [registry.schema_id(name, v) for v in registry.versions(name)]
            self._subjects[name] = _Subject(ids, "BACKWARD", (name,))
            for schema_id in ids:
                text = registry.schema_text(schema_id)
                self._texts[schema_id] = text
                self._fingerprints[schema_id] = fingerprint(json.loads(text))
        for ns in namespaces:
            topics = NamespaceTopics(ns)
            for kind, records in _TOPIC_SUBJECTS.items():
                known = tuple(r for r in records if r in self._subjects)
                ids = sorted(i for r in known for i in self._subjects[r].ids)
                if ids:
                    compatibility = "BACKWARD" if len(known) == 1 else "NONE"
                    self._subjects[f"{topics.prefix}.{kind}-value"] = _Subject(ids, compatibility, known)

    # -- lookups ---------------------------------------------------------------------------------

    def subjects(self) -> list[str]:
        """Every subject served, sorted."""
        return sorted(self._subjects)

    def _subject(self, request: web.Request) -> tuple[str, _Subject]:
        name = request.match_info["subject"]
        subject = self._subjects.get(name)
        if subject is None:
            raise _RegistryError(
                404, 40401, f"Subject '{name[:200]}' not found. Subjects are the record names (GET /subjects)"
            )
        return name, subject

    def _version(self, request: web.Request, subject: _Subject) -> int:
        raw = request.match_info["version"]
        if raw in ("latest", "-1"):
            return len(subject.ids)
        if not _INT.fullmatch(raw) or not 1 <= int(raw) <= _MAX_ID:
            raise _RegistryError(
                422,
                42202,
                f"The specified version '{raw[:50]}' is not a valid version id. Allowed values are between"
                f' [1, {_MAX_ID}] and the string "latest"',
            )
        version = int(raw)
        if version > len(subject.ids):
            raise _RegistryError(404, 40402, f"Version {version} not found. The subject has 1 to {len(subject.ids)}")
        return version

    def _schema_id(self, request: web.Request) -> int:
        raw = request.match_info["id"]
        schema_id = int(raw) if _INT.fullmatch(raw) else -1
        if schema_id not in self._texts:
            raise _RegistryError(
                404,
                40403,
                f"Schema {raw[:50]} not found. GET /subjects/{{subject}}/versions/latest gives a subject's current id",
            )
        return schema_id

    def _usages(self, schema_id: int) -> list[tuple[str, int]]:
        return [
            (name, i + 1)
            for name, subject in sorted(self._subjects.items())
            for i, sid in enumerate(subject.ids)
            if sid == schema_id
        ]

    # -- schemas -----------------------------------------------------------------------------------

    async def schema_types(self, request: web.Request) -> web.Response:
        """GET /schemas/types."""
        return _answer(["AVRO"])

    async def schema_by_id(self, request: web.Request) -> web.Response:
        """GET /schemas/ids/{id}: ``{"schema": "<the schema as JSON text>"}``."""
        return _answer({"schema": self._texts[self._schema_id(request)]})

    async def raw_schema_by_id(self, request: web.Request) -> web.Response:
        """GET /schemas/ids/{id}/schema: the schema itself."""
        return web.Response(text=self._texts[self._schema_id(request)], content_type=CONTENT_TYPE, charset="utf-8")

    async def subjects_by_id(self, request: web.Request) -> web.Response:
        """GET /schemas/ids/{id}/subjects."""
        return _answer(sorted({name for name, _ in self._usages(self._schema_id(request))}))

    async def versions_by_id(self, request: web.Request) -> web.Response:
        """GET /schemas/ids/{id}/versions: every (subject, version) holding the id."""
        return _answer([{"subject": s, "version": v} for s, v in self._usages(self._schema_id(request))])

    # -- subjects ----------------------------------------------------------------------------------

    async def list_subjects(self, request: web.Request) -> web.Response:
        """GET /subjects (``subjectPrefix`` filters; nothing is ever deleted)."""
        if request.query.get("deletedOnly", "").lower() == "true":
            return _answer([])
        prefix = request.query.get("subjectPrefix", "")
        return _answer([s for s in self.subjects() if s.startswith(prefix)])

    async def list_versions(self, request: web.Request) -> web.Response:
        """GET /subjects/{subject}/versions."""
        _, subject = self._subject(request)
        return _answer(list(range(1, len(subject.ids) + 1)))

    async def get_version(self, request: web.Request) -> web.Response:
        """GET /subjects/{subject}/versions/{version}; ``latest`` (or -1) is the newest."""
        name, subject = self._subject(request)
        version = self._version(request, subject)
        schema_id = subject.ids[version - 1]
        return _answer({"subject": name, "version": version, "id": schema_id, "schema": self._texts[schema_id]})

    async def get_version_schema(self, request: web.Request) -> web.Response:
        """GET /subjects/{subject}/versions/{version}/schema: the schema itself."""
        _, subject = self._subject(request)
        schema_id = subject.ids[self._version(request, subject) - 1]
        return web.Response(text=self._texts[schema_id], content_type=CONTENT_TYPE, charset="utf-8")

    async def lookup(self, request: web.Request) -> web.Response:
        """POST /subjects/{subject}: the id and version of a schema under the subject."""
        name, subject = self._subject(request)
        version = self._find(subject, await _posted_fingerprint(request))
        if version is None:
            raise _RegistryError(
                404,
                40403,
                f"Schema not found under subject '{name}'. Fetch the schema to use with"
                f" GET /subjects/{name}/versions/latest",
            )
        schema_id = subject.ids[version - 1]
        return _answer({"subject": name, "version": version, "id": schema_id, "schema": self._texts[schema_id]})

    async def register(self, request: web.Request) -> web.Response:
        """POST /subjects/{subject}/versions: the existing id of a known schema; 42205 for a new one."""
        name, subject = self._subject(request)
        version = self._find(subject, await _posted_fingerprint(request))
        if version is None:
            raise _RegistryError(422, 42205, f"Subject '{name}' is in read-only mode. {_READ_ONLY}")
        schema_id = subject.ids[version - 1]
        return _answer({"id": schema_id, "subject": name, "version": version, "schema": self._texts[schema_id]})

    def _find(self, subject: _Subject, wanted: str) -> int | None:
        # The latest version with that canonical form: versions that differ only in docs or
        # defaults encode identically, and the latest is what Kronicle itself writes.
        for version in range(len(subject.ids), 0, -1):
            if self._fingerprints[subject.ids[version - 1]] == wanted:
                return version
        return None

    # -- config and mode ---------------------------------------------------------------------------

    async def global_config(self, request: web.Request) -> web.Response:
        """GET /config."""
        return _answer({"compatibilityLevel": "BACKWARD"})

    async def subject_config(self, request: web.Request) -> web.Response:
        """GET /config/{subject}: BACKWARD, or NONE for a topic subject holding several record types."""
        _, subject = self._subject(request)
        return _answer({"compatibilityLevel": subject.compatibility})

    async def mode(self, request: web.Request) -> web.Response:
        """GET /mode."""
        return _answer({"mode": "READONLY"})

    async def read_only(self, request: web.Request) -> web.Response:
        """PUT /config, PUT /mode, DELETE /subjects/...: refused, the registry is read-only."""
        raise _RegistryError(422, 42205, f"Operation not permitted. {_READ_ONLY}")


async def _posted_fingerprint(request: web.Request) -> str:
    """The Parsing Canonical Form fingerprint of the schema in a POST body ``{"schema": "..."}``."""
    raw = b""
    try:
        while len(raw) <= _MAX_BODY:
            chunk = await request.content.read(_MAX_BODY + 1 - len(raw))
            if not chunk:
                break
            raw += chunk
    except (ValueError, OSError) as err:
        raise _RegistryError(400, 400, f"cannot read the request body: {err}") from err
    if len(raw) > _MAX_BODY:
        raise _RegistryError(413, 413, f"request body over {_MAX_BODY} bytes; one schema is far smaller")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise _RegistryError(400, 400, f"body is not UTF-8 JSON: {str(err)[:200]}") from err
    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
        raise _RegistryError(422, 42201, 'Invalid schema: the body must be {"schema": "<schema JSON text>"}')
    schema_type = body.get("schemaType", "AVRO")
    if schema_type != "AVRO":
        raise _RegistryError(422, 42201, f"Invalid schema: schemaType {str(schema_type)[:50]!r}; only AVRO is served")
    if body.get("references"):
        raise _RegistryError(
            422, 42201, "Invalid schema: references are not supported; Kronicle's schemas are self-contained"
        )
    try:
        schema = json.loads(body["schema"])
        parse_schema(schema, named_schemas={})
        return fingerprint(schema)
    except Exception as err:  # fastavro raises many unrelated types for a bad schema; it is re-raised
        raise _RegistryError(422, 42201, f"Invalid schema: {type(err).__name__}: {str(err)[:200]}") from err


_ROUTES: tuple[tuple[str, str, str, str], ...] = (
    # (method, path, handler, summary)
    ("GET", "/schemas/types", "schema_types", "The schema types served: AVRO."),
    ("GET", "/schemas/ids/{id}", "schema_by_id", "The schema with this id, as JSON text."),
    ("GET", "/schemas/ids/{id}/schema", "raw_schema_by_id", "The schema with this id."),
    ("GET", "/schemas/ids/{id}/subjects", "subjects_by_id", "The subjects holding this id."),
    ("GET", "/schemas/ids/{id}/versions", "versions_by_id", "The subject versions holding this id."),
    ("GET", "/subjects", "list_subjects", "Every subject."),
    ("POST", "/subjects/{subject}", "lookup", "The id and version of a schema under the subject."),
    ("DELETE", "/subjects/{subject}", "read_only", "Refused (42205): read-only."),
    ("GET", "/subjects/{subject}/versions", "list_versions", "The versions of a subject."),
    ("POST", "/subjects/{subject}/versions", "register", "The id of an already known schema; 42205 otherwise."),
    ("GET", "/subjects/{subject}/versions/{version}", "get_version", "One version (or latest) of a subject."),
    ("DELETE", "/subjects/{subject}/versions/{version}", "read_only", "Refused (42205): read-only."),
    ("GET", "/subjects/{subject}/versions/{version}/schema", "get_version_schema", "One version's schema itself."),
    ("GET", "/config", "global_config", "The global compatibility level."),
    ("PUT", "/config", "read_only", "Refused (42205): read-only."),
    ("GET", "/config/{subject}", "subject_config", "A subject's compatibility level."),
    ("PUT", "/config/{subject}", "read_only", "Refused (42205): read-only."),
    ("GET", "/mode", "mode", "READONLY."),
    ("PUT", "/mode", "read_only", "Refused (42205): read-only."),
)


def add_schema_registry_routes(app: web.Application, registry: SchemaRegistry, namespaces: Iterable[str]) -> None:
    """Route the Confluent-compatible registry endpoints (``/schemas/...``, ``/subjects/...``, ...) on ``app``.

    Args:
        app: The frontend's application.
        registry: The schemas to serve.
        namespaces: Namespaces whose topic subjects are served.
    """
    api = SchemaRegistryApi(registry, namespaces)
    for method, path, handler, _ in _ROUTES:
        app.router.add_route(method, path, _guard(getattr(api, handler)))


def schema_registry_openapi_paths() -> dict[str, Any]:
    """The OpenAPI 3.0 path items of the registry endpoints (merged into the frontend's document)."""
    error = {
        "description": 'Confluent error {"error_code", "message"}',
        "content": {
            CONTENT_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["error_code", "message"],
                    "properties": {"error_code": {"type": "integer"}, "message": {"type": "string"}},
                }
            }
        },
    }
    body = {
        "required": True,
        "content": {
            ct: {
                "schema": {
                    "type": "object",
                    "required": ["schema"],
                    "properties": {"schema": {"type": "string"}, "schemaType": {"type": "string"}},
                }
            }
            for ct in (CONTENT_TYPE, "application/json")
        },
    }
    paths: dict[str, Any] = {}
    for method, path, handler, summary in _ROUTES:
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", path)
        ]
        words = "".join(w.title() for w in re.findall(r"\w+", path))
        op: dict[str, Any] = {
            "operationId": f"schemaRegistry{method.title()}{words}",
            "summary": summary,
            "tags": ["schema registry"],
            "responses": {
                "200": {"description": "ok", "content": {CONTENT_TYPE: {"schema": {}}}},
                "4XX": error,
            },
        }
        if params:
            op["parameters"] = params
        if method == "POST":
            op["requestBody"] = body
        if handler == "read_only":
            op["responses"] = {"422": error, "4XX": error}
        paths.setdefault(path, {})[method.lower()] = op
    return paths
