"""Start and signal Kronicle workflows from a plain confluent-kafka producer (docs/kafka-ingress.md).

Nothing from Kronicle is imported: the commands are Avro records serialized by
the stock Confluent ``AvroSerializer``, which finds their schema ids in the
Kronicle frontend's schema registry endpoint. Any language with a Confluent
Avro serializer does the same. ``tests/integration/ingress`` runs this file.

Run it against ``kronicle server start-dev`` (frontend on 7333, Kafka as printed)::

    python examples/kafka_ingress.py --kafka localhost:9092 --registry http://localhost:7333 \\
        start greet-1 GreetingWorkflow greetings '"World"'
    python examples/kafka_ingress.py --kafka localhost:9092 --registry http://localhost:7333 \\
        signal greet-1 approve
"""

from __future__ import annotations

import argparse
import io
import json
import uuid
from typing import Any

import fastavro
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

# A workflow argument is "a payload": the Avro encoding of this record (no framing),
# carried in the command's `input` list. json/plain is what Kronicle's SDK decodes by default.
PAYLOAD_SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "Payload",
        "namespace": "kronicle",
        "fields": [
            {"name": "metadata", "type": {"type": "map", "values": "bytes"}, "default": {}},
            {"name": "data", "type": "bytes", "default": ""},
        ],
    }
)


def payload(value: Any) -> bytes:
    """One workflow argument as a Kronicle payload: its JSON text, tagged ``json/plain``."""
    out = io.BytesIO()
    fastavro.schemaless_writer(
        out, PAYLOAD_SCHEMA, {"metadata": {"encoding": b"json/plain"}, "data": json.dumps(value).encode()}
    )
    return out.getvalue()


class CommandProducer:
    """Produces StartWorkflow and SignalWorkflow commands to ``kronicle.<namespace>.commands``."""

    def __init__(self, kafka: str, registry_url: str, namespace: str = "default") -> None:
        self.topic = f"kronicle.{namespace}.commands"
        registry = SchemaRegistryClient({"url": registry_url})
        self._serializers = {}
        for name in ("StartWorkflow", "SignalWorkflow"):
            # The schema as the registry serves it; the serializer looks its id up under the
            # topic's subject (kronicle.<ns>.commands-value) and never registers anything.
            schema = registry.get_latest_version(f"kronicle.workflow.{name}").schema
            self._serializers[name] = AvroSerializer(registry, schema.schema_str, conf={"auto.register.schemas": False})
        # murmur2_random places keys as the Java client and Kronicle do: a workflow's commands
        # must land on its partition. Idempotence keeps producer retries from duplicating records.
        self._producer = Producer(
            {"bootstrap.servers": kafka, "partitioner": "murmur2_random", "enable.idempotence": True}
        )

    def _send(self, name: str, command: dict[str, Any]) -> None:
        value = self._serializers[name](command, SerializationContext(self.topic, MessageField.VALUE))
        # The key is the workflow id as plain UTF-8 bytes (no schema).
        self._producer.produce(self.topic, key=command["workflow_id"].encode(), value=value)

    def start(self, workflow_id: str, workflow_type: str, task_queue: str, *args: Any, request_id: str = "") -> str:
        """Start a workflow; returns the request id (send it again to retry safely)."""
        request_id = request_id or str(uuid.uuid4())
        command = {
            "workflow_id": workflow_id,
            "workflow_type": workflow_type,
            "task_queue": task_queue,
            "input": [payload(a) for a in args],
            "request_id": request_id,  # the run id is derived from it: a retried start is a no-op
        }
        self._send("StartWorkflow", command)
        return request_id

    def signal(self, workflow_id: str, signal_name: str, *args: Any, request_id: str = "") -> str:
        """Signal a running workflow; returns the request id (a repeat within 24 h is applied once)."""
        request_id = request_id or str(uuid.uuid4())
        command = {
            "workflow_id": workflow_id,
            "signal_name": signal_name,
            "input": [payload(a) for a in args],
            "request_id": request_id,
        }
        self._send("SignalWorkflow", command)
        return request_id

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every command is acknowledged by Kafka."""
        if self._producer.flush(timeout):
            raise RuntimeError("some commands were not delivered; send them again with the same request ids")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kafka", default="localhost:9092")
    parser.add_argument("--registry", default="http://localhost:7333", help="the Kronicle frontend")
    parser.add_argument("--namespace", default="default")
    sub = parser.add_subparsers(dest="what", required=True)
    start = sub.add_parser("start")
    start.add_argument("workflow_id")
    start.add_argument("workflow_type")
    start.add_argument("task_queue")
    start.add_argument("args", nargs="*", help="JSON values")
    signal = sub.add_parser("signal")
    signal.add_argument("workflow_id")
    signal.add_argument("signal_name")
    signal.add_argument("args", nargs="*", help="JSON values")
    for p in (start, signal):
        p.add_argument("--request-id", default="")
    ns = parser.parse_args()
    producer = CommandProducer(ns.kafka, ns.registry, ns.namespace)
    args = [json.loads(a) for a in ns.args]
    if ns.what == "start":
        rid = producer.start(ns.workflow_id, ns.workflow_type, ns.task_queue, *args, request_id=ns.request_id)
    else:
        rid = producer.signal(ns.workflow_id, ns.signal_name, *args, request_id=ns.request_id)
    producer.flush()
    print(f"sent {ns.what} {ns.workflow_id} (request id {rid})")


if __name__ == "__main__":
    main()
