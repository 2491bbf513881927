"""SERVER spans for gRPC services (AgentService, the example upstreams), parented by the caller's
``traceparent``: opentelemetry-instrumentation-grpc's aio interceptor, limited to ``services``
so health checks and reflection (probes, discovery) do not flood the traces."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters


def server_spans(services: Iterable[str]) -> grpc.aio.ServerInterceptor:
    """The interceptor making one SERVER span per call of ``services`` (full names)."""
    only = filters.any_of(*(filters.service_name(name) for name in services))
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(filter_=only)
    return interceptor
