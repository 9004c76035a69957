"""Testing support: ``WorkflowEnvironment`` (SDK issue) and local Kafka for tests."""
