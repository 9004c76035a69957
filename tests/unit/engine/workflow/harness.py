"""A test bench for the workflow handler: real Avro codec, in-memory context, a timer-firing clock.

Every command is encoded with its real schema and decoded back before the
handler sees it, and every record and event the handler produces is encoded
with the real schemas, so a datum that does not fit its schema fails the test.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import fastavro

from kronicle.engine.context import MemoryContext, timer_key
from kronicle.engine.handler import CommandRecord, InvalidCommand
from kronicle.engine.workflow import WorkflowHandler, WorkflowOptions, WorkflowTopics, describe, read_history
from kronicle.engine.workflow.schema_gen import SCHEMA_DIR, attributes_field

NS = "kronicle.workflow."
T0 = 1_700_000_000_000
_HEADER = struct.Struct(">bI")


class Codec:
    """A minimal stand-in for the schema registry: Confluent framing over the workflow schemas."""

    def __init__(self, directory: Path = SCHEMA_DIR) -> None:
        manifest = json.loads((directory / "ids.json").read_text())
        self.by_name: dict[str, tuple[int, Any]] = {}
        self.by_id: dict[int, tuple[str, Any]] = {}
        for name, versions in manifest.items():
            entry = versions[-1]
            schema = fastavro.parse_schema(json.loads((directory / entry["file"]).read_text()), named_schemas={})
            self.by_name[name] = (entry["id"], schema)
            self.by_id[entry["id"]] = (name, schema)

    def encode(self, name: str, datum: Any) -> bytes:
        schema_id, schema = self.by_name[name]
        buf = io.BytesIO()
        buf.write(_HEADER.pack(0, schema_id))
        fastavro.schemaless_writer(buf, schema, datum)
        return buf.getvalue()

    def decode(self, data: bytes) -> tuple[str, Any]:
        _, schema_id = _HEADER.unpack_from(data)
        name, schema = self.by_id[schema_id]
        return name, fastavro.schemaless_reader(io.BytesIO(data[_HEADER.size :]), schema, None)


CODEC = Codec()


class Bench:
    """The handler on a MemoryContext, with a clock that fires due timers as time advances."""

    def __init__(self, options: WorkflowOptions | None = None, namespace: str = "default") -> None:
        self.topics = WorkflowTopics(namespace)
        self.handler = WorkflowHandler(topics=self.topics, encode=CODEC.encode, decode=CODEC.decode, options=options)
        self.ctx = MemoryContext(partition=0, now_ms=T0)
        self.offset = 0
        self._decoded: dict[int, Any] = {}
        self._delivered: set[int] = set()

    @property
    def now(self) -> int:
        return self.ctx.now_ms

    # -- input -------------------------------------------------------------------

    def send(self, name: str, value: dict[str, Any], *, key: bytes | None = None) -> None:
        """Encode ``value`` as command ``name``, decode it back and apply it (commit or drop on InvalidCommand)."""
        decoded_name, datum = CODEC.decode(CODEC.encode(NS + name, value))
        record = CommandRecord(
            partition=0,
            offset=self.offset,
            key=key if key is not None else value["workflow_id"].encode(),
            schema=decoded_name,
            value=datum,
            headers=(),
            timestamp_ms=self.now,
        )
        self.offset += 1
        try:
            self.handler.handle(self.ctx, record)
        except InvalidCommand:
            self._drop()
            raise
        self.ctx.commit()

    def deliver(self) -> int:
        """Apply the commands the handler sent to the commands topic (to other workflows), until none are left."""
        topic = self.topics.commands
        n = 0
        while True:
            pending = [
                (i, rec)
                for i, rec in enumerate(self.ctx.effects.outputs)
                if rec.topic == topic and i not in self._delivered and rec.value is not None
            ]
            if not pending:
                return n
            for i, rec in pending:
                self._delivered.add(i)
                assert rec.value is not None
                name, value = CODEC.decode(rec.value)
                assert rec.key == value["workflow_id"].encode()
                self.send(name.removeprefix(NS), value)
                n += 1

    def _drop(self) -> None:
        self.ctx.writes = {}
        self.ctx.outputs = []
        self.ctx.timer_ops = []

    def advance(self, ms: int) -> None:
        """Move the clock forward by ``ms``, firing every timer that comes due, in due order, at its due time."""
        target = self.now + ms
        while True:
            due = self.next_timer()
            if due is None or due[0] > target:
                break
            due_ms, key, timer_id, payload = due
            self.ctx.set_now(max(self.now, due_ms))
            # What the shell does in the transaction that appends TimerFired.
            self.ctx.delete("timer_ids", timer_id)
            self.ctx.delete("timers", timer_key(due_ms, timer_id))
            self.ctx.commit()
            self.handler.on_timer(self.ctx, key, timer_id, payload)
            self.ctx.commit()
        self.ctx.set_now(target)

    def next_timer(self) -> tuple[int, bytes, bytes, bytes] | None:
        timers = sorted((k, v) for (cf, k), v in self.ctx.state.items() if cf == "timers")
        if not timers:
            return None
        tkey, _ = timers[0]
        due_ms = struct.unpack(">q", tkey[:8])[0]
        for key, timer_id, payload in self.ctx.due_timers(due_ms):
            if timer_id == tkey[8:]:
                return due_ms, key, timer_id, payload
        raise AssertionError("timer index inconsistent")

    def timer_ids(self) -> set[bytes]:
        """Ids of the armed timers (from the ``timers`` family, which holds every one)."""
        return {k[8:] for (cf, k) in self.ctx.state if cf == "timers"}

    def retention_timers(self) -> set[bytes]:
        return {t for t in self.timer_ids() if t.endswith(b"|retention|")}

    # -- output ------------------------------------------------------------------

    def records(self, topic: str) -> list[tuple[bytes | None, dict[str, Any]]]:
        """(key, decoded value) of every record emitted to ``topic`` so far."""
        out = []
        for i, rec in enumerate(self.ctx.effects.outputs):
            if rec.topic == topic and rec.value is not None:
                if i not in self._decoded:
                    self._decoded[i] = CODEC.decode(rec.value)[1]
                out.append((rec.key, self._decoded[i]))
        return out

    def workflow_tasks(self, queue: str = "q") -> list[dict[str, Any]]:
        # QueryTask records share the topic; workflow tasks are the ones with a scheduled event.
        return [v for _, v in self.records(self.topics.workflow_tasks(queue)) if "scheduled_event_id" in v]

    def activity_tasks(self, queue: str = "q") -> list[dict[str, Any]]:
        return [v for _, v in self.records(self.topics.activity_tasks(queue))]

    def last_task(self, workflow_id: str, queue: str = "q") -> dict[str, Any]:
        tasks = [t for t in self.workflow_tasks(queue) if t["workflow_id"] == workflow_id]
        return tasks[-1]

    def visibility(self) -> list[tuple[bytes | None, dict[str, Any]]]:
        return self.records(self.topics.visibility)

    def history_batches(self) -> list[dict[str, Any]]:
        return [v for _, v in self.records(self.topics.history)]

    def run(self, workflow_id: str, run_id: str = "") -> dict[str, Any]:
        state = describe(self.get, workflow_id, run_id)
        assert state is not None, f"no run of {workflow_id}"
        return state

    def describe_run(self, run_id: str) -> dict[str, Any]:
        """A run's state by run id alone."""
        from kronicle.engine.workflow._state import loads

        raw = self.get("wf_runs", run_id.encode())
        assert raw is not None
        state: dict[str, Any] = loads(raw)
        return state

    def get(self, cf: str, key: bytes) -> bytes | None:
        return self.ctx.state.get((cf, key))

    def history(self, workflow_id: str, run_id: str = "") -> list[dict[str, Any]]:
        return read_history(self.get, CODEC.decode, run_id or self.run(workflow_id)["run_id"])

    def types(self, workflow_id: str, run_id: str = "") -> list[str]:
        return [e["event_type"] for e in self.history(workflow_id, run_id)]

    def snapshot(self) -> tuple[dict[Any, bytes], int]:
        return dict(self.ctx.state), len(self.ctx.effects.outputs)

    # -- conveniences ------------------------------------------------------------

    def start(self, workflow_id: str = "wf", **fields: Any) -> str:
        value = {
            "workflow_id": workflow_id,
            "workflow_type": "Greeting",
            "task_queue": "q",
            "request_id": f"req-{workflow_id}",
            **fields,
        }
        self.send("StartWorkflow", value)
        return str(self.run(workflow_id)["run_id"])

    def complete_task(
        self,
        workflow_id: str = "wf",
        commands: list[dict[str, Any]] | None = None,
        task: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        task = task or self.last_task(workflow_id)
        self.send(
            "CompleteWorkflowTask",
            {
                "workflow_id": workflow_id,
                "run_id": task["run_id"],
                "scheduled_event_id": task["scheduled_event_id"],
                "attempt": task["attempt"],
                "started_time_ms": self.now,
                "identity": "worker-1",
                "commands": commands or [],
                **fields,
            },
        )

    def fail_task(self, workflow_id: str = "wf", task: dict[str, Any] | None = None, **fields: Any) -> None:
        task = task or self.last_task(workflow_id)
        self.send(
            "FailWorkflowTask",
            {
                "workflow_id": workflow_id,
                "run_id": task["run_id"],
                "scheduled_event_id": task["scheduled_event_id"],
                "attempt": task["attempt"],
                "started_time_ms": self.now,
                "identity": "worker-1",
                "cause": "NON_DETERMINISTIC_ERROR",
                "failure": failure("nondeterminism", type_="NondeterminismError"),
                **fields,
            },
        )

    def activity_result(self, name: str, task: dict[str, Any], **fields: Any) -> None:
        """Send an activity command (CompleteActivityTask, FailActivityTask...) for ``task``."""
        self.send(
            name,
            {
                "workflow_id": task["workflow_id"],
                "run_id": task["run_id"],
                "scheduled_event_id": task["scheduled_event_id"],
                "attempt": task["attempt"],
                "started_time_ms": self.now,
                "identity": "aworker",
                **fields,
            },
        )


def command(command_type: str, **attrs: Any) -> dict[str, Any]:
    """A WorkerCommand datum."""
    return {"command_type": command_type, attributes_field(command_type, "command"): attrs}


def schedule_activity(activity_id: str = "a1", **attrs: Any) -> dict[str, Any]:
    fields = {"activity_type": "compose", "input": [b"x"], "start_to_close_timeout_ms": 10_000, **attrs}
    return command("ScheduleActivityTask", activity_id=activity_id, **fields)


def failure(message: str = "boom", *, type_: str = "ValueError", non_retryable: bool = False) -> dict[str, Any]:
    return {
        "message": message,
        "type": type_,
        "non_retryable": non_retryable,
        "failure_type": "application",
        "stack_trace": "Traceback...",
        "source": "PythonSDK",
    }


def attrs(event: dict[str, Any]) -> dict[str, Any]:
    """The attributes of a decoded history event."""
    value: dict[str, Any] = event[attributes_field(event["event_type"])]
    return value
