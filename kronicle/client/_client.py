"""``Client`` and ``WorkflowHandle``: temporalio's client API over the Kronicle frontend's HTTP API."""

from __future__ import annotations

import os
import socket
import struct
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Generic, TypeVar, cast
from urllib.parse import quote

from kronicle._wire import retry_policy_to_wire
from kronicle.client._http import FrontendError, Transport
from kronicle.client._types import (
    WorkflowContinuedAsNewError,
    WorkflowExecutionCount,
    WorkflowExecutionDescription,
    WorkflowHistory,
    WorkflowQueryFailedError,
    WorkflowUpdateStage,
)
from kronicle.client._update import WorkflowExecutionAsyncIterator, WorkflowUpdateHandle, update_failure
from kronicle.common import RetryPolicy, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from kronicle.converter import DataConverter, Payload
from kronicle.exceptions import (
    CancelledError,
    RPCError,
    RPCStatusCode,
    TerminatedError,
    TimeoutError,
    TimeoutType,
    WorkflowAlreadyStartedError,
    WorkflowFailureError,
)
from kronicle.schemas import SchemaRegistry, default_registry

__all__ = ["Client", "WorkflowHandle"]

ReturnT = TypeVar("ReturnT")

AVRO_HISTORY = "application/vnd.kronicle.history+avro"
_LENGTH = struct.Struct(">I")
# Long-poll slice: the frontend caps a wait at 60 s; the HTTP timeout leaves headroom.
_POLL_S = 50.0


def _ms(value: timedelta | None, name: str) -> int:
    if value is None:
        return 0
    if not isinstance(value, timedelta):
        raise TypeError(f"{name} must be a datetime.timedelta, not {type(value).__name__}")
    if value < timedelta(0):
        raise ValueError(f"{name} must not be negative")
    return int(value.total_seconds() * 1000)


def _workflow_name(workflow: Any) -> tuple[str, Any]:
    """The type name and result type hint of ``workflow`` (a run method, a workflow class or a name)."""
    if isinstance(workflow, str):
        if not workflow:
            raise ValueError("workflow type name must not be empty")
        return workflow, None
    from kronicle.workflow import WorkflowDefinition

    defn = WorkflowDefinition.from_run_fn(workflow) if callable(workflow) and not isinstance(workflow, type) else None
    if defn is None and isinstance(workflow, type):
        defn = WorkflowDefinition.from_class(workflow)
    if defn is None:
        raise TypeError(
            f"{workflow!r} is not a @workflow.run method of a @workflow.defn class; pass MyWorkflow.run or a type name"
        )
    if defn.name is None:
        raise TypeError("a dynamic workflow has no type name; pass the type name as a string")
    return defn.name, defn.ret_type


def _handler_name(handler: Any, attr: str, kind: str) -> str:
    if isinstance(handler, str):
        if not handler:
            raise ValueError(f"{kind} name must not be empty")
        return handler
    definition = getattr(handler, attr, None)
    name = getattr(definition, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"{handler!r} is not a @workflow.{kind} method; pass the method or its name")
    return name


def _path(*parts: str) -> str:
    return "/".join(quote(p, safe="") for p in parts)


class Client:
    """A connection to a Kronicle frontend (``Client.connect``), shaped like temporalio's ``Client``.

    Also what a :class:`kronicle.worker.Worker` needs: :attr:`namespace`,
    :attr:`identity`, :attr:`data_converter`, :attr:`kafka_bootstrap_servers`
    and :meth:`fetch_history_events`.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        namespace: str,
        data_converter: DataConverter,
        identity: str,
        cluster: Mapping[str, Any],
    ) -> None:
        self._transport = transport
        self.namespace = namespace
        """The namespace every call goes to."""
        self.data_converter = data_converter
        """Converts arguments and results to payloads and back."""
        self.identity = identity
        """Recorded in the commands this client sends."""
        self.cluster = dict(cluster)
        """The frontend's ``/api/v1/cluster`` answer (Kafka bootstrap servers, topic names)."""
        self.kafka_bootstrap_servers: str = str(cluster.get("kafka_bootstrap_servers", ""))
        """Kafka bootstrap servers, learned from the frontend, for workers."""
        self._registry: SchemaRegistry | None = None

    @staticmethod
    async def connect(
        target: str = "localhost:7333",
        *,
        namespace: str = "default",
        data_converter: DataConverter = DataConverter.default,
        identity: str | None = None,
    ) -> Client:
        """Connect to the frontend at ``target`` and learn the Kafka layout from it.

        Raises:
            RPCError: the frontend cannot be reached or does not serve ``namespace``.
        """
        transport = Transport(target)
        try:
            cluster = await transport.request("GET", "/api/v1/cluster", timeout=30)
            served = cluster.get("namespace")
            if served != namespace:
                raise RPCError(
                    f"namespace {namespace!r} is not served by the frontend at {transport.base_url}"
                    f" (it serves {served!r})",
                    RPCStatusCode.NOT_FOUND,
                    code="NamespaceNotFound",
                )
        except BaseException:
            await transport.close()
            raise
        return Client(
            transport,
            namespace=namespace,
            data_converter=data_converter,
            identity=identity or f"{os.getpid()}@{socket.gethostname()}",
            cluster=cluster,
        )

    @property
    def target(self) -> str:
        """The frontend's base URL."""
        return self._transport.base_url

    async def close(self) -> None:
        """Close the HTTP connection pool (the client may not be used afterwards)."""
        await self._transport.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _ns_path(self, *parts: str) -> str:
        return "/api/v1/namespaces/" + _path(self.namespace, *parts)

    async def _payloads(self, values: Sequence[Any]) -> list[dict[str, Any]]:
        return [p.to_dict() for p in await self.data_converter.encode(list(values))]

    async def _payload_map(self, values: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
        if not values:
            return {}
        keys = list(values)
        encoded = await self.data_converter.encode([values[k] for k in keys])
        return {k: p.to_dict() for k, p in zip(keys, encoded, strict=True)}

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """A raw JSON call to the frontend (used by the CLI); errors become :class:`RPCError`."""
        return await self._transport.request(method, path, **kwargs)

    # -- starting -----------------------------------------------------------------

    async def start_workflow(
        self,
        workflow: Any,
        *args: Any,
        id: str,
        task_queue: str,
        execution_timeout: timedelta | None = None,
        run_timeout: timedelta | None = None,
        task_timeout: timedelta | None = None,
        id_reuse_policy: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy: WorkflowIDConflictPolicy = WorkflowIDConflictPolicy.UNSPECIFIED,
        memo: Mapping[str, Any] | None = None,
        search_attributes: Mapping[str, Any] | None = None,
        start_delay: timedelta | None = None,
        cron_schedule: str = "",
        retry_policy: RetryPolicy | None = None,
        request_id: str | None = None,
        start_signal: str | None = None,
        start_signal_args: Sequence[Any] = (),
        result_type: type | None = None,
    ) -> WorkflowHandle[Any]:
        """Start a workflow and return its handle once the engine has applied the start.

        ``workflow`` is a ``@workflow.run`` method (``MyWorkflow.run``) or a type name.
        With ``start_signal`` the signal is delivered to the running workflow, or
        the workflow is started with the signal as its first event (signal-with-start).
        With ``cron_schedule`` (e.g. ``"0 * * * *"``, UTC) the first run waits for the next
        scheduled time and every run is followed by the next one, as in Temporal.
        With ``retry_policy`` a failed or timed-out run is retried as a new run of the
        same workflow id (``workflow.info().attempt`` counts them); ``result()`` follows.

        Raises:
            WorkflowAlreadyStartedError: the id is taken under the id policies.
            RPCError: the frontend rejected the request (e.g. an invalid argument).
        """
        handle, _ = await self._start_workflow(
            workflow,
            args,
            wait=0.0,
            id=id,
            task_queue=task_queue,
            execution_timeout=execution_timeout,
            run_timeout=run_timeout,
            task_timeout=task_timeout,
            id_reuse_policy=id_reuse_policy,
            id_conflict_policy=id_conflict_policy,
            memo=memo,
            search_attributes=search_attributes,
            start_delay=start_delay,
            cron_schedule=cron_schedule,
            retry_policy=retry_policy,
            request_id=request_id,
            start_signal=start_signal,
            start_signal_args=start_signal_args,
            result_type=result_type,
        )
        return handle

    async def _start_workflow(
        self,
        workflow: Any,
        args: Sequence[Any],
        *,
        wait: float,
        id: str,
        task_queue: str,
        execution_timeout: timedelta | None = None,
        run_timeout: timedelta | None = None,
        task_timeout: timedelta | None = None,
        id_reuse_policy: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        id_conflict_policy: WorkflowIDConflictPolicy = WorkflowIDConflictPolicy.UNSPECIFIED,
        memo: Mapping[str, Any] | None = None,
        search_attributes: Mapping[str, Any] | None = None,
        start_delay: timedelta | None = None,
        cron_schedule: str = "",
        retry_policy: RetryPolicy | None = None,
        request_id: str | None = None,
        start_signal: str | None = None,
        start_signal_args: Sequence[Any] = (),
        result_type: type | None = None,
    ) -> tuple[WorkflowHandle[Any], dict[str, Any]]:
        """Start a workflow; with ``wait`` > 0 the frontend also waits that long for the run to close.

        Returns the handle and the frontend's answer (the Result body when ``closed`` is true).
        """
        name, ret_type = _workflow_name(workflow)
        if not id:
            raise ValueError("id must be a non-empty workflow id")
        body: dict[str, Any] = {
            "workflow_type": name,
            "task_queue": task_queue,
            "input": await self._payloads(args),
            "request_id": request_id or str(uuid.uuid4()),
            "identity": self.identity,
            "id_reuse_policy": WorkflowIDReusePolicy(id_reuse_policy).name,
            "id_conflict_policy": WorkflowIDConflictPolicy(id_conflict_policy).name,
            "execution_timeout_ms": _ms(execution_timeout, "execution_timeout"),
            "run_timeout_ms": _ms(run_timeout, "run_timeout"),
            "task_timeout_ms": _ms(task_timeout, "task_timeout"),
            "start_delay_ms": _ms(start_delay, "start_delay"),
            "memo": await self._payload_map(memo),
            "search_attributes": await self._payload_map(search_attributes),
        }
        if cron_schedule:
            body["cron_schedule"] = cron_schedule
        if retry_policy is not None:
            body["retry_policy"] = retry_policy_to_wire(retry_policy)
        try:
            if start_signal is not None:
                body["signal_input"] = await self._payloads(start_signal_args)
                answer = await self._transport.request(
                    "POST", self._ns_path("workflows", id, "signal-with-start", start_signal), body=body
                )
            else:
                answer = await self._transport.request(
                    "POST",
                    self._ns_path("workflows"),
                    body={"workflow_id": id, **body},
                    params={"wait": str(wait)} if wait else None,
                    timeout=wait + 60.0,
                )
        except FrontendError as err:
            if err.code == "WorkflowAlreadyStarted":
                raise WorkflowAlreadyStartedError(id, name, run_id=err.details.get("run_id")) from err
            raise
        run_id = str(answer.get("run_id", ""))
        handle: WorkflowHandle[Any] = WorkflowHandle(
            self,
            id,
            run_id=None,
            result_run_id=run_id,
            first_execution_run_id=run_id,
            result_type=result_type or ret_type,
        )
        return handle, answer

    async def execute_workflow(self, workflow: Any, *args: Any, **kwargs: Any) -> Any:
        """Start a workflow and wait for its result (``start_workflow`` then ``result``).

        Takes ``start_workflow``'s arguments. One HTTP request when the workflow closes within
        the frontend's wait (the start answers with the result); otherwise, and for a
        signal-with-start, the result is long-polled as ``handle.result()`` does.
        """
        if type(self).start_workflow is not Client.start_workflow:
            # A subclass that changes how workflows start (kronicle.testing's time-skipping client
            # wraps the handle, whose result() skips time) keeps its start_workflow and result().
            handle = await self.start_workflow(workflow, *args, **kwargs)
            return await handle.result()
        handle, answer = await self._start_workflow(workflow, args, wait=_POLL_S, **kwargs)
        return await handle._result(follow_runs=True, answer=answer if answer.get("closed") else None)

    def get_workflow_handle(
        self,
        workflow_id: str,
        *,
        run_id: str | None = None,
        first_execution_run_id: str | None = None,
        result_type: type | None = None,
    ) -> WorkflowHandle[Any]:
        """A handle to an existing workflow (its current run, or ``run_id``); no call is made."""
        return WorkflowHandle(
            self,
            workflow_id,
            run_id=run_id,
            result_run_id=run_id,
            first_execution_run_id=first_execution_run_id,
            result_type=result_type,
        )

    def get_workflow_handle_for(
        self, workflow: Callable[..., Any], workflow_id: str, *, run_id: str | None = None
    ) -> WorkflowHandle[Any]:
        """A handle typed by the workflow's run method (its result is decoded to the run's return type)."""
        _, ret_type = _workflow_name(workflow)
        return self.get_workflow_handle(workflow_id, run_id=run_id, result_type=ret_type)

    def list_workflows(
        self,
        query: str | None = None,
        *,
        limit: int | None = None,
        page_size: int = 1000,
        next_page_token: bytes | str | None = None,
    ) -> WorkflowExecutionAsyncIterator:
        """The executions matching a List Filter, as an async iterator (temporalio's ``list_workflows``).

        ``async for execution in client.list_workflows("WorkflowType = 'Order'"):`` fetches pages of
        ``page_size`` lazily; ``limit`` stops after that many. Served by the visibility store, which
        lags the engine by a few milliseconds.

        Raises:
            RPCError: (while iterating) ``INVALID_ARGUMENT`` for a bad query (``details["position"]``
                says where), ``UNIMPLEMENTED`` if the frontend has no visibility store.
        """
        token = next_page_token.decode() if isinstance(next_page_token, bytes) else next_page_token
        return WorkflowExecutionAsyncIterator(self, query, page_size=page_size, limit=limit, next_page_token=token)

    async def count_workflows(self, query: str | None = None) -> WorkflowExecutionCount:
        """How many executions match a List Filter; end it with ``GROUP BY ExecutionStatus`` for groups.

        Raises:
            RPCError: ``INVALID_ARGUMENT`` for a bad query, ``UNIMPLEMENTED`` without a visibility store.
        """
        params = {"query": query} if query else None
        data = await self._transport.request("GET", self._ns_path("workflow-count"), params=params)
        return WorkflowExecutionCount.from_json(data)

    # -- for workers --------------------------------------------------------------

    async def fetch_history_events(self, workflow_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every event of a run, in order, as decoded ``kronicle.workflow.HistoryEvent`` datums.

        Payload fields are raw bytes, exactly as the engine stored them (the
        history is fetched as framed Avro, not JSON). ``run_id`` "" = current run.

        Raises:
            RPCError: the run does not exist, or the frontend cannot be reached.
        """
        registry = self._registry or default_registry()
        self._registry = registry
        events: list[dict[str, Any]] = []
        first = 1
        while True:
            params = {"first_event_id": str(first), "max_events": "1000"}
            if run_id:
                params["run_id"] = run_id
            data, headers = await self._transport.request_raw(
                "GET",
                self._ns_path("workflows", workflow_id, "history"),
                params=params,
                headers={"Accept": AVRO_HISTORY},
            )
            page = _decode_history(registry, data)
            if not page:
                return events
            events.extend(page)
            run_id = run_id or headers.get("X-Kronicle-Run-Id", "")
            first = int(page[-1]["event_id"]) + 1
            if len(page) < 1000:
                return events


def _decode_history(registry: SchemaRegistry, data: bytes) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    pos = 0
    while pos < len(data):
        (length,) = _LENGTH.unpack_from(data, pos)
        pos += _LENGTH.size
        out.append(cast(dict[str, Any], registry.decode_as(data[pos : pos + length], "kronicle.workflow.HistoryEvent")))
        pos += length
    return out


class WorkflowHandle(Generic[ReturnT]):
    """A workflow (and optionally one run of it), shaped like temporalio's ``WorkflowHandle``."""

    def __init__(
        self,
        client: Client,
        id: str,
        *,
        run_id: str | None = None,
        result_run_id: str | None = None,
        first_execution_run_id: str | None = None,
        result_type: Any = None,
    ) -> None:
        self._client = client
        self._id = id
        self._run_id = run_id
        self._result_run_id = result_run_id
        self._first_execution_run_id = first_execution_run_id
        self._result_type = result_type

    @property
    def id(self) -> str:
        """Workflow id."""
        return self._id

    @property
    def run_id(self) -> str | None:
        """The run this handle targets (None: the current run)."""
        return self._run_id

    @property
    def result_run_id(self) -> str | None:
        """The run ``result()`` starts from (the started run for a handle from ``start_workflow``)."""
        return self._result_run_id

    @property
    def first_execution_run_id(self) -> str | None:
        """The first run's id, when known."""
        return self._first_execution_run_id

    def _path(self, *parts: str) -> str:
        return self._client._ns_path("workflows", self._id, *parts)

    async def signal(self, signal: Any, *args: Any, request_id: str | None = None) -> None:
        """Send a signal; it is durably recorded when this returns.

        To an open run the call returns once the signal is in the commands log (the
        engine applies it in order); in the rare race with the run closing first the
        signal is not applied (docs/http-api.md, "Signal"). A retry with the same
        ``request_id`` is applied once (within 24 h).

        Raises:
            RPCError: the workflow does not exist or has closed (``NOT_FOUND``), ...
        """
        name = _handler_name(signal, "__kronicle_signal_definition__", "signal")
        body = {
            "input": await self._client._payloads(args),
            "request_id": request_id or str(uuid.uuid4()),
            "run_id": self._run_id or "",
            "identity": self._client.identity,
        }
        await self._client._transport.request("POST", self._path("signal", name), body=body)

    async def cancel(self) -> None:
        """Request cancellation of the workflow; the workflow decides how to end."""
        body = {"run_id": self._run_id or "", "request_id": str(uuid.uuid4()), "identity": self._client.identity}
        await self._client._transport.request("POST", self._path("cancel"), body=body)

    async def terminate(self, *args: Any, reason: str | None = None) -> None:
        """Terminate the workflow at once, recording ``reason`` and ``args`` as details."""
        body = {
            "run_id": self._run_id or "",
            "reason": reason or "",
            "details": await self._client._payloads(args),
            "identity": self._client.identity,
        }
        await self._client._transport.request("POST", self._path("terminate"), body=body)

    async def describe(self) -> WorkflowExecutionDescription:
        """The run's current state."""
        params = {"run_id": self._run_id} if self._run_id else None
        data = await self._client._transport.request("GET", self._path(), params=params)
        return WorkflowExecutionDescription.from_json(data)

    async def query(
        self,
        query: Any,
        *args: Any,
        result_type: type | None = None,
        rpc_timeout: timedelta | None = None,
    ) -> Any:
        """Ask the workflow a query and return the answer (a closed workflow is replayed to answer).

        ``query`` is a ``@workflow.query`` method (its return type decodes the answer
        unless ``result_type`` is given) or a query name. A worker of the workflow's
        task queue must be running; ``rpc_timeout`` (default 10 s, at most 60 s) bounds
        the wait for its answer.

        Raises:
            WorkflowQueryFailedError: the query reached the workflow and failed (unknown name, the handler raised).
            RPCError: ``NOT_FOUND`` (no such workflow), ``DEADLINE_EXCEEDED`` (no worker answered in time), ...
        """
        name = _handler_name(query, "__kronicle_query_definition__", "query")
        if result_type is None:
            result_type = getattr(getattr(query, "__kronicle_query_definition__", None), "ret_type", None)
        timeout_ms = min(_ms(rpc_timeout, "rpc_timeout") or 10_000, 60_000)
        body = {"input": await self._client._payloads(args), "run_id": self._run_id or "", "timeout_ms": timeout_ms}
        try:
            data = await self._client._transport.request(
                "POST", self._path("query", name), body=body, timeout=timeout_ms / 1000 + 30
            )
        except FrontendError as err:
            if err.code != "QueryFailed":
                raise
            error = WorkflowQueryFailedError(err.message)
            failure = err.details.get("failure")
            if isinstance(failure, dict):
                raise error from await self._client.data_converter.decode_failure(failure)
            raise error from err
        payloads = [Payload.from_dict(p) for p in data.get("result") or ()]
        if not payloads:
            return None
        hints = [result_type] if result_type is not None else None
        return (await self._client.data_converter.decode(payloads, hints))[0]

    async def execute_update(
        self,
        update: Any,
        *args: Any,
        id: str | None = None,
        result_type: type | None = None,
    ) -> Any:
        """Send an update, wait for it to complete, and return its result.

        Raises:
            WorkflowUpdateFailedError: the validator rejected it, its handler raised, or the run closed
                first (``cause`` says which).
            RPCError: no such workflow, or it is closed (``NOT_FOUND``), too many updates in flight, ...
        """
        handle: WorkflowUpdateHandle[Any] = await self.start_update(
            update, *args, wait_for_stage=WorkflowUpdateStage.COMPLETED, id=id, result_type=result_type
        )
        return await handle.result()

    async def start_update(
        self,
        update: Any,
        *args: Any,
        wait_for_stage: WorkflowUpdateStage = WorkflowUpdateStage.ACCEPTED,
        id: str | None = None,
        result_type: type | None = None,
    ) -> WorkflowUpdateHandle[Any]:
        """Send an update and return its handle once it reached ``wait_for_stage`` (ACCEPTED or COMPLETED).

        ``update`` is a ``@workflow.update`` method (its return type decodes the result
        unless ``result_type`` is given) or an update name; ``id`` makes a retry the
        same update (a new UUID when None). Waits as long as it takes (for a worker
        to pick the update up, for the handler to finish).

        Raises:
            WorkflowUpdateFailedError: the validator rejected it (``cause`` is its failure), or the run closed first.
            RPCError: no such workflow, or it is closed (``NOT_FOUND``), too many updates in flight, ...
            ValueError: ``wait_for_stage`` is ADMITTED (as in temporalio, not supported).
        """
        stage = WorkflowUpdateStage(wait_for_stage)
        if stage == WorkflowUpdateStage.ADMITTED:
            raise ValueError(
                "wait_for_stage must be ACCEPTED or COMPLETED (ADMITTED is not supported, as in temporalio)"
            )
        name = _handler_name(update, "__kronicle_update_definition__", "update")
        if result_type is None:
            result_type = getattr(getattr(update, "__kronicle_update_definition__", None), "ret_type", None)
        update_id = id or str(uuid.uuid4())
        body = {
            "update_id": update_id,
            "input": await self._client._payloads(args),
            "run_id": self._run_id or "",
            "identity": self._client.identity,
            "wait_for_stage": stage.name,
            "timeout_ms": 50_000,
        }
        while True:
            # Sending it again with the same id is safe: the engine keeps one update per id, and
            # answers a completed one from its history.
            try:
                data = await self._client._transport.request(
                    "POST", self._path("update", name), body=body, timeout=_POLL_S + 30
                )
            except FrontendError as err:
                failed = await update_failure(self._client.data_converter, err)
                if failed is not None:
                    raise failed  # noqa: B904 - its __cause__ is the update's failure, set already
                raise
            if WorkflowUpdateStage[data["stage"]] >= stage:
                break
        return WorkflowUpdateHandle(
            self._client,
            update_id,
            self._id,
            workflow_run_id=data.get("run_id") or None,
            name=name,
            result_type=result_type,
            known_outcome=data if data["stage"] == "COMPLETED" else None,
        )

    def get_update_handle(
        self, id: str, *, workflow_run_id: str | None = None, result_type: type | None = None
    ) -> WorkflowUpdateHandle[Any]:
        """A handle on an update sent earlier (no call is made)."""
        return WorkflowUpdateHandle(
            self._client, id, self._id, workflow_run_id=workflow_run_id or self._run_id, result_type=result_type
        )

    async def fetch_history(self) -> WorkflowHistory:
        """The run's full history (current run if the handle names none)."""
        run_id = self._run_id or ""
        if not run_id:
            run_id = (await self.describe()).run_id
        events = await self._client.fetch_history_events(self._id, run_id)
        return WorkflowHistory(workflow_id=self._id, run_id=run_id, events=events)

    async def result(self, *, follow_runs: bool = True, rpc_timeout: timedelta | None = None) -> ReturnT:
        """Wait for the workflow to close and return its result.

        Raises:
            WorkflowFailureError: it failed (``cause`` is the decoded failure chain, e.g. an
                ``ActivityError`` caused by an ``ApplicationError``), was cancelled
                (``CancelledError``), terminated (``TerminatedError``) or timed out
                (``TimeoutError``).
            WorkflowContinuedAsNewError: it continued as new and ``follow_runs`` is False.
                With ``follow_runs`` (the default) the result is that of the last run of the
                chain: continue-as-new, a cron schedule's next run, a retry's next attempt.
            RPCError: the workflow does not exist, or the frontend cannot be reached.
        """
        del rpc_timeout
        return await self._result(follow_runs=follow_runs, answer=None)

    async def _result(self, *, follow_runs: bool, answer: Mapping[str, Any] | None) -> ReturnT:
        """``result()``, starting from ``answer`` (a Result body the start already brought) if given."""
        run_id = self._result_run_id or self._run_id or ""
        converter = self._client.data_converter
        while True:
            data = answer or await self._poll_result(run_id)
            answer = None
            if not data.get("closed"):
                run_id = data.get("run_id", run_id)
                continue
            run_id = data["run_id"]
            status = data["status"]
            next_run = str(data.get("new_execution_run_id") or "")
            if follow_runs and next_run:
                # Continue-as-new, a cron schedule's next run or a retry's next attempt: follow it.
                run_id = next_run
                continue
            if status == "COMPLETED":
                payloads = [Payload.from_dict(p) for p in data.get("result") or ()]
                if not payloads:
                    return cast(ReturnT, None)
                hints = [self._result_type] if self._result_type is not None else None
                values = await converter.decode(payloads, hints)
                return cast(ReturnT, values[0])
            if status == "CONTINUED_AS_NEW":
                new_run = str(data.get("new_execution_run_id", ""))
                if not follow_runs:
                    raise WorkflowContinuedAsNewError(new_run)
                run_id = new_run
                continue
            raise WorkflowFailureError(cause=await self._failure(data))

    async def _poll_result(self, run_id: str) -> Mapping[str, Any]:
        params = {"wait": str(_POLL_S)}
        if run_id:
            params["run_id"] = run_id
        data: Mapping[str, Any] = await self._client._transport.request(
            "GET", self._path("result"), params=params, timeout=_POLL_S + 30
        )
        return data

    async def _failure(self, data: Mapping[str, Any]) -> BaseException:
        converter = self._client.data_converter
        status = data["status"]

        async def details() -> list[Any]:
            payloads = [Payload.from_dict(p) for p in data.get("details") or ()]
            return await converter.decode(payloads) if payloads else []

        if status == "FAILED" and data.get("failure"):
            return await converter.decode_failure(data["failure"])
        if status == "CANCELED":
            return CancelledError("Workflow cancelled", *await details())
        if status == "TERMINATED":
            return TerminatedError(data.get("reason") or "Workflow terminated", *await details())
        if status == "TIMED_OUT":
            return TimeoutError("Workflow timed out", type=TimeoutType.START_TO_CLOSE)
        return RPCError(f"workflow closed with unexpected status {status}", RPCStatusCode.UNKNOWN)
