"""Kronicle's edges: the HTTP frontend, visibility, mirroring, Kafka wrappers and local Kafka."""
