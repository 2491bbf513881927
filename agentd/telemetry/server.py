"""SERVER spans for gRPC services (AgentService, the example upstreams), parented by the caller's
``traceparent``."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

# A proxy until a provider is installed, so module import order does not matter.
tracer = trace.get_tracer("agentd")

# Server span status is ERROR only for codes that mean the server failed (RPC conventions).
_SERVER_ERRORS = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}


class ServerSpans(grpc.aio.ServerInterceptor):
    """A SERVER span per unary-request call of ``services``, parented by the caller's traceparent.

    Written here because opentelemetry-instrumentation-grpc is not a dependency; health and
    reflection calls are left out so probes do not flood the traces.
    """

    def __init__(self, services: Iterable[str]) -> None:
        self._prefixes = tuple(f"/{s}/" for s in services)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method or ""
        if handler is None or handler.request_streaming or not method.startswith(self._prefixes):
            return handler
        carrier = {
            str(k): v
            for k, v in (details.invocation_metadata or ())  # type: ignore[attr-defined]
            if isinstance(v, str)
        }
        parent = propagate.extract(carrier)
        service, _, name = method[1:].rpartition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}

        def start() -> Any:
            return tracer.start_as_current_span(
                method[1:],
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            )

        if handler.response_streaming:
            stream: Callable[..., Any] = handler.unary_stream  # type: ignore[assignment]

            async def traced_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with start() as span:
                    try:
                        result = stream(request, context)
                        if inspect.isasyncgen(result):
                            async for item in result:
                                yield item
                        elif inspect.isawaitable(result):
                            await result
                    except BaseException as exc:
                        _end_server_span(span, context, exc)
                        raise
                    _end_server_span(span, context, None)

            return grpc.unary_stream_rpc_method_handler(
                traced_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        unary: Callable[..., Any] = handler.unary_unary  # type: ignore[assignment]

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with start() as span:
                try:
                    result = unary(request, context)
                    if inspect.isawaitable(result):
                        result = await result
                except BaseException as exc:
                    _end_server_span(span, context, exc)
                    raise
                _end_server_span(span, context, None)
                return result

        return grpc.unary_unary_rpc_method_handler(
            traced,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _end_server_span(
    span: Span, context: grpc.aio.ServicerContext, error: BaseException | None
) -> None:
    code = context.code()
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN
        if isinstance(error, BaseException) and type(error).__name__ == "CancelledError":
            code = grpc.StatusCode.CANCELLED
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, code.name))
        if error is not None and not isinstance(error, grpc.aio.AbortError):
            span.record_exception(error)
