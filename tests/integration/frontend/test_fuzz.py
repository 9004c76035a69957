"""A quick fuzz of every endpoint: random bodies, paths and parameters never produce a 5xx.

Home-grown rather than schemathesis (no new dependency): the generator mixes
the documented field names with values of every JSON type, odd strings (lone
surrogates, NUL, very long), huge numbers, nesting, and raw non-JSON bytes.
A fixed seed keeps a failure reproducible.
"""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from kronicle.connectors.frontend import Frontend, openapi_document
from kronicle.engine.service import EngineService

pytestmark = pytest.mark.asyncio(loop_scope="module")

SEEN: dict[int, int] = {}
_FIELDS = sorted(
    {name for schema in openapi_document()["components"]["schemas"].values() for name in schema.get("properties", {})}
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
    # Starts are weighted up, so the fuzz also reaches the success paths behind a valid start.
    start = ("post", "/api/v1/namespaces/{ns}/workflows")
    method, template = start if rng.random() < 0.15 else rng.choice(templates)
    segment = quote(rng.choice(["wf", "é", "a b", "%00", "x" * 1500, "fz-1"]), safe="")
    filled = template.replace("{ns}", rng.choice([engine.namespace, engine.namespace, "nope"]))
    for name in ("workflow_id", "signal_name", "query_name", "update_name", "update_id"):
        filled = filled.replace("{" + name + "}", segment)
    return method.upper(), filled


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
            data = body(rng, url_path) if method in ("POST", "PATCH") else None
            async with session.request(method, frontend.url + url_path, data=data, params=params) as resp:
                text = await resp.text()
                SEEN[resp.status] = SEEN.get(resp.status, 0) + 1
                assert resp.status < 500 or resp.status in (501, 503, 504), (method, url_path, params, data, text)
                if resp.status >= 400:
                    assert set(json.loads(text)) == {"code", "message", "details"}, text
    # The run reached both the handlers' success paths and their validation, not just 404s.
    assert SEEN.get(400) and SEEN.get(201) and SEEN.get(200), SEEN
    async with aiohttp.ClientSession() as session, session.get(frontend.url + "/readyz") as resp:
        assert resp.status == 200  # still serving after all that
