"""Streaming methods as tools: one call in, one JSON result out, every stream bounded.

A tool call is one JSON object in and one JSON object out, so a stream has to become a list:

* A **server-streaming** method is a tool whose result is ``{"messages": [...], "truncated":
  bool, "cutBy": "" | "count" | "bytes" | "time", "limits": {...}}``: the messages the stream
  sent, in order, until it ended or a bound of :class:`StreamLimits` was reached. Whichever
  bound cut the list is named in ``cutBy`` and the bounds themselves are in ``limits``, so the
  model that reads the result knows the list is partial and why. A cut call is cancelled, so
  the server stops sending.
* A **client-streaming** method is a tool whose argument is ``{"requests": [...]}`` (at most
  ``max_messages`` items, at most ``max_bytes`` of JSON together): every request is sent, in
  order, and the one response is the result, as for a unary method. The call's deadline is at
  most ``timeout_s``.
* A **bidirectional** method stays out of the catalog: what it sends next may depend on what it
  received, which one request list and one result cannot express.

Sizes are bytes of compact UTF-8 JSON, the form a model reads and writes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import grpc
from google.protobuf import descriptor
from google.protobuf.message import Message

from toolgen.jsonschema_kit import hoist_defs

__all__ = [
    "CUT_BY",
    "Kind",
    "StreamLimits",
    "collect",
    "json_size",
    "kind_of",
    "requests_schema",
    "result_schema",
    "skip_reason",
]

#: How a tool calls its method.
Kind = Literal["unary", "server_streaming", "client_streaming"]
#: The values of a server-streaming result's ``cutBy``: "" when the stream ended by itself.
CUT_BY = ("", "count", "bytes", "time")
_ITEM = "_stream_item"  # the $defs key of a recursive item (message names always have a dot)


@dataclass(frozen=True)
class StreamLimits:
    """Bounds of one streaming call: messages, bytes of their JSON, and seconds."""

    #: Messages a server-streaming result keeps, and requests a client-streaming call takes.
    max_messages: int = 100
    #: Bytes of JSON of those messages (or requests) together.
    max_bytes: int = 256 * 1024
    #: Seconds a server stream is read (then cut), and a client-streaming call's longest deadline.
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_messages", "max_bytes", "timeout_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"StreamLimits.{name} must be positive, got {value}")

    def as_json(self) -> dict[str, Any]:
        """The bounds as a server-streaming result reports them."""
        return {
            "maxMessages": self.max_messages,
            "maxBytes": self.max_bytes,
            "timeoutS": self.timeout_s,
        }


def kind_of(method: descriptor.MethodDescriptor) -> Kind | None:
    """How ``method`` becomes a tool; ``None`` for bidirectional streaming (never a tool)."""
    if method.client_streaming and method.server_streaming:
        return None
    if method.server_streaming:
        return "server_streaming"
    if method.client_streaming:
        return "client_streaming"
    return "unary"


def skip_reason(method: descriptor.MethodDescriptor) -> str | None:
    """Why ``method`` cannot be a tool, or ``None`` when it can."""
    if kind_of(method) is not None:
        return None
    return (
        "bidirectional streaming method; not a tool: what it sends may depend on what it "
        "received, which one list of requests and one result cannot express"
    )


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _list_of(item: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``item`` ready to be a list's ``items``, and the ``$defs`` its root needs."""
    defs: dict[str, Any] = {}
    body = hoist_defs(item, "", defs, root_key=_ITEM)
    return body, defs


def _document(item: Mapping[str, Any], body: dict[str, Any], defs: dict[str, Any]) -> Any:
    schema: dict[str, Any] = {}
    if "$schema" in item:
        schema["$schema"] = item["$schema"]
    schema.update(body)
    if defs:
        schema["$defs"] = dict(sorted(defs.items()))
    return schema


def requests_schema(item: Mapping[str, Any], max_items: int) -> dict[str, Any]:
    """The arguments of a client-streaming tool: ``{"requests": [item, ...]}``.

    Valid in every dialect of ``message_schema`` (OpenAI strict mode included: one required
    property, no others); ``item`` is the request message's schema in that dialect.
    """
    items, defs = _list_of(item)
    body = {
        "type": "object",
        "description": f"The requests to send on the stream, in order (at most {max_items}).",
        "properties": {
            "requests": {
                "type": "array",
                "description": "Each item is one request message.",
                "items": items,
                "maxItems": max_items,
            }
        },
        "required": ["requests"],
        "additionalProperties": False,
    }
    return _document(item, body, defs)


def result_schema(item: Mapping[str, Any], limits: StreamLimits) -> dict[str, Any]:
    """The result of a server-streaming tool: the messages and whether a bound cut them."""
    items, defs = _list_of(item)
    integer = {"type": "integer"}
    body = {
        "type": "object",
        "description": (
            f"The messages the stream sent, in order: all of them, unless more than "
            f"{limits.max_messages} messages, {limits.max_bytes} bytes of JSON or "
            f"{limits.timeout_s:g} s; then `truncated` is true and `cutBy` names the bound."
        ),
        "properties": {
            "messages": {"type": "array", "items": items, "maxItems": limits.max_messages},
            "truncated": {
                "type": "boolean",
                "description": "True when the stream had more to send than the bounds allow.",
            },
            "cutBy": {
                "type": "string",
                "enum": list(CUT_BY),
                "description": "The bound that cut the list (count, bytes or time), or empty.",
            },
            "limits": {
                "type": "object",
                "description": "The bounds this call had.",
                "properties": {
                    "maxMessages": integer,
                    "maxBytes": integer,
                    "timeoutS": {"type": "number"},
                },
                "required": ["maxMessages", "maxBytes", "timeoutS"],
                "additionalProperties": False,
            },
        },
        "required": ["messages", "truncated", "cutBy", "limits"],
        "additionalProperties": False,
    }
    return _document(item, body, defs)


async def collect(
    call: grpc.aio.UnaryStreamCall,
    limits: StreamLimits,
    to_json: Callable[[Message], dict[str, Any]],
    *,
    deadline_s: float | None,
) -> tuple[list[dict[str, Any]], str]:
    """Read a server stream until it ends or a bound is reached; cancel it if cut.

    Returns the messages as JSON and what cut them (``""``, ``"count"``, ``"bytes"`` or
    ``"time"``). The time bound is ``limits.timeout_s``, or the call's own deadline
    (``deadline_s``) when that is sooner: a stream still open then is cut, not failed. A
    non-OK status raises ``grpc.aio.AioRpcError`` as for a unary call.
    """
    loop = asyncio.get_running_loop()
    window = limits.timeout_s if deadline_s is None else min(limits.timeout_s, deadline_s)
    ends = loop.time() + window
    messages: list[dict[str, Any]] = []
    size = 2  # "[]"
    cut = ""
    try:
        async with asyncio.timeout_at(ends):
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:  # type: ignore[attr-defined]  # missing in stubs
                    break
                assert isinstance(response, Message)
                if len(messages) == limits.max_messages:
                    cut = "count"  # one more than allowed arrived: the list is partial
                    break
                message = to_json(response)
                grown = size + json_size(message) + (1 if messages else 0)
                if grown > limits.max_bytes:
                    cut = "bytes"
                    break
                messages.append(message)
                size = grown
    except TimeoutError:
        cut = "time"
    except grpc.aio.AioRpcError as exc:
        # The call's own deadline was the time bound: the stream was cut by time, not failed.
        if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED or window != deadline_s:
            raise
        cut = "time"
    finally:
        if cut or not call.done():
            call.cancel()  # the server stops sending; nothing more is read
    return messages, cut
