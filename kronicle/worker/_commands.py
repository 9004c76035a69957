"""Workflow commands as the engine's ``WorkerCommand`` datums (for ``CompleteWorkflowTask.commands``).

Payloads are codec-encoded here; failures go through :mod:`kronicle._wire`.
The other direction (history events to activations) is :mod:`kronicle.worker._history`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from kronicle import _wire
from kronicle._wire import duration_to_ms as _ms
from kronicle.converter import DataConverter, Failure, Payload
from kronicle.engine.workflow.schema_gen import attributes_field
from kronicle.worker import _activation as act
from kronicle.worker._history import PATCH_MARKER, RunHistory, UnsupportedCommandError

__all__ = ["commands_to_wire"]


def _command(command_type: str, **attributes: Any) -> dict[str, Any]:
    return {"command_type": command_type, attributes_field(command_type, "command"): attributes}


async def commands_to_wire(
    commands: Sequence[act.Command],
    *,
    run: RunHistory,
    scheduled_event_id: int,
    data_converter: DataConverter,
    predicted: dict[int, int] | None = None,
) -> list[dict[str, Any]]:
    """The ``WorkerCommand`` datums of a live completion's commands, payloads codec-encoded.

    Args:
        commands: The completion's commands.
        run: The run (for scheduled event ids of activities and children in its history).
        scheduled_event_id: The task's ``WorkflowTaskScheduled`` id (event ids are predicted from it).
        data_converter: Converter and codec.
        predicted: Filled with ``activity seq -> ActivityTaskScheduled id`` this completion will write.

    Raises:
        UnsupportedCommandError: A command the engine has no counterpart for yet.
    """
    dc = data_converter
    conv = dc.payload_converter

    async def payloads(items: Sequence[Payload]) -> list[bytes]:
        return _wire.payloads_to_bytes(await dc.encode_payloads(items))

    async def payload_map(items: Mapping[str, Payload] | None) -> dict[str, bytes]:
        keys = list(items or {})
        encoded = await payloads([(items or {})[k] for k in keys])
        return dict(zip(keys, encoded, strict=True))

    async def failure(f: Failure) -> dict[str, Any]:
        copy: Failure = _deep_copy(f)
        await dc._map_failure_payloads(copy, dc.encode_payloads)
        return _wire.failure_to_wire(copy)

    out: list[dict[str, Any]] = []
    # Events of this completion start after WorkflowTaskStarted (S+1) and WorkflowTaskCompleted (S+2).
    next_event = scheduled_event_id + 3
    if predicted is None:
        predicted = {}
    children_now: dict[int, str] = {}
    for c in commands:
        match c:
            case act.ScheduleActivity():
                predicted[c.seq] = next_event
                out.append(
                    _command(
                        "ScheduleActivityTask",
                        activity_id=c.activity_id,
                        activity_type=c.activity_type,
                        task_queue=c.task_queue,
                        header={},
                        input=await payloads(c.args),
                        schedule_to_close_timeout_ms=_ms(c.schedule_to_close_timeout),
                        schedule_to_start_timeout_ms=_ms(c.schedule_to_start_timeout),
                        start_to_close_timeout_ms=_ms(c.start_to_close_timeout),
                        heartbeat_timeout_ms=_ms(c.heartbeat_timeout),
                        retry_policy=_wire.retry_policy_to_wire(c.retry_policy),
                    )
                )
            case act.RequestCancelActivity():
                event_id = run.activity_scheduled_event_id(c.seq, predicted)
                out.append(_command("RequestCancelActivityTask", scheduled_event_id=event_id))
            case act.StartTimer():
                # The engine wants a positive duration; asyncio.sleep(0)-like timers fire after 1 ms.
                duration = max(1, _ms(c.duration))
                out.append(_command("StartTimer", timer_id=str(c.seq), start_to_fire_timeout_ms=duration))
            case act.CancelTimer():
                out.append(_command("CancelTimer", timer_id=str(c.seq)))
            case act.CompleteWorkflow():
                out.append(_command("CompleteWorkflowExecution", result=await payloads([c.result])))
            case act.FailWorkflow():
                out.append(_command("FailWorkflowExecution", failure=await failure(c.failure)))
            case act.CancelWorkflowExecution():
                out.append(_command("CancelWorkflowExecution", details=[]))
            case act.ContinueAsNew():
                search = None
                if c.search_attributes is not None:
                    search = await payload_map({k: conv.to_payload(v) for k, v in c.search_attributes.items()})
                out.append(
                    _command(
                        "ContinueAsNewWorkflowExecution",
                        workflow_type=c.workflow_type,
                        task_queue=c.task_queue,
                        input=await payloads(c.args),
                        workflow_run_timeout_ms=_ms(c.run_timeout),
                        workflow_task_timeout_ms=_ms(c.task_timeout),
                        backoff_start_interval_ms=0,
                        header={},
                        memo=None if c.memo is None else await payload_map(c.memo),
                        search_attributes=search,
                    )
                )
            case act.SetPatchMarker():
                details = {
                    "patch_id": _wire.payloads_to_bytes([conv.to_payload(c.patch_id)]),
                    "deprecated": _wire.payloads_to_bytes([conv.to_payload(c.deprecated)]),
                }
                out.append(_command("RecordMarker", marker_name=PATCH_MARKER, details=details, header={}, failure=None))
            case act.UpsertSearchAttributes():
                values = {k: conv.to_payload(v) for k, v in c.search_attributes.items()}
                out.append(_command("UpsertWorkflowSearchAttributes", search_attributes=await payload_map(values)))
            case act.StartChildWorkflow():
                children_now[c.seq] = c.workflow_id
                out.append(
                    _command(
                        "StartChildWorkflowExecution",
                        workflow_id=c.workflow_id,
                        workflow_type=c.workflow_type,
                        task_queue=c.task_queue,
                        input=await payloads(c.args),
                        workflow_execution_timeout_ms=_ms(c.execution_timeout),
                        workflow_run_timeout_ms=_ms(c.run_timeout),
                        workflow_task_timeout_ms=_ms(c.task_timeout),
                        parent_close_policy="TERMINATE"
                        if c.parent_close_policy.name == "UNSPECIFIED"
                        else c.parent_close_policy.name,
                        workflow_id_reuse_policy=c.id_reuse_policy.name,
                        header={},
                        memo=await payload_map(c.memo),
                        search_attributes=await payload_map(
                            {k: conv.to_payload(v) for k, v in (c.search_attributes or {}).items()}
                        ),
                        cron_schedule=c.cron_schedule or "",
                    )
                )
            case act.SignalExternalWorkflow():
                out.append(
                    _command(
                        "SignalExternalWorkflowExecution",
                        workflow_id=c.workflow_id,
                        run_id=c.run_id or "",
                        signal_name=c.signal_name,
                        input=await payloads(c.args),
                        header={},
                        child_workflow_only=c.child_workflow_only,
                    )
                )
            case act.RequestCancelExternalWorkflow():
                out.append(
                    _command(
                        "RequestCancelExternalWorkflowExecution",
                        workflow_id=c.workflow_id,
                        run_id=c.run_id or "",
                        reason="",
                        child_workflow_only=False,
                    )
                )
            case act.CancelChildWorkflow():
                # As in Temporal: a cancel request restricted to this workflow's child.
                out.append(
                    _command(
                        "RequestCancelExternalWorkflowExecution",
                        workflow_id=run.child_workflow_id(c.seq, children_now),
                        run_id="",
                        reason="",
                        child_workflow_only=True,
                    )
                )
            case act.UpdateResponse():
                out.append(
                    _command(
                        "UpdateResponse",
                        update_id=c.update_id,
                        outcome=c.kind.upper(),
                        result=[] if c.result is None else await payloads([c.result]),
                        failure=None if c.failure is None else await failure(c.failure),
                    )
                )
                if c.kind == "accepted":
                    next_event += 1  # WorkflowExecutionUpdateAccepted
                elif c.kind == "completed":
                    next_event += 1  # WorkflowExecutionUpdateCompleted
                continue
            case act.RespondToQuery():
                continue  # answered through QueryTask, never inside a completion
            case _:
                raise UnsupportedCommandError(
                    f"{type(c).__name__} is not supported by the Kronicle engine yet; remove it from the workflow "
                    "(see docs/worker.md, 'Not done')"
                )
        next_event += 1
    return out


def _deep_copy(failure: Failure) -> Failure:
    copied: Failure = json.loads(json.dumps(failure))
    return copied
