"""Avro schemas (``*.avsc``) and their Confluent-framed encoding."""
