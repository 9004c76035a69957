"""Fuzzing every endpoint: random bodies, paths and parameters never produce a 5xx.

Two fuzzers. A home-grown one with a fixed seed (reproducible, no server to
configure) mixes the documented field names with values of every JSON type,
odd strings (lone surrogates, NUL, very long), huge numbers, nesting, and raw
non-JSON bytes. Then schemathesis generates requests from
``/api/v1/openapi.json`` itself (its ``examples``, ``coverage`` and
``fuzzing`` phases, positive and negative data) and checks that none is
answered with a server error. The schema registry endpoints answer errors in
Confluent's shape (``{"error_code", "message"}``), every other path in the
frontend's (``{"code", "message", "details"}``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from kronicle.connectors.frontend import Frontend, openapi_document
from kronicle.engine.service import EngineService

pytestmark = pytest.mark.asyncio(loop_scope="module")

SEEN: dict[int, int] = {}
# cron_schedule is left out: any random value is (rightly) rejected, which would keep fuzzed starts from ever
# succeeding with this seed; the engine's cron parser is fuzzed in tests/unit/engine/workflow/test_cron.py.
_FIELDS = sorted(
    {name for schema in openapi_document()["components"]["schemas"].values() for name in schema.get("properties", {})}
    - {"cron_schedule"}
)
_STRINGS = ["", "x", "\u0000", "\ud800", "é" * 3, "a" * 2000, "../..", "ALLOW_DUPLICATE", "USE_EXISTING", "true"]


def value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2**63, -(2**70), 7])
    if kind == 3:
        return rng.choice([0.5, -1e308, 1e308])
    if kind in (4, 5):
        return rng.choice(_STRINGS)
    if kind == 6:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return {"metadata": {rng.choice(_STRINGS): rng.choice(["", "eA==", "!!"])}, "data": rng.choice(["", "eA==", 5])}
    return {rng.choice(_FIELDS + _STRINGS): value(rng, depth + 1) for _ in range(rng.randrange(4))}


def body(rng: random.Random, url_path: str) -> bytes:
    roll = rng.random()
    if roll < 0.1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
    if roll < 0.2:
        return json.dumps(value(rng)).encode()
    obj = {name: value(rng) for name in rng.sample(_FIELDS, rng.randrange(len(_FIELDS)))}
    if rng.random() < 0.5:  # often a nearly valid start, so deeper checks run too
        obj.update(workflow_id=f"fz-{rng.randrange(10**6)}", workflow_type="Fuzz", task_queue="fuzz")
    if "/query/" in url_path or "/update/" in url_path:
        obj["timeout_ms"] = 200  # nobody answers fuzz workflows: do not wait the default 10-20 s
    if url_path.endswith("/namespaces"):
        obj["name"] = rng.choice(["", "a b", "x" * 300, 5, None])  # no new namespaces (and topics) from fuzzing
    return json.dumps(obj).encode()


def path(rng: random.Random, engine: EngineService) -> tuple[str, str]:
    templates = [
        (method, p) for p, ops in openapi_document()["paths"].items() for method in ops if method != "parameters"
    ]
    registry = [t for t in templates if not t[1].startswith("/api/")]
    api = [t for t in templates if t[1].startswith("/api/")]
    # Starts are weighted up, so the fuzz also reaches the success paths behind a valid start;
    # otherwise mostly the workflow API, sometimes the schema registry.
    start = ("post", "/api/v1/namespaces/{ns}/workflows")
    method, template = start if rng.random() < 0.15 else rng.choice(registry if rng.random() < 0.25 else api)
    segment = quote(rng.choice(["wf", "é", "a b", "%00", "x" * 1500, "fz-1", "1", "-1", "latest"]), safe="")
    filled = template.replace("{ns}", rng.choice([engine.namespace, engine.namespace, "nope"]))
    subject = rng.choice(["kronicle.workflow.StartWorkflow", f"kronicle.{engine.namespace}.commands-value", segment])
    filled = filled.replace("{subject}", quote(subject, safe=""))
    for name in ("workflow_id", "signal_name", "query_name", "update_name", "update_id", "id", "version"):
        filled = filled.replace("{" + name + "}", segment)
    return method.upper(), filled


def error_keys(url_path: str) -> set[str]:
    registry = url_path.startswith(("/schemas", "/subjects", "/config", "/mode"))
    return {"error_code", "message"} if registry else {"code", "message", "details"}


async def test_no_request_makes_the_frontend_fail(frontend: Frontend, engine: EngineService) -> None:
    rng = random.Random(20261125)
    params_pool = ["first_event_id", "max_events", "wait", "run_id"]
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            method, url_path = path(rng, engine)
            params = {
                p: str(rng.choice(["1", "-5", "x", "nan", "0.1", "99999999999999999999", ""]))
                for p in rng.sample(params_pool, rng.randrange(3))
            }
            if "wait" in params:
                params["wait"] = "0.05"  # keep long polls short
            data = body(rng, url_path) if method in ("POST", "PUT", "PATCH") else None
            async with session.request(method, frontend.url + url_path, data=data, params=params) as resp:
                text = await resp.text()
                SEEN[resp.status] = SEEN.get(resp.status, 0) + 1
                assert resp.status < 500 or resp.status in (501, 503, 504), (method, url_path, params, data, text)
                if resp.status >= 400:
                    assert set(json.loads(text)) == error_keys(url_path), text
    # The run reached both the handlers' success paths and their validation, not just 404s.
    assert SEEN.get(400) and SEEN.get(201) and SEEN.get(200), SEEN
    async with aiohttp.ClientSession() as session, session.get(frontend.url + "/readyz") as resp:
        assert resp.status == 200  # still serving after all that


def schemathesis_document(engine: EngineService) -> dict[str, Any]:
    """The served OpenAPI document, narrowed so that a run fits in about a minute.

    Long polls are limited to ``wait`` of at most 0.05 s (a generated ``true`` would hold a request
    for 60 s), and operations documented as answering 501 (not built yet) are left out.
    """
    doc = openapi_document()
    for item in doc["paths"].values():
        for key, op in list(item.items()):
            if isinstance(op, dict) and "501" in op.get("responses", {}):
                del item[key]
                continue
            for param in [*item.get("parameters", []), *(op.get("parameters", []) if isinstance(op, dict) else [])]:
                if isinstance(param, dict) and param.get("name") == "wait":
                    param["schema"] = {"type": "string", "enum": ["0", "false", "0.05"]}
    doc["paths"] = {p: item for p, item in doc["paths"].items() if set(item) - {"parameters"}}
    return doc


async def test_schemathesis_finds_no_server_error(frontend: Frontend, engine: EngineService, tmp_path: Path) -> None:
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(schemathesis_document(engine)))
    st = Path(sys.executable).with_name("st")
    proc = await asyncio.create_subprocess_exec(
        str(st),
        "run",
        str(spec),
        "--url",
        frontend.url,
        "--checks",
        "not_a_server_error",
        "--max-examples",
        os.environ.get("KRONICLE_FUZZ_EXAMPLES", "15"),
        "--seed",
        "20261125",
        "--workers",
        "1",  # two workers once tripped a CPython 3.11 AST bug inside hypothesis (not a Kronicle failure)
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "20",
        "--generation-database",
        "none",
        "--no-color",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,  # its report folder, if any, goes there
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    text = out.decode(errors="replace")
    print(text[-3000:])
    assert proc.returncode == 0, text[-6000:]
    async with aiohttp.ClientSession() as session, session.get(frontend.url + "/readyz") as resp:
        assert resp.status == 200
