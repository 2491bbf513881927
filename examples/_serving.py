"""What the example servers share: start-up, health, reflection, test hooks and the CLI.

Each example server is a plain `grpc.aio` servicer; this module wraps it the
way a production service would be wrapped (health checking, reflection,
optional bearer-token check) and adds what tests and benchmarks need: the
metadata of every call, an artificial latency and a one-line readiness signal.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, NoReturn, TypeVar, get_args

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# What `grpc_health.v1.health.aio` re-exports; imported directly because mypy cannot see that alias.
from grpc_health.v1._async import HealthServicer

from agentd.telemetry import server_spans, setup_tracing, shutdown
from toolgen.reflection_server import enable_reflection

Reflection = Literal["v1", "v1alpha", "both", "none"]
REFLECTION_CHOICES: tuple[str, ...] = get_args(Reflection)
_VERSIONS: dict[str, tuple[str, ...]] = {
    "v1": ("v1",),
    "v1alpha": ("v1alpha",),
    "both": ("v1", "v1alpha"),
    "none": (),
}
HEALTH_SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name

T = TypeVar("T")
S = TypeVar("S", bound="RunningServer[Any]")


class StatusError(Exception):
    """A gRPC status for the caller: raised by servicer logic, turned into an abort."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> StatusError:
    """INVALID_ARGUMENT with `message`, which should name the field."""
    return StatusError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> StatusError:
    """NOT_FOUND with `message`, which should name the missing id."""
    return StatusError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message: str) -> StatusError:
    """FAILED_PRECONDITION with `message`, which should say what state forbids the call."""
    return StatusError(grpc.StatusCode.FAILED_PRECONDITION, message)


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: StatusError) -> NoReturn:
    """Abort the call with `error`; grpc.aio's `abort` always raises."""
    await context.abort(error.code, error.message)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
_Ctx = grpc.aio.ServicerContext[Any, Any]


def statuses(
    method: Callable[[Any, _Req, _Ctx], Awaitable[_Resp]],
) -> Callable[[Any, _Req, _Ctx], Awaitable[_Resp]]:
    """Turn a `StatusError` raised by a unary method into the call's status."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: _Req, context: _Ctx) -> _Resp:
        try:
            return await method(self, request, context)
        except StatusError as error:
            await abort(context, error)

    return wrapper


@dataclass
class RunningServer(Generic[T]):
    """A started example server and what tests may inspect about its calls."""

    server: grpc.aio.Server
    port: int
    host: str
    servicer: T
    health: HealthServicer
    # Invocation metadata of every call to the example service (not reflection or health).
    seen_metadata: list[dict[str, str]] = field(default_factory=list)
    # Method names called on the example service, in arrival order.
    calls: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        """`host:port` to dial."""
        return f"{self.host}:{self.port}"

    async def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING, then stop; `grace` lets in-flight calls finish."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


def _metadata_dict(metadata: Sequence[tuple[str, str | bytes]] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, value in metadata or ():
        # Binary (-bin) headers arrive as bytes; base64 keeps the dict all-text.
        result[key] = value if isinstance(value, str) else base64.b64encode(value).decode()
    return result


class _CallGate(grpc.aio.ServerInterceptor):
    """Records, delays and authenticates calls to one service; others pass untouched."""

    def __init__(
        self,
        service_name: str,
        record: RunningServer[Any] | None,
        latency_s: float,
        require_token: str | None,
    ) -> None:
        self._prefix = f"/{service_name}/"
        self.record = record  # set once the server object exists
        self._latency_s = latency_s
        self._expected = f"Bearer {require_token}" if require_token is not None else None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method or ""
        if handler is None or not method.startswith(self._prefix):
            return handler
        metadata = _metadata_dict(handler_call_details.invocation_metadata)  # type: ignore[arg-type]
        if self.record is not None:
            self.record.seen_metadata.append(metadata)
            self.record.calls.append(method.removeprefix(self._prefix))
        if self._latency_s > 0:
            await asyncio.sleep(self._latency_s)
        if self._expected is not None and metadata.get("authorization") != self._expected:
            return _deny(handler)
        return handler


def _deny(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler with the original's cardinality and codecs that fails UNAUTHENTICATED."""

    async def deny(_request: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            "missing or wrong bearer token in the 'authorization' metadata",
        )

    async def deny_stream(
        request: object, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[None]:
        # A streaming response is an async generator, which interceptors wrapping the stream
        # (the tracing one) iterate; it aborts before its first message.
        await deny(request, context)
        yield

    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    behaviour = deny_stream if handler.response_streaming else deny
    return make(  # type: ignore[operator]
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


async def start_server(
    cls: type[S],
    servicer: Any,
    *,
    service_name: str,
    add_to_server: Callable[[Any, grpc.aio.Server], None],
    port: int,
    host: str,
    reflection: Reflection,
    latency_s: float,
    require_token: str | None,
) -> S:
    """Build, wire and start a server for `servicer`; returns it as `cls`."""
    if reflection not in _VERSIONS:
        raise ValueError(f"reflection must be one of {REFLECTION_CHOICES}, not {reflection!r}")
    if latency_s < 0:
        raise ValueError(f"latency_s must not be negative, got {latency_s}")
    gate = _CallGate(service_name, None, latency_s, require_token)
    # A SERVER span per call, parented by the caller's traceparent: agentd's tool call and this
    # upstream's work form one trace. A no-op until a tracer provider is installed.
    spans = server_spans([service_name])
    # Without SO_REUSEPORT a busy port is an error instead of two servers sharing it. gRPC
    # core cancels calls past 1,000 waiting for the handler; a burst of agent runs is more.
    options = [
        ("grpc.so_reuseport", 0),
        ("grpc.server.max_pending_requests", 10_000),
        ("grpc.server.max_pending_requests_hard_limit", 10_000),
    ]
    server = grpc.aio.server(interceptors=[spans, gate], options=options)
    add_to_server(servicer, server)
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    versions = _VERSIONS[reflection]
    if versions:
        enable_reflection(server, [service_name, HEALTH_SERVICE_NAME], versions)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:
        await server.stop(None)  # an unstarted server must still be shut down, or it leaks
        raise
    running = cls(server=server, port=bound, host=host, servicer=servicer, health=health_servicer)
    gate.record = running
    await server.start()
    for name in ("", service_name):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return running


ServeFn = Callable[..., Awaitable[RunningServer[Any]]]


def build_parser(
    name: str, default_port: int, default_reflection: Reflection
) -> argparse.ArgumentParser:
    """The command line shared by the example servers."""
    parser = argparse.ArgumentParser(
        prog=f"python -m examples.{name}",
        description=f"Run the example {name} gRPC service on loopback until SIGINT or SIGTERM. "
        f"Prints '{name} listening on HOST:PORT' once it accepts calls.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=default_port,
        help=f"TCP port to listen on; 0 picks a free one (default {default_port})",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--reflection",
        choices=REFLECTION_CHOICES,
        default=default_reflection,
        help="server reflection protocols to serve: grpc.reflection.v1, v1alpha, both or none "
        f"(default {default_reflection})",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="delay added to every call of the service, for benchmarks (default 0)",
    )
    parser.add_argument(
        "--require-token",
        metavar="TOKEN",
        default=None,
        help="reject calls without 'authorization: Bearer TOKEN' metadata with UNAUTHENTICATED "
        "(reflection and health stay open)",
    )
    return parser


def run_main(
    name: str,
    serve: ServeFn,
    argv: Sequence[str] | None,
    *,
    default_port: int,
    default_reflection: Reflection,
) -> int:
    """Parse `argv`, serve until SIGINT/SIGTERM, return the exit status."""
    parser = build_parser(name, default_port, default_reflection)
    args = parser.parse_args(argv)
    if args.latency_ms < 0:
        parser.error(f"--latency-ms must not be negative, got {args.latency_ms}")
    # Exports only when OTEL_TRACES_EXPORTER says so; without it spans are recorded nowhere.
    setup_tracing(service_name=f"examples.{name}")
    try:
        return asyncio.run(_serve_until_signalled(name, serve, args))
    finally:
        shutdown()


async def _serve_until_signalled(name: str, serve: ServeFn, args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        running = await serve(
            port=args.port,
            host=args.host,
            reflection=args.reflection,
            latency_s=args.latency_ms / 1000.0,
            require_token=args.require_token,
        )
    except RuntimeError as error:  # grpc's way of saying the port could not be bound
        print(f"{name}: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    # The one line launchers wait for; flushed because stdout is a pipe there.
    print(f"{name} listening on {running.address}", flush=True)
    await stop.wait()
    await running.stop(grace=1.0)
    return 0
