"""Queries and updates: commands whose answer comes from the workflow's worker, not only the engine.

A query is produced as ``QueryWorkflow``; the engine forwards it to the worker
that owns the workflow, and the worker answers ``QueryResult`` on this
frontend's reply topic. An update is produced as ``UpdateWorkflow``; the
engine delivers it in the next workflow task and reports its stages
(``ACCEPTED``, ``REJECTED``, ``COMPLETED``, ``ABORTED``) as ``UpdateResult``.
Either may instead be rejected by the engine with a ``CommandResult`` (no such
workflow, closed, too many updates in flight).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiohttp import web

from kronicle.connectors.frontend._errors import ApiError, invalid
from kronicle.connectors.frontend._handlers import Api, engine_error, path_id, query_str, query_wait
from kronicle.connectors.frontend._json import (
    opt_int,
    opt_str,
    payloads_json,
    read_body,
    wire_failure_json,
    wire_payload_list,
    wire_payload_map,
)

__all__ = ["Interactive"]

_QUERY_TIMEOUT_MS = 10_000
_UPDATE_TIMEOUT_MS = 20_000
_MAX_TIMEOUT_MS = 60_000
# Temporal's UpdateWorkflowExecutionLifecycleStage names, in order.
_STAGES = ("ADMITTED", "ACCEPTED", "COMPLETED")
_COMPLETED_ATTRS = "workflow_execution_update_completed_event_attributes"
# How long an update's answer waits for the engine's store to show it (see Interactive._until_stored).
_STORED_WAIT_S = 2.0


class Interactive:
    """The query and update endpoints over an :class:`Api` (its engine, gateway and helpers)."""

    def __init__(self, api: Api) -> None:
        self.api = api

    # -- queries ------------------------------------------------------------------

    async def query(self, request: web.Request) -> web.Response:
        """POST /api/v1/namespaces/{ns}/workflows/{workflow_id}/query/{query_name}."""
        api = self.api
        api.namespace_of(request)
        body = await read_body(request)
        workflow_id = path_id(request)
        query_id = str(uuid.uuid4())
        datum: dict[str, Any] = {
            "workflow_id": workflow_id,
            "run_id": opt_str(body, "run_id"),
            "query_id": query_id,
            "query_type": path_id(request, "query_name"),
            "query_args": wire_payload_list(body, "input"),
            "header": wire_payload_map(body, "header"),
        }
        api.check_size(datum["query_args"])
        timeout = (opt_int(body, "timeout_ms", maximum=_MAX_TIMEOUT_MS) or _QUERY_TIMEOUT_MS) / 1000
        api.ready()
        deadline = time.monotonic() + timeout
        await self._first_task_done(workflow_id, datum["run_id"], deadline)
        with api.gateway.subscribe("query", workflow_id, query_id) as replies:
            await self._produce("kronicle.workflow.QueryWorkflow", workflow_id, datum)
            try:
                schema, reply = await asyncio.wait_for(replies.get(), max(deadline - time.monotonic(), 0.1))
            except TimeoutError:
                raise ApiError(
                    "QueryTimeout",
                    f"no worker answered query {datum['query_type']!r} of workflow {workflow_id!r} within"
                    f" {timeout:g} s; check that a worker polls the workflow's task queue (queries need a"
                    " running worker, also for a closed workflow), or raise timeout_ms",
                    workflow_id=workflow_id,
                    query_id=query_id,
                ) from None
        if schema == "kronicle.workflow.CommandResult":
            raise engine_error(reply, workflow_id)
        if reply.get("failure") is not None:
            failure = wire_failure_json(reply["failure"])
            assert failure is not None
            raise ApiError(
                "QueryFailed",
                f"query {datum['query_type']!r} failed: {failure.get('message') or 'no message'}",
                workflow_id=workflow_id,
                run_id=reply.get("run_id", ""),
                failure=failure,
            )
        return web.json_response(
            {
                "workflow_id": workflow_id,
                "run_id": reply.get("run_id", ""),
                "query_id": query_id,
                "result": payloads_json(reply.get("answer")),
            }
        )

    async def _first_task_done(self, workflow_id: str, run_id: str, deadline: float) -> None:
        """Wait (until ``deadline``) for a running run's first workflow task to complete, as Temporal does.

        The worker answers a query by replaying history; before the first task completed there is
        no workflow state to ask. ``wft_first_event_id`` moves past 1 when a task completes.
        """
        api = self.api
        try:
            run = api.run_state(workflow_id, run_id)
            while run["status"] == "RUNNING" and run.get("wft_first_event_id", 2) <= 1:
                left = deadline - time.monotonic()
                if left <= 0:
                    return  # ask anyway: the worker's answer (or the timeout) tells the caller
                await api.engine.wait_for_change(workflow_id, min(1.0, left))
                run = api.run_state(workflow_id, run["run_id"])
        except ApiError as err:
            if err.code != "NotReady":  # another engine owns the partition: the query still goes via Kafka
                raise

    # -- updates ------------------------------------------------------------------

    async def update(self, request: web.Request) -> web.Response:
        """POST /api/v1/namespaces/{ns}/workflows/{workflow_id}/update/{update_name}."""
        api = self.api
        api.namespace_of(request)
        body = await read_body(request)
        workflow_id = path_id(request)
        update_id = opt_str(body, "update_id") or str(uuid.uuid4())
        wait_for = opt_str(body, "wait_for_stage", "COMPLETED")
        if wait_for not in ("ACCEPTED", "COMPLETED"):
            raise invalid("wait_for_stage", "must be ACCEPTED or COMPLETED")
        requested_run = opt_str(body, "run_id")
        datum: dict[str, Any] = {
            "workflow_id": workflow_id,
            "run_id": requested_run,
            "update_id": update_id,
            "name": path_id(request, "update_name"),
            "input": wire_payload_list(body, "input"),
            "header": wire_payload_map(body, "header"),
            "identity": opt_str(body, "identity"),
        }
        api.check_size(datum["input"])
        timeout = (opt_int(body, "timeout_ms", maximum=_MAX_TIMEOUT_MS) or _UPDATE_TIMEOUT_MS) / 1000
        api.ready()
        deadline = time.monotonic() + timeout
        run_id = ""
        with api.gateway.subscribe("update", workflow_id, update_id) as replies:
            await self._produce("kronicle.workflow.UpdateWorkflow", workflow_id, datum)
            while (left := deadline - time.monotonic()) > 0:
                try:
                    schema, reply = await asyncio.wait_for(replies.get(), left)
                except TimeoutError:
                    break
                if schema == "kronicle.workflow.CommandResult":
                    raise engine_error(reply, workflow_id)
                run_id = str(reply.get("run_id", ""))
                stage = str(reply.get("stage", ""))
                if stage not in ("REJECTED", "ABORTED", "COMPLETED") and stage != wait_for:
                    continue
                await self._until_stored(workflow_id, run_id, update_id, stage)
                if stage in ("REJECTED", "ABORTED"):
                    raise _update_failed(stage, workflow_id, run_id, update_id, reply.get("failure"))
                return web.json_response(_update_json(workflow_id, run_id, update_id, reply))
        # Not there in time (no worker yet, a slow handler, or a retried update the engine does not
        # announce again): answer the stage it reached; the caller polls GET .../updates/{update_id}.
        outcome = self._update_state(workflow_id, run_id or requested_run, update_id)
        if outcome is None:
            outcome = {"stage": "ADMITTED", "run_id": run_id}
        elif outcome["stage"] == "REJECTED":
            raise _update_failed("REJECTED", workflow_id, outcome["run_id"], update_id, outcome["failure"])
        return web.json_response(_update_json(workflow_id, str(outcome.pop("run_id", run_id)), update_id, outcome))

    async def poll_update(self, request: web.Request) -> web.Response:
        """GET /api/v1/namespaces/{ns}/workflows/{workflow_id}/updates/{update_id}."""
        api = self.api
        api.namespace_of(request)
        workflow_id = path_id(request)
        update_id = path_id(request, "update_id")
        run_id = query_str(request, "run_id")
        wait_for = request.query.get("wait_for_stage") or "COMPLETED"
        if wait_for not in _STAGES:
            raise invalid("wait_for_stage", f"must be one of {', '.join(_STAGES)}")
        deadline = time.monotonic() + query_wait(request)
        outcome = self._update_state(workflow_id, run_id, update_id)
        while True:
            if outcome is None:
                raise ApiError(
                    "UpdateNotFound",
                    f"workflow {workflow_id!r} has no update {update_id!r} (never sent, aborted when the run closed,"
                    " or rejected longer ago than the run remembers); send it again with the same update_id to be"
                    " sure",
                    workflow_id=workflow_id,
                    update_id=update_id,
                )
            if outcome["stage"] == "REJECTED":
                raise _update_failed("REJECTED", workflow_id, outcome["run_id"], update_id, outcome["failure"])
            done = _STAGES.index(outcome["stage"]) >= _STAGES.index(wait_for)
            if done or time.monotonic() >= deadline:
                rid = str(outcome.pop("run_id"))
                return web.json_response(_update_json(workflow_id, rid, update_id, outcome))
            outcome = await api.after_change(
                workflow_id, deadline, lambda: self._update_state(workflow_id, run_id, update_id)
            )

    async def _until_stored(self, workflow_id: str, run_id: str, update_id: str, stage: str) -> None:
        """Wait, briefly, until the engine's store shows the update at the ``stage`` a reply announced.

        The reply is visible once the engine's transaction commits, a moment before the engine's
        local store has the change (as with commands, see ``Api._send``). Without this wait a poll
        of the update right after the answer could read the stage before it. The wait is bounded
        (2 s): a run that no longer remembers the update (a rejection pushed out by newer ones) or
        a partition that moved away ends it, and the answer goes out as the reply said.
        """
        deadline = time.monotonic() + _STORED_WAIT_S
        while True:
            with self.api.engine.watch_change(workflow_id) as changed:
                try:
                    if _shows(self._update_state(workflow_id, run_id, update_id), stage):
                        return
                except ApiError:
                    return  # not readable here (restoring, moved): the poll will say so itself
                try:
                    async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                        await changed.wait()
                except TimeoutError:
                    return

    def _update_state(self, workflow_id: str, run_id: str, update_id: str) -> dict[str, Any] | None:
        """The stage (and outcome) of an update from the run's stored state; None if the run has no such update.

        The stage is one of :data:`_STAGES`, or ``REJECTED`` (with ``failure``) for a rejection the run remembers.
        """
        run = self.api.run_state(workflow_id, run_id)
        rid = run["run_id"]
        event_id = (run.get("completed_updates") or {}).get(update_id)
        if event_id is not None:
            events = self.api.history_page(workflow_id, rid, int(event_id), 1, run.get("last_chunk", 0))
            attrs = (events[0].get(_COMPLETED_ATTRS) or {}) if events else {}
            return {"run_id": rid, "stage": "COMPLETED", "result": attrs.get("result"), "failure": attrs.get("failure")}
        pending = (run.get("updates") or {}).get(update_id)
        if pending is None:
            # The run remembers its latest rejections (the engine's MAX_REJECTED_UPDATES).
            for rejected in run.get("rejected_updates") or ():
                if rejected["update_id"] == update_id:
                    return {"run_id": rid, "stage": "REJECTED", "failure": rejected["failure"]}
            return None
        return {"run_id": rid, "stage": "ACCEPTED" if pending.get("state") == "ACCEPTED" else "ADMITTED"}

    async def _produce(self, schema: str, workflow_id: str, datum: dict[str, Any]) -> None:
        try:
            await self.api.gateway.produce(schema, workflow_id, datum)
        except RuntimeError as err:
            raise ApiError("NotReady", f"{err}; retry in a moment") from err


def _shows(outcome: dict[str, Any] | None, stage: str) -> bool:
    """Whether the stored ``outcome`` of an update (see ``_update_state``) has reached a reply's ``stage``."""
    stored = None if outcome is None else outcome["stage"]
    if stage == "ABORTED":  # the closed run dropped it
        return stored not in ("ADMITTED", "ACCEPTED")
    if stage == "ACCEPTED":
        return stored in ("ACCEPTED", "COMPLETED")
    return stored == stage


def _update_json(workflow_id: str, run_id: str, update_id: str, reply: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "workflow_id": workflow_id,
        "run_id": run_id,
        "update_id": update_id,
        "stage": reply["stage"],
    }
    if reply["stage"] == "COMPLETED":
        if reply.get("failure") is not None:
            out["failure"] = wire_failure_json(reply["failure"])
        else:
            out["result"] = payloads_json(reply.get("result"))
    return out


def _update_failed(stage: str, workflow_id: str, run_id: str, update_id: str, wire: Any) -> ApiError:
    failure = wire_failure_json(wire) if wire is not None else None
    why = (failure or {}).get("message") or "no reason given"
    if stage == "REJECTED":
        code, message = "UpdateRejected", f"update {update_id!r} was rejected by the workflow's validator: {why}"
    else:
        code, message = "UpdateAborted", f"update {update_id!r} was aborted: {why}"
    return ApiError(code, message, workflow_id=workflow_id, run_id=run_id, update_id=update_id, failure=failure)
