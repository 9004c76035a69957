#!/usr/bin/env bash
# Write a Kronicle StartWorkflow command (Confluent-framed Avro, schema version 1) to stdout,
# encoded by hand, so that a shell and kcat can start a workflow (docs/kafka-ingress.md):
#
#   examples/kcat_start.sh greet-1 GreetingWorkflow greetings start-greet-1 '"World"' > start.bin
#   kcat -P -b localhost:9092 -t kronicle.default.commands -k greet-1 \
#        -X topic.partitioner=murmur2_random start.bin
#
# Arguments: WORKFLOW_ID WORKFLOW_TYPE TASK_QUEUE REQUEST_ID [JSON_ARGUMENT]
# The schema id is looked up from the registry (REGISTRY, default http://localhost:7333) when curl
# can reach it, else it is 100, the pinned id of kronicle.workflow.StartWorkflow v1.
# tests/integration/ingress runs this script and starts a workflow with its output.
set -euo pipefail
export LC_ALL=C  # ${#s} counts bytes, printf writes bytes

if (($# < 4)); then
    sed -n '2,12p' "$0" >&2
    exit 2
fi
workflow_id=$1 workflow_type=$2 task_queue=$3 request_id=$4 argument=${5-}

byte() { printf "\\$(printf '%03o' "$1")"; }
long() { # Avro int/long: zigzag, then 7-bit groups, low first (non-negative values only here)
    local n=$(($1 * 2))
    while ((n >= 128)); do
        byte $(((n & 127) | 128))
        n=$((n >> 7))
    done
    byte "$n"
}
str() { long "${#1}"; printf '%s' "$1"; }  # Avro string or bytes: length, then the bytes

schema_id=100
if [[ -n ${REGISTRY-} ]] && answer=$(curl -fsS "$REGISTRY/subjects/kronicle.workflow.StartWorkflow/versions/1"); then
    schema_id=$(sed -E 's/.*"id":([0-9]+).*/\1/' <<<"$answer")
fi

# Header: magic byte 0 and the schema id as 4 bytes, big-endian.
byte 0
for shift in 24 16 8 0; do byte $(((schema_id >> shift) & 255)); done

str "$workflow_id"
str "$workflow_type"
str "$task_queue"
if [[ -n $argument ]]; then
    # input: an array of one payload; a payload is the Avro record
    # kronicle.Payload {metadata: {"encoding": "json/plain"}, data: <the JSON text>}.
    payload_length=$((1 + 1 + 8 + 1 + 10 + 1 + ${#argument} + $(long "${#argument}" | wc -c)))
    long 1
    long "$payload_length"
    long 1 && str encoding && str json/plain && long 0  # metadata map: one entry, then the end
    str "$argument"                                     # data
    long 0                                              # end of the input array
else
    long 0                                              # no input
fi
str "$request_id"  # the run id is derived from it: sending this file twice starts one run
str ""             # identity
long 0             # id_reuse_policy: ALLOW_DUPLICATE
long 0             # id_conflict_policy: UNSPECIFIED
long 0             # execution_timeout_ms
long 0             # run_timeout_ms
long 0             # task_timeout_ms (0 = 10 s)
long 0             # start_delay_ms
long 0             # retry_policy: null
long 0             # memo: {}
long 0             # search_attributes: {}
long 0             # header: {}
long 0             # parent: null
long 0             # reply_to: null
