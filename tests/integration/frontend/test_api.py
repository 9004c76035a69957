"""Contract tests of the HTTP API against a real engine on a real broker."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
import pytest

from kronicle._wire import payload_from_bytes, payload_to_bytes
from kronicle.connectors.frontend import Frontend, openapi_document
from kronicle.converter import Payload
from kronicle.engine.service import EngineService
from tests.integration.conftest import new_id
from tests.integration.frontend.conftest import complete_command, complete_task, wait_event

pytestmark = pytest.mark.asyncio(loop_scope="module")

HELLO = {"metadata": {"encoding": base64.b64encode(b"json/plain").decode()}, "data": base64.b64encode(b'"hi"').decode()}


async def call(
    frontend: Frontend, method: str, path: str, body: Any = None, *, raw: bytes | None = None, **params: Any
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            frontend.url + path,
            json=body if raw is None else None,
            data=raw,
            params={k: str(v) for k, v in params.items()},
        ) as resp,
    ):
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except json.JSONDecodeError:
            return resp.status, text


def wf(engine: EngineService, workflow_id: str = "", suffix: str = "") -> str:
    base = f"/api/v1/namespaces/{engine.namespace}/workflows"
    return base + (f"/{workflow_id}" if workflow_id else "") + suffix


async def start(frontend: Frontend, engine: EngineService, workflow_id: str, **extra: Any) -> tuple[int, Any]:
    body = {"workflow_id": workflow_id, "workflow_type": "Greeter", "task_queue": "fe-q", "input": [HELLO], **extra}
    return await call(frontend, "POST", wf(engine), body)


async def start_waiting(
    frontend: Frontend, engine: EngineService, workflow_id: str, wait: float | str
) -> tuple[int, Any]:
    body = {"workflow_id": workflow_id, "workflow_type": "Greeter", "task_queue": "fe-q", "input": [HELLO]}
    return await call(frontend, "POST", wf(engine), body, wait=wait)


def assert_error(status: int, body: Any, want_status: int, code: str, field: str | None = None) -> None:
    assert status == want_status, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    if field is not None:
        assert body["details"]["field"] == field, body


# -- start ------------------------------------------------------------------------


async def test_start_answers_the_run_id_and_the_engine_has_the_history(
    frontend: Frontend, engine: EngineService
) -> None:
    workflow_id = new_id()
    status, body = await start(frontend, engine, workflow_id, memo={"owner": HELLO})
    assert status == 201, body
    assert body["workflow_id"] == workflow_id and len(body["run_id"]) == 36
    started = engine.read_history(workflow_id, body["run_id"])[0]
    assert started["event_type"] == "WorkflowExecutionStarted"
    attrs = started["workflow_execution_started_event_attributes"]
    assert attrs["workflow_type"] == "Greeter"
    assert [payload_from_bytes(b) for b in attrs["input"]] == [Payload({"encoding": b"json/plain"}, b'"hi"')]
    assert payload_from_bytes(attrs["memo"]["owner"]).data == b'"hi"'


async def test_a_retried_start_with_the_same_request_id_returns_the_same_run(
    frontend: Frontend, engine: EngineService
) -> None:
    workflow_id = new_id()
    first = await start(frontend, engine, workflow_id, request_id="req-1")
    again = await start(frontend, engine, workflow_id, request_id="req-1")
    assert first[0] == again[0] == 201
    assert first[1]["run_id"] == again[1]["run_id"]


async def test_starting_a_running_workflow_again_is_a_conflict(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    status, _ = await start(frontend, engine, workflow_id)
    assert status == 201
    status2, body2 = await start(frontend, engine, workflow_id)
    assert_error(status2, body2, 409, "WorkflowAlreadyStarted")
    assert body2["details"]["workflow_id"] == workflow_id


async def test_use_existing_conflict_policy_answers_the_running_run(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    _, body = await start(frontend, engine, workflow_id)
    status, again = await start(frontend, engine, workflow_id, id_conflict_policy="USE_EXISTING")
    assert status == 201 and again["run_id"] == body["run_id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"workflow_id": None}, "workflow_id"),
        ({"workflow_id": 7}, "workflow_id"),
        ({"workflow_type": ""}, "workflow_type"),
        ({"task_queue": "bad queue!"}, "task_queue"),
        ({"input": "nope"}, "input"),
        ({"input": [{"data": "###"}]}, "input[0].data"),
        ({"input": [{"data": "", "extra": 1}]}, "input[0]"),
        ({"memo": [1]}, "memo"),
        ({"id_reuse_policy": "SOMETIMES"}, "id_reuse_policy"),
        ({"id_conflict_policy": 3}, "id_conflict_policy"),
        ({"run_timeout_ms": -1}, "run_timeout_ms"),
        ({"execution_timeout_ms": "10s"}, "execution_timeout_ms"),
        ({"start_delay_ms": True}, "start_delay_ms"),
    ],
)
async def test_invalid_start_fields_are_rejected_naming_the_field(
    frontend: Frontend, engine: EngineService, change: dict[str, Any], field: str
) -> None:
    body = {"workflow_id": new_id(), "workflow_type": "Greeter", "task_queue": "fe-q", **change}
    body = {k: v for k, v in body.items() if v is not None}
    status, answer = await call(frontend, "POST", wf(engine), body)
    assert_error(status, answer, 400, "InvalidArgument", field)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2]", b"\xff\xfe{}", b'"just a string"', b"{" * 100_000 + b"}" * 100_000],
)
async def test_malformed_bodies_are_400_json(frontend: Frontend, engine: EngineService, raw: bytes) -> None:
    status, answer = await call(frontend, "POST", wf(engine), raw=raw)
    assert_error(status, answer, 400, "InvalidArgument")


async def test_payloads_over_the_limit_are_413(frontend: Frontend, engine: EngineService) -> None:
    big = {"metadata": {}, "data": base64.b64encode(b"x" * (2 * 1024 * 1024 + 1)).decode()}
    status, answer = await start(frontend, engine, new_id(), input=[big])
    assert_error(status, answer, 413, "PayloadTooLarge")


async def test_a_body_over_the_size_limit_is_413(frontend: Frontend, engine: EngineService) -> None:
    status, answer = await call(frontend, "POST", wf(engine), raw=b" " * (9 * 1024 * 1024))
    assert_error(status, answer, 413, "PayloadTooLarge")


async def test_an_unknown_namespace_is_404(frontend: Frontend) -> None:
    status, answer = await call(frontend, "POST", "/api/v1/namespaces/nope/workflows", {"workflow_id": "x"})
    assert_error(status, answer, 404, "NamespaceNotFound")
    status, answer = await call(frontend, "GET", "/api/v1/namespaces/nope/workflows/x")
    assert_error(status, answer, 404, "NamespaceNotFound")


async def test_signal_with_start_starts_with_the_signal(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    body = {"workflow_type": "Greeter", "task_queue": "fe-q", "signal_input": [HELLO]}
    status, answer = await call(frontend, "POST", wf(engine, workflow_id, "/signal-with-start/approve"), body)
    assert status == 201, answer
    events = engine.read_history(workflow_id, answer["run_id"])
    assert [e["event_type"] for e in events[:2]] == ["WorkflowExecutionStarted", "WorkflowExecutionSignaled"]
    assert events[1]["workflow_execution_signaled_event_attributes"]["signal_name"] == "approve"


# -- signal, cancel, terminate ----------------------------------------------------


async def test_signals_are_applied_once_per_request_id(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    await start(frontend, engine, workflow_id)
    # While a workflow task is out the engine buffers signals; answer it so they are written at once.
    await complete_task(engine, workflow_id)
    await wait_event(engine, workflow_id, "WorkflowTaskCompleted")
    for _ in range(3):
        status, body = await call(
            frontend, "POST", wf(engine, workflow_id, "/signal/approve"), {"input": [HELLO], "request_id": "sig-1"}
        )
        assert status == 200, body
    status, _ = await call(frontend, "POST", wf(engine, workflow_id, "/signal/approve"), {"request_id": "sig-2"})
    assert status == 200
    await complete_task(engine, workflow_id)  # writes the buffered sig-2
    await wait_event(engine, workflow_id, "WorkflowTaskStarted")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        signals = [e for e in engine.read_history(workflow_id) if e["event_type"] == "WorkflowExecutionSignaled"]
        ids = [s["workflow_execution_signaled_event_attributes"]["request_id"] for s in signals]
        if len(ids) >= 2 or loop.time() > deadline:
            break
        await engine.wait_for_change(workflow_id, 0.5)
    assert ids == ["sig-1", "sig-2"]


async def test_signalling_an_unknown_workflow_is_404(frontend: Frontend, engine: EngineService) -> None:
    status, answer = await call(frontend, "POST", wf(engine, new_id(), "/signal/approve"), {})
    assert_error(status, answer, 404, "WorkflowNotFound")


async def test_cancel_writes_the_cancel_request(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    await start(frontend, engine, workflow_id)
    status, body = await call(frontend, "POST", wf(engine, workflow_id, "/cancel"), {"reason": "enough"})
    assert status == 200, body
    # The event is buffered behind the outstanding workflow task; the run's state has it at once.
    status, described = await call(frontend, "GET", wf(engine, workflow_id))
    assert status == 200 and described["cancel_requested"] is True
    await complete_task(engine, workflow_id)
    await wait_event(engine, workflow_id, "WorkflowExecutionCancelRequested")
    status, answer = await call(frontend, "POST", wf(engine, new_id(), "/cancel"))
    assert_error(status, answer, 404, "WorkflowNotFound")


async def test_terminate_closes_the_run_and_the_result_says_so(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    await start(frontend, engine, workflow_id)
    status, body = await call(frontend, "POST", wf(engine, workflow_id, "/terminate"), {"reason": "stop now"})
    assert status == 200, body
    assert engine.describe(workflow_id)["status"] == "TERMINATED"  # type: ignore[index]
    status, result = await call(frontend, "GET", wf(engine, workflow_id, "/result"))
    assert status == 200
    assert result["closed"] and result["status"] == "TERMINATED" and result["reason"] == "stop now"
    status, answer = await call(frontend, "POST", wf(engine, workflow_id, "/signal/late"))
    assert_error(status, answer, 404, "WorkflowNotFound")


# -- reads ------------------------------------------------------------------------


async def test_describe_shows_the_run(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    _, started = await start(frontend, engine, workflow_id)
    status, body = await call(frontend, "GET", wf(engine, workflow_id))
    assert status == 200, body
    assert body["run_id"] == started["run_id"] and body["status"] == "RUNNING"
    assert body["workflow_type"] == "Greeter" and body["task_queue"] == "fe-q"
    assert body["history_length"] == 2 and body["start_time_ms"] > 0 and body["pending_activities"] == []
    status, by_run = await call(frontend, "GET", wf(engine, workflow_id), run_id=started["run_id"])
    assert status == 200 and by_run["run_id"] == started["run_id"]


async def test_describe_of_an_unknown_workflow_or_run_is_404(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    status, body = await call(frontend, "GET", wf(engine, workflow_id))
    assert_error(status, body, 404, "WorkflowNotFound")
    await start(frontend, engine, workflow_id)
    status, body = await call(frontend, "GET", wf(engine, workflow_id), run_id="00000000-0000-0000-0000-000000000000")
    assert_error(status, body, 404, "WorkflowNotFound")


async def test_history_pages_and_long_polls(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    await start(frontend, engine, workflow_id)
    status, page = await call(frontend, "GET", wf(engine, workflow_id, "/history"), max_events=1)
    assert status == 200
    assert [e["event_id"] for e in page["events"]] == [1] and page["next_event_id"] == 2
    # input payload bytes are base64 in JSON
    attrs = page["events"][0]["workflow_execution_started_event_attributes"]
    assert payload_from_bytes(base64.b64decode(attrs["input"][0])).data == b'"hi"'
    status, page = await call(frontend, "GET", wf(engine, workflow_id, "/history"), first_event_id=3)
    assert status == 200 and page["events"] == []
    poll = asyncio.create_task(call(frontend, "GET", wf(engine, workflow_id, "/history"), first_event_id=3, wait=20))
    await asyncio.sleep(0.3)
    assert not poll.done()
    await complete_task(engine, workflow_id)
    status, page = await asyncio.wait_for(poll, 10)
    assert status == 200 and page["events"][0]["event_type"] == "WorkflowTaskStarted"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"first_event_id": "x"}, "first_event_id"),
        ({"first_event_id": 0}, "first_event_id"),
        ({"max_events": 100_000}, "max_events"),
        ({"wait": "soon"}, "wait"),
        ({"wait": "nan"}, "wait"),
        ({"wait": 600}, "wait"),
    ],
)
async def test_bad_history_parameters_are_400(
    frontend: Frontend, engine: EngineService, params: dict[str, Any], field: str
) -> None:
    workflow_id = new_id()
    await start(frontend, engine, workflow_id)
    status, body = await call(frontend, "GET", wf(engine, workflow_id, "/history"), **params)
    assert_error(status, body, 400, "InvalidArgument", field)


async def test_result_long_polls_until_the_workflow_completes(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    await start(frontend, engine, workflow_id)
    status, running = await call(frontend, "GET", wf(engine, workflow_id, "/result"))
    assert status == 200 and running["closed"] is False and running["status"] == "RUNNING"
    poll = asyncio.create_task(call(frontend, "GET", wf(engine, workflow_id, "/result"), wait=20))
    await asyncio.sleep(0.3)
    assert not poll.done()
    result = payload_to_bytes(Payload({"encoding": b"json/plain"}, b'"done"'))
    await complete_task(engine, workflow_id, complete_command([result]))
    status, body = await asyncio.wait_for(poll, 10)
    assert status == 200, body
    assert body["closed"] and body["status"] == "COMPLETED"
    assert body["result"] == [Payload({"encoding": b"json/plain"}, b'"done"').to_dict()]


async def test_result_of_a_failed_workflow_carries_the_failure(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    await start(frontend, engine, workflow_id)
    failure = {"message": "boom", "failure_type": "application", "type": "BoomError", "non_retryable": True}
    await complete_task(
        engine,
        workflow_id,
        {"command_type": "FailWorkflowExecution", "fail_workflow_execution_command_attributes": {"failure": failure}},
    )
    status, body = await call(frontend, "GET", wf(engine, workflow_id, "/result"), wait=10)
    assert status == 200 and body["status"] == "FAILED"
    assert body["failure"]["message"] == "boom" and body["failure"]["type"] == "BoomError"


async def test_start_with_wait_answers_the_result_once_the_run_closes(
    frontend: Frontend, engine: EngineService
) -> None:
    workflow_id = new_id()
    pending = asyncio.create_task(start_waiting(frontend, engine, workflow_id, 20))
    await asyncio.sleep(0.3)
    assert not pending.done()
    result = payload_to_bytes(Payload({"encoding": b"json/plain"}, b'"done"'))
    await complete_task(engine, workflow_id, complete_command([result]))
    status, answer = await asyncio.wait_for(pending, 10)
    assert status == 201, answer
    run = engine.describe(workflow_id)
    assert run is not None and answer["run_id"] == run["run_id"]
    assert answer["closed"] is True and answer["status"] == "COMPLETED"
    assert answer["close_event_type"] == "WorkflowExecutionCompleted"
    assert answer["result"] == [Payload({"encoding": b"json/plain"}, b'"done"').to_dict()]
    # The same body as the Result endpoint's for that run.
    assert await call(frontend, "GET", wf(engine, workflow_id, "/result"), run_id=answer["run_id"]) == (200, answer)


async def test_start_with_wait_answers_not_closed_when_the_run_outlives_the_wait(
    frontend: Frontend, engine: EngineService
) -> None:
    workflow_id = new_id()
    status, answer = await start_waiting(frontend, engine, workflow_id, 0.3)
    assert status == 201, answer
    assert answer["workflow_id"] == workflow_id and answer["closed"] is False
    assert answer["status"] == "RUNNING" and len(answer["run_id"]) == 36
    poll = asyncio.create_task(
        call(frontend, "GET", wf(engine, workflow_id, "/result"), run_id=answer["run_id"], wait=20)
    )
    await complete_task(engine, workflow_id, complete_command([]))
    status, body = await asyncio.wait_for(poll, 10)
    assert status == 200 and body["closed"] and body["run_id"] == answer["run_id"]


async def test_start_with_wait_carries_the_failure_of_a_failed_run(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    pending = asyncio.create_task(start_waiting(frontend, engine, workflow_id, 20))
    failure = {"message": "boom", "failure_type": "application", "type": "BoomError", "non_retryable": True}
    await complete_task(
        engine,
        workflow_id,
        {"command_type": "FailWorkflowExecution", "fail_workflow_execution_command_attributes": {"failure": failure}},
    )
    status, answer = await asyncio.wait_for(pending, 10)
    assert status == 201 and answer["closed"] and answer["status"] == "FAILED", answer
    assert answer["failure"]["message"] == "boom" and answer["failure"]["type"] == "BoomError"


async def test_start_with_wait_names_the_next_run_of_a_continued_run(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    pending = asyncio.create_task(start_waiting(frontend, engine, workflow_id, 20))
    await complete_task(
        engine,
        workflow_id,
        {
            "command_type": "ContinueAsNewWorkflowExecution",
            "continue_as_new_workflow_execution_command_attributes": {"workflow_type": "Greeter", "task_queue": "fe-q"},
        },
    )
    status, answer = await asyncio.wait_for(pending, 10)
    assert status == 201 and answer["status"] == "CONTINUED_AS_NEW", answer
    run = engine.describe(workflow_id)
    assert run is not None and answer["new_execution_run_id"] == run["run_id"] != answer["run_id"]


async def test_start_with_wait_of_a_running_id_is_a_conflict_at_once(frontend: Frontend, engine: EngineService) -> None:
    workflow_id = new_id()
    assert (await start(frontend, engine, workflow_id))[0] == 201
    status, body = await asyncio.wait_for(start_waiting(frontend, engine, workflow_id, 30), 10)
    assert_error(status, body, 409, "WorkflowAlreadyStarted")


@pytest.mark.parametrize("wait", ["-1", "61", "soon", "nan"])
async def test_start_with_a_bad_wait_is_400_and_starts_nothing(
    frontend: Frontend, engine: EngineService, wait: str
) -> None:
    workflow_id = new_id()
    status, body = await start_waiting(frontend, engine, workflow_id, wait)
    assert_error(status, body, 400, "InvalidArgument", "wait")
    assert engine.describe(workflow_id) is None


async def test_start_with_wait_and_a_malformed_body_is_400_json(frontend: Frontend, engine: EngineService) -> None:
    status, body = await call(frontend, "POST", wf(engine), raw=b"{not json", wait=5)
    assert status == 400 and body["code"] == "InvalidArgument", body
    status, body = await call(frontend, "POST", wf(engine), {"workflow_id": new_id(), "task_queue": "fe-q"}, wait=5)
    assert_error(status, body, 400, "InvalidArgument", "workflow_type")


# -- list and count without a visibility store ------------------------------------


async def test_list_and_count_without_a_visibility_store_are_501(frontend: Frontend, engine: EngineService) -> None:
    status, body = await call(frontend, "GET", wf(engine))
    assert_error(status, body, 501, "Unimplemented")
    assert "visibility store" in body["message"]
    status, body = await call(frontend, "GET", f"/api/v1/namespaces/{engine.namespace}/workflow-count")
    assert_error(status, body, 501, "Unimplemented")


# -- operations -------------------------------------------------------------------


async def test_cluster_names_kafka_and_the_topics(frontend: Frontend, engine: EngineService) -> None:
    status, body = await call(frontend, "GET", "/api/v1/cluster")
    assert status == 200
    assert body["kafka_bootstrap_servers"] == engine.bootstrap_servers
    assert body["namespace"] == engine.namespace
    assert body["topics"]["commands"] == engine.topics.commands
    assert body["topics"]["task_queue_workflow"].format(queue="q") == engine.topics.task_queue("q", "workflow")


async def test_health_readiness_and_metrics(frontend: Frontend) -> None:
    assert (await call(frontend, "GET", "/healthz"))[0] == 200
    assert (await call(frontend, "GET", "/readyz")) == (200, {"status": "ready"})
    status, text = await call(frontend, "GET", "/metrics")
    assert status == 200 and "kronicle_frontend_requests_total" in text
    assert 'route="/readyz"' in text


async def test_unknown_paths_and_methods_answer_json(frontend: Frontend, engine: EngineService) -> None:
    status, body = await call(frontend, "GET", "/api/v1/nothing-here")
    assert_error(status, body, 404, "NotFound")
    status, body = await call(frontend, "DELETE", wf(engine, "x"))
    assert_error(status, body, 405, "MethodNotAllowed")


async def test_openapi_document_matches_the_routes(frontend: Frontend) -> None:
    status, served = await call(frontend, "GET", "/api/v1/openapi.json")
    assert status == 200 and served == openapi_document()
    documented = {
        (method.upper(), path)
        for path, ops in served["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "delete", "patch")
    }
    from kronicle.connectors.frontend import create_app

    app = create_app(frontend._engine)
    routed = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert documented == routed
