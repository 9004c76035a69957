"""The HTTP frontend: a JSON API over one namespace's engine, visibility and namespaces (``docs/http-api.md``).

Typical use::

    from kronicle.connectors.frontend import Frontend

    async with Frontend(engine, port=7333, visibility=store) as frontend:
        ...  # serve until told to stop
"""

from __future__ import annotations

from kronicle.connectors.frontend._app import DEFAULT_PORT, Frontend, create_app
from kronicle.connectors.frontend._engine import EngineLike
from kronicle.connectors.frontend._errors import ApiError
from kronicle.connectors.frontend._handlers import AVRO_HISTORY_CONTENT_TYPE, FrontendConfig
from kronicle.connectors.frontend._namespaces import (
    DEFAULT_NAMESPACE_RETENTION_MS,
    NamespaceAlreadyExistsError,
    NamespaceInfo,
    NamespaceNotFoundError,
    NamespaceRegistry,
)
from kronicle.connectors.frontend._openapi import openapi_document

__all__ = [
    "AVRO_HISTORY_CONTENT_TYPE",
    "DEFAULT_NAMESPACE_RETENTION_MS",
    "DEFAULT_PORT",
    "ApiError",
    "EngineLike",
    "Frontend",
    "FrontendConfig",
    "NamespaceAlreadyExistsError",
    "NamespaceInfo",
    "NamespaceNotFoundError",
    "NamespaceRegistry",
    "create_app",
    "openapi_document",
]
