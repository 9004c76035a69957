"""Public shared types (``RetryPolicy``, policies, enums). Not built yet: see the SDK issue."""
