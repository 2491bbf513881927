"""Tools and catalogs: reflected gRPC methods that take JSON and return JSON."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

import grpc
import jsonschema
from google.protobuf import descriptor, descriptor_pb2, json_format, message_factory
from google.protobuf.message import Message
from google.rpc import status_pb2

from toolgen._allowlist import Allowlist, Skipped, closest
from toolgen._errors import ArgumentsError, DiscoveryError, ToolCallError, Violation
from toolgen._naming import assign_names
from toolgen._reflection import Descriptors, load_descriptor_set, reflect
from toolgen._target import Target
from toolgen.streaming import (
    Kind,
    StreamLimits,
    collect,
    json_size,
    kind_of,
    requests_schema,
    result_schema,
    skip_reason,
)
from toolgen.validation import validator

__all__ = ["Catalog", "SideEffects", "Tool", "discover"]

SideEffects = Literal["none", "idempotent", "unknown"]

_SIDE_EFFECTS: dict[int, SideEffects] = {
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS: "none",
    descriptor_pb2.MethodOptions.IDEMPOTENT: "idempotent",
}
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _pointer(path: Iterable[str | int]) -> str:
    """A JSON pointer (RFC 6901) from a jsonschema error path."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _violations(validator: Any, instance: object) -> list[Violation]:
    """Every schema violation, deepest useful message first for unions."""
    found = []
    for error in validator.iter_errors(instance):
        # For anyOf/oneOf the top error says only "not valid under any"; the best
        # sub-error names the field that is actually wrong.
        best = jsonschema.exceptions.best_match([error]) if error.context else error
        found.append(Violation(_pointer(best.absolute_path), best.message))
    return sorted(found, key=lambda v: v.pointer)


def _compile(schema: Mapping[str, Any]) -> Any:
    """A validator built once per schema; validation is on every call's path. It never
    retrieves a ``$ref`` and matches patterns with RE2 (toolgen.validation)."""
    return validator(schema)


def _rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The ``google.rpc.Status`` a server attached to a failure, if any."""
    trailers: Any = error.trailing_metadata() or ()  # grpc-stubs mistype aio Metadata
    for key, value in trailers:
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except Exception:  # a malformed trailer must not hide the real error
                return None
    return None


@dataclass(eq=False)
class _Invoker:
    """What ``Tool.invoke`` needs, resolved once at discovery: the hot path only uses it."""

    # unary_unary, unary_stream or stream_unary, after the tool's ``kind``
    call: Any
    request_class: type[Message]
    validator: Any
    pool: Any


@dataclass(frozen=True, eq=False)
class Tool:
    """One allowlisted gRPC method as an LLM tool: unary, server or client streaming.

    Arguments and results are proto3 JSON (``json_format``). Results use the
    JSON names (``nextPageToken``), the property names of both schemas, so a
    result validates against ``output_schema`` and a model sees one spelling per
    field. Fields without presence are printed even when zero or empty, so a
    model reads ``"totalSize": 0`` instead of guessing what a missing key means.

    A streaming method's schemas wrap its message's (``toolgen.streaming``): a
    server-streaming result is ``{"messages": [...], "truncated", "cutBy", "limits"}``,
    client-streaming arguments are ``{"requests": [...]}``; ``stream_limits`` bounds both.
    """

    #: Unique in its catalog, ``^[a-zA-Z0-9_-]{1,64}$``, e.g. ``LedgerService_GetVendor``.
    name: str
    #: The gRPC method path, ``/package.Service/Method``.
    method: str
    #: The method's comment when known, else a generated sentence.
    description: str
    #: JSON Schema (2020-12) of the arguments.
    input_schema: dict[str, Any]
    #: JSON Schema (2020-12) of the result.
    output_schema: dict[str, Any]
    #: From the method's ``idempotency_level`` option.
    side_effects: SideEffects
    #: Address of the server the tool calls.
    target: str
    input_descriptor: descriptor.Descriptor = field(repr=False)
    output_descriptor: descriptor.Descriptor = field(repr=False)
    comments: Mapping[str, str] = field(repr=False, default_factory=dict)
    #: ``unary``, ``server_streaming`` or ``client_streaming``.
    kind: Kind = "unary"
    #: Bounds of a streaming call (unused by unary tools).
    stream_limits: StreamLimits = field(default_factory=StreamLimits)
    _invoker: _Invoker | None = field(repr=False, default=None)

    @cached_property
    def openai_parameters(self) -> dict[str, Any]:
        """The arguments schema in OpenAI strict-mode form (computed on first use).

        Raises ``toolgen.SchemaLimitError`` when the message is too large for strict mode.
        """
        return self.arguments_schema("openai")

    def arguments_schema(self, dialect: Any = "jsonschema", bounds: Any = None) -> dict[str, Any]:
        """The arguments' schema in a ``message_schema`` dialect, with optional ``Bounds``;
        for a client-streaming tool, the list of requests (``maxItems`` within both bounds)."""
        from toolgen.schema import StrictLimits, check_strict_limits, message_schema

        schema = message_schema(
            self.input_descriptor,
            dialect=dialect,
            direction="input",
            comments=self.comments,
            bounds=bounds,
        )
        if self.kind != "client_streaming":
            return schema
        max_items = self.stream_limits.max_messages
        if bounds is not None and bounds.max_items is not None:
            max_items = min(max_items, bounds.max_items)
        wrapped = requests_schema(schema, max_items)
        if dialect == "openai":
            check_strict_limits(wrapped, self.input_descriptor.full_name, StrictLimits())
        return wrapped

    def openai_tool(self) -> dict[str, Any]:
        """The tool in the Chat Completions ``tools`` format, strict mode on."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.openai_parameters,
                "strict": True,
            },
        }

    @cached_property
    def _strict_validator(self) -> Any:
        return _compile(self.openai_parameters)

    def request(self, arguments: Mapping[str, Any], *, strict: bool = False) -> Message:
        """Validate ``arguments`` and build the request message; ``ArgumentsError`` if wrong.

        A client-streaming tool has a list of requests: see ``requests``."""
        if self.kind == "client_streaming":
            raise TypeError(f"{self.name} is client streaming: use requests()")
        return self._messages(arguments, strict)[0]

    def requests(self, arguments: Mapping[str, Any], *, strict: bool = False) -> list[Message]:
        """Validate ``arguments`` and build every request message the call sends."""
        return self._messages(arguments, strict)

    def _messages(self, arguments: Mapping[str, Any], strict: bool) -> list[Message]:
        invoker = self._require_invoker()
        if strict:
            if not self._strict_validator.is_valid(arguments):
                raise ArgumentsError(self.name, _violations(self._strict_validator, arguments))
            arguments = self._from_strict(arguments)
        if not invoker.validator.is_valid(arguments):
            raise ArgumentsError(self.name, _violations(invoker.validator, arguments))
        if self.kind != "client_streaming":
            return [self._parse(arguments, invoker, "")]
        requests = arguments["requests"]
        size = json_size(requests)
        if size > self.stream_limits.max_bytes:
            message = (
                f"the requests take {size} bytes of JSON, more than the "
                f"{self.stream_limits.max_bytes} this tool accepts; send fewer or smaller ones"
            )
            raise ArgumentsError(self.name, [Violation("/requests", message)])
        return [self._parse(r, invoker, f"/requests/{i}") for i, r in enumerate(requests)]

    def _from_strict(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """An OpenAI strict-mode instance mapped back to proto3 JSON (each request's)."""
        from toolgen.schema import StrictDecodeError, from_strict

        try:
            if self.kind == "client_streaming":
                items = arguments["requests"]
                return {"requests": [from_strict(r, self.input_descriptor) for r in items]}
            return from_strict(arguments, self.input_descriptor)
        except StrictDecodeError as exc:
            raise ArgumentsError(self.name, [Violation("", str(exc))]) from None

    def _parse(self, arguments: Any, invoker: _Invoker, pointer: str) -> Message:
        try:
            return json_format.ParseDict(
                cast(dict[str, Any], arguments),
                invoker.request_class(),
                descriptor_pool=invoker.pool,
            )
        except json_format.ParseError as exc:
            # The schema should have caught it; if not, still a user error, not a crash.
            raise ArgumentsError(self.name, [Violation(pointer, str(exc))]) from None

    async def invoke(
        self,
        arguments: Mapping[str, Any],
        *,
        metadata: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
        strict: bool = False,
    ) -> dict[str, Any]:
        """Call the method with JSON ``arguments`` and return the response as JSON.

        ``metadata`` travels to the server as it is (e.g. the caller's
        ``authorization``); ``timeout`` is the call's deadline in seconds;
        ``strict=True`` takes an OpenAI strict-mode instance (``null`` for unset).
        A server-streaming tool returns the messages as ``toolgen.streaming`` says,
        cut (not failed) at its ``stream_limits``; a client-streaming tool sends every
        request of ``arguments["requests"]`` within ``stream_limits.timeout_s``.
        Raises ``ArgumentsError`` for bad arguments and ``ToolCallError`` when the
        server answers with a non-OK status.
        """
        messages = self._messages(arguments, strict)
        invoker = self._invoker
        assert invoker is not None  # checked by _messages()
        try:
            if self.kind == "server_streaming":
                call = invoker.call(messages[0], metadata=metadata or None, timeout=timeout)
                found, cut = await collect(
                    call, self.stream_limits, self._to_json, deadline_s=timeout
                )
                return {
                    "messages": found,
                    "truncated": bool(cut),
                    "cutBy": cut,
                    "limits": self.stream_limits.as_json(),
                }
            if self.kind == "client_streaming":
                bound = self.stream_limits.timeout_s
                timeout = bound if timeout is None else min(timeout, bound)
                response = await invoker.call(
                    iter(messages), metadata=metadata or None, timeout=timeout
                )
            else:
                response = await invoker.call(
                    messages[0], metadata=metadata or None, timeout=timeout
                )
        except grpc.aio.AioRpcError as exc:
            raise ToolCallError(
                self.method, exc.code(), exc.details() or "", _rich_status(exc)
            ) from None
        return self._to_json(response)

    def _to_json(self, response: Message) -> dict[str, Any]:
        invoker = self._invoker
        assert invoker is not None
        return json_format.MessageToDict(
            response,
            preserving_proto_field_name=False,
            always_print_fields_with_no_presence=True,
            descriptor_pool=invoker.pool,
        )

    def _require_invoker(self) -> _Invoker:
        if self._invoker is None:
            raise RuntimeError(
                f"tool {self.name} is not bound to a channel; get it from discover()"
            )
        return self._invoker


@dataclass(eq=False)
class _Source:
    """One target of a catalog: how to reach it, what to select, and what it served last."""

    target: Target
    allowlist: Allowlist
    descriptor_set: Path | None
    set_files: dict[str, descriptor_pb2.FileDescriptorProto]
    channel: grpc.aio.Channel
    descriptors: Descriptors | None = None
    # The channel tool calls use, when it differs from ``channel``: the same target with
    # gRPC's retry policy for the methods that are safe to repeat.
    calls: grpc.aio.Channel | None = None
    # Bounds of this target's streaming tools.
    stream_limits: StreamLimits = field(default_factory=StreamLimits)

    async def reflect(self, *, everything: bool = False) -> Descriptors:
        return await reflect(
            self.channel,
            self.target.address,
            want=(lambda _s: True) if everything else self.allowlist.may_select_service,
            metadata=self.target.metadata,
            connect_timeout=self.target.connect_timeout,
            timeout=self.target.reflection_timeout,
            fallback_files=self.set_files,
        )

    def comments(self) -> dict[str, str]:
        """Comments of the reflected files, overridden by the descriptor set's."""
        from toolgen.comments import comments_from_files

        assert self.descriptors is not None
        found = comments_from_files(self.descriptors.files.values())
        found.update(comments_from_files(self.set_files.values()))
        return found


def _methods(
    descriptors: Descriptors, services: Iterable[str]
) -> list[descriptor.MethodDescriptor]:
    pool = descriptors.pool
    out: list[descriptor.MethodDescriptor] = []
    for name in services:
        out.extend(pool.FindServiceByName(name).methods)
    return out


def _path(method: descriptor.MethodDescriptor) -> str:
    return f"{method.containing_service.full_name}/{method.name}"


def _describe(method: descriptor.MethodDescriptor, comments: Mapping[str, str]) -> str:
    comment = comments.get(method.full_name, "").strip()
    if comment:
        return comment
    return (
        f"Calls the gRPC method {_path(method)} (request {method.input_type.full_name}, "
        f"response {method.output_type.full_name})."
    )


def _build(sources: Sequence[_Source]) -> tuple[list[Tool], list[Skipped]]:
    """Turn the sources' descriptors into tools: select, name, schema, bind."""
    from toolgen.schema import SchemaLimitError, message_schema

    selected: dict[str, tuple[_Source, descriptor.MethodDescriptor]] = {}
    skipped: list[Skipped] = []
    for source in sources:
        assert source.descriptors is not None
        for method in _methods(source.descriptors, source.descriptors.resolved):
            path = _path(method)
            if source.allowlist.allowed_by(path) is None:
                continue
            deny = source.allowlist.denied_by(path)
            if deny is not None:
                skipped.append(Skipped(path, f"denied by {deny!r}"))
                continue
            reason = skip_reason(method)
            if reason is not None:
                skipped.append(Skipped(path, reason))
                continue
            # The address keeps keys unique when two targets serve the same method.
            selected[f"{source.target.address}|{path}"] = (source, method)

    names = assign_names({key: key.partition("|")[2] for key in selected})
    tools = []
    comments_of: dict[int, dict[str, str]] = {}
    # Many methods share message types (a service's common request or response types):
    # each type's schema and validator is built once per source and shared, read-only.
    schemas: dict[tuple[int, str, str], dict[str, Any]] = {}
    validators: dict[int, Any] = {}

    def schema_of(
        source: _Source, message: descriptor.Descriptor, direction: Any
    ) -> dict[str, Any]:
        key = (id(source), message.full_name, direction)
        if key not in schemas:
            comments = comments_of[id(source)]
            schemas[key] = message_schema(message, direction=direction, comments=comments)
        return schemas[key]

    for key, (source, method) in selected.items():
        comments = comments_of.setdefault(id(source), source.comments())
        path = _path(method)
        kind = kind_of(method)
        assert kind is not None  # bidirectional methods were skipped
        limits = source.stream_limits
        try:
            input_schema = schema_of(source, method.input_type, "input")
            output_schema = schema_of(source, method.output_type, "output")
        except SchemaLimitError as exc:
            skipped.append(Skipped(path, f"no JSON Schema: {exc}"))
            continue
        if kind == "client_streaming":
            input_schema = requests_schema(input_schema, limits.max_messages)
        elif kind == "server_streaming":
            output_schema = result_schema(output_schema, limits)
        if id(input_schema) not in validators:  # schemas stay alive in `schemas` meanwhile
            validators[id(input_schema)] = _compile(input_schema)
        pool = source.descriptors.pool if source.descriptors else None
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        channel = source.calls or source.channel
        multicallable = {
            "unary": channel.unary_unary,
            "server_streaming": channel.unary_stream,
            "client_streaming": channel.stream_unary,
        }[kind]
        invoker = _Invoker(
            call=multicallable(
                f"/{path}",
                request_serializer=request_class.SerializeToString,
                response_deserializer=response_class.FromString,
            ),
            request_class=request_class,
            validator=validators[id(input_schema)],
            pool=pool,
        )
        tools.append(
            Tool(
                name=names[key],
                method=f"/{path}",
                description=_describe(method, comments),
                input_schema=input_schema,
                output_schema=output_schema,
                side_effects=_SIDE_EFFECTS.get(method.GetOptions().idempotency_level, "unknown"),
                target=source.target.address,
                input_descriptor=method.input_type,
                output_descriptor=method.output_type,
                comments=comments,
                kind=kind,
                stream_limits=limits,
                _invoker=invoker,
            )
        )
    tools.sort(key=lambda t: t.name)
    skipped.sort(key=lambda s: s.method)
    return tools, skipped


def _fingerprint(sources: Sequence[_Source]) -> str:
    """Covers what the tools are built from: descriptors and selection, per target."""
    digest = hashlib.sha256()
    for source in sorted(sources, key=lambda s: s.target.address):
        assert source.descriptors is not None
        for part in (
            source.target.address,
            source.descriptors.fingerprint,
            repr(source.allowlist.allow),
            repr(source.allowlist.deny),
            repr(source.stream_limits),
        ):
            digest.update(part.encode())
            digest.update(b"\0")
    return digest.hexdigest()


class Catalog:
    """The tools of one or more targets, sorted by name; owns their channels.

    Use it as an async context manager, or call ``close()``, so the channels
    are shut down with the event loop still running.
    """

    def __init__(self, sources: Sequence[_Source]) -> None:
        self._sources = list(sources)
        self._set(*_build(self._sources))

    def _set(self, tools: list[Tool], skipped: list[Skipped]) -> None:
        self._tools = tuple(tools)
        self._by_name = {t.name: t for t in tools}
        self._by_method = {t.method: t for t in tools}
        self._skipped = tuple(skipped)
        self._fingerprint = _fingerprint(self._sources)

    @property
    def tools(self) -> tuple[Tool, ...]:
        """Every tool, sorted by name."""
        return self._tools

    @property
    def skipped(self) -> tuple[Skipped, ...]:
        """Allowlisted methods that are not tools (streaming, denied), with the reason."""
        return self._skipped

    @property
    def fingerprint(self) -> str:
        """Equal fingerprints mean equal tools: same descriptors, same allowlists."""
        return self._fingerprint

    @property
    def protocols(self) -> dict[str, str]:
        """Which reflection protocol (or ``descriptor-set``) each target answered with."""
        return {s.target.address: s.descriptors.protocol for s in self._sources if s.descriptors}

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Tool:
        try:
            return self._by_name[name]
        except KeyError:
            near = closest(name, list(self._by_name))
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise KeyError(f"no tool named {name!r}{hint}") from None

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, or ``None``."""
        return self._by_name.get(name)

    def by_method(self, method: str) -> Tool | None:
        """The tool for ``package.Service/Method`` (a leading ``/`` is optional)."""
        return self._by_method.get("/" + method.lstrip("/"))

    def __repr__(self) -> str:
        return (
            f"<Catalog {len(self._tools)} tools from {[s.target.address for s in self._sources]}>"
        )

    async def refresh(self) -> bool:
        """Reflect every target again; rebuild the tools only if something changed.

        Returns whether the tools changed. Tools handed out before stay usable.
        """
        before = self._fingerprint
        fresh = [await s.reflect() for s in self._sources]
        changed = any(
            s.descriptors is None or s.descriptors.fingerprint != d.fingerprint
            for s, d in zip(self._sources, fresh, strict=True)
        )
        if not changed:
            return False
        for source, descriptors in zip(self._sources, fresh, strict=True):
            source.descriptors = descriptors
        self._set(*_build(self._sources))
        return self._fingerprint != before

    @classmethod
    def merge(cls, catalogs: Iterable[Catalog]) -> Catalog:
        """One catalog over the targets of several; names are made unique across all.

        The new catalog takes over the channels: close it, not the parts.
        """
        sources = [s for c in catalogs for s in c._sources]
        addresses = [s.target.address for s in sources]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"a target appears in more than one catalog: {addresses}")
        merged = cls(sources)
        for catalog in catalogs:
            catalog._sources = []
        return merged

    async def close(self) -> None:
        """Close the channels; tools of this catalog cannot be invoked afterwards."""
        for source in self._sources:
            await source.channel.close(None)
            if source.calls is not None:
                await source.calls.close(None)

    async def __aenter__(self) -> Catalog:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def discover(
    target: Target | str,
    allow: Sequence[str],
    deny: Sequence[str] = (),
    *,
    descriptor_set: Path | str | None = None,
    stream_limits: StreamLimits | None = None,
) -> Catalog:
    """Reflect ``target`` and make a tool of every allowlisted method but bidirectional
    streaming ones; ``stream_limits`` bounds the streaming tools (``toolgen.streaming``).

    ``descriptor_set`` is a ``FileDescriptorSet`` (``protoc --include_imports
    --include_source_info -o FILE``): its comments become descriptions, and it
    replaces reflection for servers that serve none. Raises ``TargetUnreachable``,
    ``ReflectionUnavailable``, ``SymbolNotFound``, ``DependencyMissing`` or
    ``AllowlistError`` (an allow entry matching nothing; names the closest methods).
    """
    if isinstance(target, str):
        target = Target(target)
    if isinstance(allow, str) or isinstance(deny, str):
        raise TypeError("allow and deny are sequences of entries, not one string")
    if not allow:
        raise ValueError("allow needs at least one entry, e.g. 'package.Service/*'")
    allowlist = Allowlist(allow, deny)
    set_files = {}
    if descriptor_set is not None:
        set_files = {f.name: f for f in load_descriptor_set(Path(descriptor_set))}
    source = _Source(
        target,
        allowlist,
        Path(descriptor_set) if descriptor_set else None,
        set_files,
        target.channel(),
        stream_limits=stream_limits or StreamLimits(),
    )
    try:
        source.descriptors = await source.reflect()
        await _check_allowlist(source)
        config = retry_service_config(source.descriptors)
        if config:
            retrying = (("grpc.service_config", config), ("grpc.enable_retries", 1))
            source.calls = dataclasses.replace(
                target, options=(*target.options, *retrying)
            ).channel()
        return Catalog([source])
    except BaseException:
        await source.channel.close(None)
        raise


def retry_service_config(descriptors: Descriptors) -> str:
    """A gRPC service config retrying UNAVAILABLE on NO_SIDE_EFFECTS and IDEMPOTENT methods
    only: repeating them is what their own descriptors allow. '' when there are none."""
    safe = []
    for method in _methods(descriptors, descriptors.resolved):
        if _SIDE_EFFECTS.get(method.GetOptions().idempotency_level, "unknown") != "unknown":
            safe.append({"service": method.containing_service.full_name, "method": method.name})
    if not safe:
        return ""
    policy = {
        "maxAttempts": 3,
        "initialBackoff": "0.1s",
        "maxBackoff": "1s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    return json.dumps({"methodConfig": [{"name": safe, "retryPolicy": policy}]})


async def _check_allowlist(source: _Source) -> None:
    """Fail on allow entries that match nothing, suggesting methods from the whole server."""
    assert source.descriptors is not None
    known = [_path(m) for m in _methods(source.descriptors, source.descriptors.resolved)]
    try:
        source.allowlist.check(known)
    except DiscoveryError:  # pragma: no cover  (check raises AllowlistError only)
        raise
    except ValueError:
        if set(source.descriptors.resolved) == set(source.descriptors.services):
            raise
        # Only the selected services were fetched; fetch all for useful suggestions.
        everything = await source.reflect(everything=True)
        source.allowlist.check([_path(m) for m in _methods(everything, everything.services)])
        raise
