"""The HTTP API under hostile input: always a 4xx JSON error with a stable code, never a 5xx, a hang or a crash.

Malformed JSON, wrong types, payloads over the payload limit and bodies over the body limit, invalid
UTF-8, deeply nested JSON, bogus path and query parameters, hostile list filters. After each group the
frontend must still answer ``/readyz``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from kronicle.connectors.frontend import Frontend
from kronicle.engine.service import EngineService

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

CODES = {"InvalidArgument", "NamespaceNotFound", "WorkflowNotFound", "NotFound", "MethodNotAllowed", "PayloadTooLarge"}
HELLO = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}, "data": base64.b64encode(b'"hi"').decode()}


async def send(
    frontend: Frontend,
    method: str,
    path: str,
    *,
    raw: bytes | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.request(method, frontend.url + path, data=data, headers=headers) as resp,
    ):
        text = await resp.text(errors="replace")
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


def assert_error(status: int, got: Any, code: str | None = None, field: str | None = None) -> None:
    assert 400 <= status < 500, (status, got)
    assert isinstance(got, dict) and set(got) == {"code", "message", "details"}, got
    assert got["code"] in CODES and got["message"], got
    if code is not None:
        assert got["code"] == code, got
    if field is not None:
        assert got["details"].get("field") == field, got


async def assert_alive(frontend: Frontend) -> None:
    status, got = await send(frontend, "GET", "/readyz")
    assert (status, got) == (200, {"status": "ready"})


def start_body(**fields: Any) -> dict[str, Any]:
    return {"workflow_id": "h-1", "workflow_type": "T", "task_queue": "q", **fields}


def ns(engine: EngineService) -> str:
    return f"/api/v1/namespaces/{engine.namespace}"


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"workflow_id": "x",}',
        b"not json at all",
        b"\xff\xfe\x00{}",  # invalid UTF-8
        b'{"workflow_id": "\xc3\x28"}',  # invalid UTF-8 inside a string
        b"[" * 100_000,  # deeply nested
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b"NaN",
        b'"just a string"',
        b"[1, 2, 3]",
        b"\x00" * 1000,
    ],
)
async def test_malformed_bodies(frontend: Frontend, engine: EngineService, raw: bytes) -> None:
    for path in ("/workflows", "/workflows/h-1/signal/s", "/workflows/h-1/cancel", "/workflows/h-1/terminate"):
        status, got = await send(frontend, "POST", ns(engine) + path, raw=raw)
        assert_error(status, got, "InvalidArgument")
    await assert_alive(frontend)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"workflow_id": 5}, "workflow_id"),
        ({"workflow_id": ["a"]}, "workflow_id"),
        ({"workflow_id": ""}, "workflow_id"),
        ({"workflow_id": "\ud800"}, "workflow_id"),
        ({"workflow_id": "x" * 5000}, "workflow_id"),
        ({"workflow_type": None}, "workflow_type"),
        ({"task_queue": "has spaces"}, "task_queue"),
        ({"task_queue": "../../etc"}, "task_queue"),
        ({"task_queue": "x" * 400}, "task_queue"),
        ({"input": "x"}, "input"),
        ({"input": [1]}, "input[0]"),
        ({"input": [{"data": 5}]}, "input[0].data"),
        ({"input": [{"data": "not base64!"}]}, "input[0].data"),
        ({"input": [{"data": "", "extra": 1}]}, "input[0]"),
        ({"memo": []}, "memo"),
        ({"memo": {"k": {"metadata": "x"}}}, "memo.k.metadata"),
        ({"task_timeout_ms": "10"}, "task_timeout_ms"),
        ({"task_timeout_ms": True}, "task_timeout_ms"),
        ({"task_timeout_ms": -1}, "task_timeout_ms"),
        ({"task_timeout_ms": 2**70}, "task_timeout_ms"),
        ({"task_timeout_ms": 1.5}, "task_timeout_ms"),
        ({"id_reuse_policy": "SOMETIMES"}, "id_reuse_policy"),
        ({"id_conflict_policy": 3}, "id_conflict_policy"),
        ({"request_id": {"a": 1}}, "request_id"),
    ],
)
async def test_wrong_types_name_the_field(
    frontend: Frontend, engine: EngineService, fields: dict[str, Any], field: str
) -> None:
    status, got = await send(frontend, "POST", ns(engine) + "/workflows", body=start_body(**fields))
    assert_error(status, got, "InvalidArgument", field)


async def test_numbers_json_cannot_hold(frontend: Frontend, engine: EngineService) -> None:
    for raw in (b'{"workflow_id": "h", "task_timeout_ms": 1e999}', b'{"task_timeout_ms": ' + b"9" * 5000 + b"}"):
        status, got = await send(frontend, "POST", ns(engine) + "/workflows", raw=raw)
        assert_error(status, got, "InvalidArgument")


async def test_payloads_over_the_payload_limit(frontend: Frontend, engine: EngineService) -> None:
    big = {"metadata": {}, "data": base64.b64encode(b"x" * (2 * 1024 * 1024 + 1)).decode()}
    status, got = await send(frontend, "POST", ns(engine) + "/workflows", body=start_body(input=[big]))
    assert_error(status, got, "PayloadTooLarge")
    assert status == 413 and got["details"]["limit"] == 2 * 1024 * 1024
    halves = [{"metadata": {}, "data": base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()}] * 2
    status, got = await send(frontend, "POST", ns(engine) + "/workflows/h-1/signal/s", body={"input": halves})
    assert_error(status, got, "PayloadTooLarge")


async def test_bodies_over_the_body_limit(frontend: Frontend, engine: EngineService) -> None:
    for path in ("/workflows", "/workflows/h-1/signal/s"):
        status, got = await send(frontend, "POST", ns(engine) + path, raw=b" " * (8 * 1024 * 1024 + 1))
        assert status == 413
        assert_error(status, got, "PayloadTooLarge")
    await assert_alive(frontend)


async def test_a_body_that_lies_about_its_length_does_not_hang(frontend: Frontend, engine: EngineService) -> None:
    host, port = frontend.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    path = ns(engine) + "/workflows"
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{".encode())
    await writer.drain()
    await assert_alive(frontend)  # a stalled body holds up no one else
    writer.close()  # the client goes away mid-body
    await writer.wait_closed()
    await assert_alive(frontend)


@pytest.mark.parametrize(
    "segment",
    ["x" * 1001, "%00", "a%2Fb", "..", "%2E%2E", "\u202e", "%F0%9F%92%A9", "' OR 1=1 --", "%ff", "%"],
)
async def test_bogus_path_parameters(frontend: Frontend, engine: EngineService, segment: str) -> None:
    wf = quote(segment, safe="%") if segment != "%" else "%"
    for method, path in (
        ("GET", f"/workflows/{wf}"),
        ("GET", f"/workflows/{wf}/history"),
        ("GET", f"/workflows/{wf}/result"),
        ("POST", f"/workflows/{wf}/signal/{wf}"),
        ("POST", f"/workflows/{wf}/cancel"),
    ):
        status, got = await send(frontend, method, ns(engine) + path, body={} if method == "POST" else None)
        assert_error(status, got)
    status, got = await send(frontend, "GET", f"/api/v1/namespaces/{wf}/workflows/x")
    assert_error(status, got)


@pytest.mark.parametrize(
    "query",
    [
        "first_event_id=0",
        "first_event_id=-1",
        "first_event_id=1e999",
        "first_event_id=99999999999999999999999999",
        "max_events=0",
        "max_events=100000",
        "max_events=abc",
        "wait=nan",
        "wait=inf",
        "wait=-1",
        "wait=1e309",
        "wait=61",
        "run_id=" + "x" * 2000,
    ],
)
async def test_bogus_query_parameters(frontend: Frontend, engine: EngineService, query: str) -> None:
    status, got = await send(frontend, "GET", ns(engine) + f"/workflows/h-1/history?{query}")
    assert_error(status, got, "InvalidArgument")


async def test_oversized_request_lines_and_headers_are_refused_and_the_frontend_lives_on(
    frontend: Frontend, engine: EngineService
) -> None:
    # Under the frontend's 64 KiB bound the request reaches the handlers; past it aiohttp's parser
    # refuses it, and the frontend still answers the JSON error body.
    status, got = await send(frontend, "GET", ns(engine) + "/workflows/" + "x" * 20_000)
    assert_error(status, got, "InvalidArgument", "workflow_id")
    status, got = await send(frontend, "GET", "/healthz", headers={"X-Big": "y" * 20_000})
    assert (status, got) == (200, {"status": "ok"})
    status, got = await send(frontend, "GET", "/healthz", headers={"X-Big": "y" * 100_000})
    assert_error(status, got, "InvalidArgument")
    await assert_alive(frontend)


async def test_wrong_methods_and_unknown_paths(frontend: Frontend, engine: EngineService) -> None:
    status, got = await send(frontend, "DELETE", ns(engine) + "/workflows")
    assert_error(status, got, "MethodNotAllowed")
    status, got = await send(frontend, "GET", "/api/v2/anything")
    assert_error(status, got, "NotFound")


async def test_a_burst_of_hostile_requests_leaves_it_serving(frontend: Frontend, engine: EngineService) -> None:
    bodies = [b"{", b"\xff", b"[" * 10_000, json.dumps(start_body(task_queue="bad queue")).encode()] * 50
    results = await asyncio.gather(*(send(frontend, "POST", ns(engine) + "/workflows", raw=b) for b in bodies))
    for status, got in results:
        assert_error(status, got, "InvalidArgument")
    await assert_alive(frontend)


HOSTILE_FILTERS = [
    " OR ".join(f"WorkflowId = 'w{i}'" for i in range(5000)),
    "(" * 5000 + "WorkflowId = 'x'" + ")" * 5000,
    "(" * 100_000,
    "WorkflowId = 'x'; DROP TABLE executions; --",
    "WorkflowId = 'x' OR 1=1",
    "WorkflowId IN (SELECT run_id FROM executions)",
    "WorkflowId = '" + "a" * 70_000 + "'",
    "\x00",
]


@pytest.mark.parametrize("query", HOSTILE_FILTERS, ids=range(len(HOSTILE_FILTERS)))
async def test_hostile_list_filters_over_http(frontend: Frontend, engine: EngineService, query: str) -> None:
    for path in ("/workflows", "/workflow-count"):
        url = ns(engine) + path + "?query=" + quote(query)
        status, got = await send(frontend, "GET", url, timeout=60)
        if status == 501:
            pytest.skip("list and count are not routed yet (tests/integration/visibility/test_hostile_queries.py)")
        assert_error(status, got, "InvalidArgument")
    await assert_alive(frontend)


async def raw_http(frontend: Frontend, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are on a fresh connection; the status, headers and body of the answer."""
    host, port = frontend.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if line)}
        body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 30)
        return status, headers, body
    finally:
        writer.close()


def assert_json_error(status: int, headers: dict[str, str], body: bytes, code: str, field: str | None = None) -> None:
    assert headers.get("content-type", "").startswith("application/json"), (status, headers, body[:200])
    assert_error(status, json.loads(body), code, field)


@pytest.mark.parametrize("length", [1001, 9_000, 40_000])
async def test_a_long_workflow_id_in_the_url_is_a_json_invalid_argument(
    frontend: Frontend, engine: EngineService, length: int
) -> None:
    # aiohttp's parser refuses request lines over 8,190 bytes by default, with a plain-text 400.
    path = ns(engine) + "/workflows/" + "w" * length
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    status, headers, body = await raw_http(frontend, request)
    assert_json_error(status, headers, body, "InvalidArgument", "workflow_id")
    await assert_alive(frontend)


async def test_a_request_line_or_header_past_the_parser_limit_is_a_json_error(
    frontend: Frontend, engine: EngineService
) -> None:
    huge = "w" * (200 * 1024)  # past the frontend's 64 KiB bound: refused by the HTTP parser itself
    for request in (
        f"GET {ns(engine)}/workflows/{huge} HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    ):
        status, headers, body = await raw_http(frontend, request.encode())
        assert_json_error(status, headers, body, "InvalidArgument")
    # A big header under the bound reaches the application.
    status, headers, body = await raw_http(
        frontend, f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {'v' * 20_000}\r\n\r\n".encode()
    )
    assert status == 200 and json.loads(body) == {"status": "ok"}
    await assert_alive(frontend)
