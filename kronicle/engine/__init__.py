"""The partition processor: a pure state machine inside a Kafka transaction shell."""
