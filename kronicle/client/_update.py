"""``WorkflowUpdateHandle`` and the listing iterator: the client's handles on updates and on visibility pages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from kronicle.client._http import FrontendError
from kronicle.client._types import WorkflowExecution, WorkflowUpdateFailedError
from kronicle.converter import DataConverter, Payload

if TYPE_CHECKING:
    from kronicle.client._client import Client

__all__ = ["WorkflowExecutionAsyncIterator", "WorkflowUpdateHandle", "update_failure"]

ReturnT = TypeVar("ReturnT")

# Long-poll slice: the frontend caps a wait at 60 s; the HTTP timeout leaves headroom.
_POLL_S = 50.0


async def update_failure(converter: DataConverter, err: FrontendError) -> WorkflowUpdateFailedError | None:
    """The :class:`WorkflowUpdateFailedError` for a rejected or aborted update, or None for other errors."""
    if err.code not in ("UpdateRejected", "UpdateAborted"):
        return None
    failure = err.details.get("failure")
    cause: BaseException = await converter.decode_failure(failure) if isinstance(failure, dict) else err
    return WorkflowUpdateFailedError(cause)


class WorkflowUpdateHandle(Generic[ReturnT]):
    """A handle on one update of a workflow (``WorkflowHandle.start_update`` / ``get_update_handle``)."""

    def __init__(
        self,
        client: Client,
        id: str,
        workflow_id: str,
        *,
        workflow_run_id: str | None = None,
        name: str | None = None,
        result_type: type | None = None,
        known_outcome: Mapping[str, Any] | None = None,
    ) -> None:
        self._client = client
        self._id = id
        self._workflow_id = workflow_id
        self._workflow_run_id = workflow_run_id
        self._name = name
        self._result_type = result_type
        self._known = dict(known_outcome) if known_outcome is not None else None

    @property
    def id(self) -> str:
        """The update id."""
        return self._id

    @property
    def workflow_id(self) -> str:
        """The workflow it was sent to."""
        return self._workflow_id

    @property
    def workflow_run_id(self) -> str | None:
        """The run it was sent to, when known."""
        return self._workflow_run_id

    @property
    def name(self) -> str | None:
        """The update's name, when known."""
        return self._name

    @property
    def result_type(self) -> type | None:
        """The type its result is decoded to (None: as the converter decodes JSON)."""
        return self._result_type

    async def result(self) -> ReturnT:
        """Wait for the update to complete and return its result.

        Raises:
            WorkflowUpdateFailedError: the handler raised, or the validator rejected the update
                (``cause`` is the decoded failure).
            RPCError: the run has no such update (never sent, or aborted when the run closed), or
                the frontend cannot be reached.
        """
        outcome = self._known
        while outcome is None or outcome.get("stage") != "COMPLETED":
            params = {"wait": str(_POLL_S), "wait_for_stage": "COMPLETED"}
            if self._workflow_run_id:
                params["run_id"] = self._workflow_run_id
            path = self._client._ns_path("workflows", self._workflow_id, "updates", self._id)
            try:
                outcome = await self._client._transport.request("GET", path, params=params, timeout=_POLL_S + 30)
            except FrontendError as err:
                failed = await update_failure(self._client.data_converter, err)
                if failed is not None:
                    raise failed  # noqa: B904 - its __cause__ is the update's failure, set already
                raise
            self._workflow_run_id = outcome.get("run_id") or self._workflow_run_id
        self._known = outcome
        converter = self._client.data_converter
        if outcome.get("failure"):
            raise WorkflowUpdateFailedError(await converter.decode_failure(outcome["failure"]))
        payloads = [Payload.from_dict(p) for p in outcome.get("result") or ()]
        if not payloads:
            return cast(ReturnT, None)
        hints = [self._result_type] if self._result_type is not None else None
        return cast(ReturnT, (await converter.decode(payloads, hints))[0])


class WorkflowExecutionAsyncIterator:
    """Pages through ``Client.list_workflows``: ``async for execution in client.list_workflows(...)``.

    Pages are fetched lazily, ``page_size`` at a time; ``limit`` stops after that many executions.
    """

    def __init__(
        self, client: Client, query: str | None, *, page_size: int, limit: int | None, next_page_token: str | None
    ) -> None:
        if not 1 <= page_size <= 1000:
            raise ValueError(f"page_size must be between 1 and 1000, not {page_size}")
        self._client = client
        self._query = query or ""
        self._page_size = page_size
        self._limit = limit
        self._yielded = 0
        self.next_page_token: str | None = next_page_token
        """Token of the page after :attr:`current_page` (None: no more pages)."""
        self.current_page: Sequence[WorkflowExecution] | None = None
        """The page fetched last."""
        self._index = 0
        self._started = next_page_token is not None

    async def fetch_next_page(self, *, page_size: int | None = None) -> None:
        """Fetch the next page into :attr:`current_page` (empty when there are no more)."""
        if self._started and not self.next_page_token:
            self.current_page = []
            self._index = 0
            return
        params = {"page_size": str(page_size or self._page_size)}
        if self._query:
            params["query"] = self._query
        if self.next_page_token:
            params["next_page_token"] = self.next_page_token
        data = await self._client._transport.request("GET", self._client._ns_path("workflows"), params=params)
        self._started = True
        self.current_page = [WorkflowExecution.from_json(e) for e in data.get("executions") or ()]
        self.next_page_token = data.get("next_page_token") or None
        self._index = 0

    def __aiter__(self) -> WorkflowExecutionAsyncIterator:
        return self

    async def __anext__(self) -> WorkflowExecution:
        if self._limit is not None and self._yielded >= self._limit:
            raise StopAsyncIteration
        while self.current_page is None or self._index >= len(self.current_page):
            if self.current_page is not None and not self.next_page_token:
                raise StopAsyncIteration
            await self.fetch_next_page()
            if not self.current_page and not self.next_page_token:
                raise StopAsyncIteration
        execution = self.current_page[self._index]
        self._index += 1
        self._yielded += 1
        return execution
