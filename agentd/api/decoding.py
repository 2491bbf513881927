"""Requests protobuf cannot decode get INVALID_ARGUMENT naming the field, not UNKNOWN.

gRPC decodes a request before any handler runs; a ``DecodeError`` there (a ``context``
nested past protobuf's own depth limit of 100 message levels, about 45 levels of JSON, or
bytes that are not the message at all) reaches the caller as UNKNOWN "Unexpected
DecodeError". This interceptor decodes leniently and answers such a request itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from agentd.api import bounds

# The fields of each request that can nest (a Struct), named in the message.
_DEEP = {
    "RunRequest": "context",
    "ApproveRunRequest": "decisions[].arguments",
}


@dataclasses.dataclass(frozen=True)
class _Undecodable:
    message: str


def _lenient(decode: Callable[[bytes], Any], kind: str) -> Callable[[bytes], Any]:
    def decoded(data: bytes) -> Any:
        try:
            return decode(data)
        except DecodeError as exc:
            if "Depth" in str(exc) and kind in _DEEP:
                return _Undecodable(
                    f"{_DEEP[kind]}: nested too deeply to decode; the limit is "
                    f"{bounds.MAX_DEPTH} levels"
                )
            return _Undecodable(f"request: not a valid {kind} message")

    return decoded


class DecodeGuard(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        decode = getattr(handler, "request_deserializer", None)
        if handler is None or decode is None or handler.request_streaming:
            return handler
        kind = getattr(getattr(decode, "__self__", None), "__name__", "") or "request"
        if handler.unary_unary is not None:
            inner: Any = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if isinstance(request, _Undecodable):
                    raise bounds.BadField(request.message)  # audited and answered by api/audit.py
                return await inner(request, context)

            return handler._replace(  # type: ignore[attr-defined,no-any-return]
                request_deserializer=_lenient(decode, kind), unary_unary=unary
            )
        if handler.unary_stream is not None:
            inner_stream: Any = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if isinstance(request, _Undecodable):
                    raise bounds.BadField(request.message)  # audited and answered by api/audit.py
                async for message in inner_stream(request, context):
                    yield message

            return handler._replace(  # type: ignore[attr-defined,no-any-return]
                request_deserializer=_lenient(decode, kind), unary_stream=stream
            )
        return handler
