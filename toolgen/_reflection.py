"""An async gRPC server reflection client that speaks v1 and v1alpha.

Written here rather than taken from grpcio-reflection because its client
(``ProtoReflectionDescriptorDatabase``) is synchronous and speaks only v1alpha,
while Go and Java servers prefer v1. The two protocols are wire-identical apart
from the method path, so one set of message classes serves both.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Literal, cast

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool

from toolgen._errors import (
    DependencyMissing,
    DiscoveryError,
    ReflectionUnavailable,
    SymbolNotFound,
    TargetUnreachable,
)
from toolgen.protos import reflection_v1_pb2 as rpb

__all__ = [
    "Descriptors",
    "Protocol",
    "build_pool",
    "fingerprint_files",
    "load_descriptor_set",
    "reflect",
]

Protocol = Literal["v1", "v1alpha", "descriptor-set"]

_PATHS: tuple[tuple[Protocol, str], ...] = (
    ("v1", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
    ("v1alpha", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
)
#: Reflection services describe themselves; they are never tools.
_REFLECTION_SERVICES = frozenset(
    {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}
)


@dataclass(frozen=True)
class Descriptors:
    """What one reflection exchange (or descriptor set) yielded for a target."""

    address: str
    #: Which source answered: ``v1``, ``v1alpha`` or ``descriptor-set``.
    protocol: Protocol
    #: Every service the target lists, reflection services left out, sorted.
    services: tuple[str, ...]
    #: The services whose files were fetched.
    resolved: tuple[str, ...]
    #: Every file received, by file name.
    files: Mapping[str, descriptor_pb2.FileDescriptorProto]
    #: sha256 over the sorted serialized files: equal means nothing changed.
    fingerprint: str
    _pool: list[descriptor_pool.DescriptorPool] = field(
        default_factory=list, repr=False, compare=False
    )

    @property
    def pool(self) -> descriptor_pool.DescriptorPool:
        """A private ``DescriptorPool`` holding every file (built on first use)."""
        if not self._pool:
            self._pool.append(build_pool(self.files.values(), address=self.address))
        return self._pool[0]


def fingerprint_files(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> str:
    """Hash a set of files independently of the order they arrived in."""
    digest = hashlib.sha256()
    for fdp in sorted(files, key=lambda f: f.name):
        blob = fdp.SerializeToString(deterministic=True)
        digest.update(len(blob).to_bytes(8, "big"))
        digest.update(blob)
    return digest.hexdigest()


def build_pool(
    files: Iterable[descriptor_pb2.FileDescriptorProto], *, address: str = "descriptor set"
) -> descriptor_pool.DescriptorPool:
    """Add files to a fresh pool, dependencies first (the pool insists on that order)."""
    by_name = {f.name: f for f in files}
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str, needed_by: str, stack: tuple[str, ...]) -> None:
        if name in added:
            return
        fdp = by_name.get(name)
        if fdp is None:
            raise DependencyMissing(address, name, needed_by)
        if name in stack:
            raise DiscoveryError(f"{address}: import cycle through {name}")
        for dep in fdp.dependency:
            add(dep, name, (*stack, name))
        pool.Add(fdp)
        added.add(name)

    for name in sorted(by_name):
        add(name, name, ())
    return pool


def load_descriptor_set(path: str | PathLike[str]) -> list[descriptor_pb2.FileDescriptorProto]:
    """Read a ``FileDescriptorSet`` file, as written by ``protoc -o FILE``."""
    data = Path(path).read_bytes()
    fds = descriptor_pb2.FileDescriptorSet()
    try:
        fds.ParseFromString(data)
    except Exception as exc:  # the decoder raises several types; all mean "not a set"
        raise DiscoveryError(
            f"{path} is not a FileDescriptorSet; make one with "
            "`protoc --include_imports --include_source_info -o FILE ...`"
        ) from exc
    return list(fds.file)


def services_in(files: Iterable[descriptor_pb2.FileDescriptorProto]) -> list[str]:
    """Fully qualified names of the services the files define."""
    out: list[str] = []
    for fdp in files:
        prefix = f"{fdp.package}." if fdp.package else ""
        out.extend(prefix + s.name for s in fdp.service)
    return sorted(out)


class _Failed(Exception):
    """The reflection stream ended with a non-OK status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class _Stream:
    """One reflection stream: requests are pipelined, answers come back in order.

    Requests go through a queue-fed iterator rather than ``call.write()``: a write
    racing the server's early close (UNIMPLEMENTED) fails with a generic INTERNAL
    error, while gRPC's own iterator consumer lets the server's status through.
    """

    def __init__(
        self,
        channel: grpc.aio.Channel,
        path: str,
        metadata: Sequence[tuple[str, str]],
        timeout: float,
    ) -> None:
        method = channel.stream_stream(
            path,
            request_serializer=rpb.ServerReflectionRequest.SerializeToString,
            response_deserializer=rpb.ServerReflectionResponse.FromString,
        )
        self._queue: asyncio.Queue[rpb.ServerReflectionRequest | None] = asyncio.Queue()
        self._call = method(self._requests(), metadata=tuple(metadata) or None, timeout=timeout)

    async def _requests(self) -> AsyncIterator[rpb.ServerReflectionRequest]:
        while (request := await self._queue.get()) is not None:
            yield request

    async def ask(
        self, requests: Sequence[rpb.ServerReflectionRequest]
    ) -> list[rpb.ServerReflectionResponse]:
        """Send every request, then read one answer per request."""
        for request in requests:
            self._queue.put_nowait(request)
        answers: list[rpb.ServerReflectionResponse] = []
        try:
            for _ in requests:
                answer = await self._call.read()
                if answer is grpc.aio.EOF:  # type: ignore[attr-defined]
                    # The server closed the stream: its status says why (grpcurl #577:
                    # UNIMPLEMENTED can arrive only in the trailers).
                    code = await self._call.code()
                    details = await self._call.details()
                    raise _Failed(code, details or "stream closed")
                answers.append(cast(rpb.ServerReflectionResponse, answer))
        except grpc.aio.AioRpcError as exc:
            raise _Failed(exc.code(), exc.details() or "") from None
        return answers

    async def close(self) -> None:
        """Half-close the stream, then cancel it: discovery needs nothing more."""
        self._queue.put_nowait(None)
        if not self._call.done():
            self._call.cancel()


def _unreachable_reason(details: str) -> str:
    """Turn gRPC core's long UNAVAILABLE text into a few words a user recognises."""
    low = details.lower()
    for needle, reason in (
        ("connection refused", "connection refused"),
        ("dns resolution failed", "DNS resolution failed"),
        ("name resolution", "DNS resolution failed"),
        ("ssl", "TLS handshake failed"),
        ("handshake", "TLS handshake failed"),
        ("tls", "TLS handshake failed"),
        ("socket closed", "connection closed by the server"),
        ("connection reset", "connection reset"),
        ("timeout", "connection timed out"),
        ("timed out", "connection timed out"),
    ):
        if needle in low:
            return reason
    return details.strip().splitlines()[0][:200] if details.strip() else "unavailable"


async def reflect(
    channel: grpc.aio.Channel,
    address: str,
    *,
    want: Callable[[str], bool] = lambda _service: True,
    metadata: Sequence[tuple[str, str]] = (),
    connect_timeout: float = 5.0,
    timeout: float = 30.0,
    fallback_files: Mapping[str, descriptor_pb2.FileDescriptorProto] | None = None,
) -> Descriptors:
    """Discover the target's services and fetch the files of those ``want`` accepts.

    Tries ``grpc.reflection.v1`` first and falls back to ``v1alpha`` when the server
    answers UNIMPLEMENTED. ``fallback_files`` (a descriptor set) supplies
    dependencies the server does not serve, and replaces reflection entirely when
    the server serves none.
    """
    unimplemented: list[str] = []
    for protocol, path in _PATHS:
        try:
            stream, listing = await _open(
                channel, address, path, metadata, connect_timeout, timeout
            )
        except _Failed as exc:
            if exc.code == grpc.StatusCode.UNIMPLEMENTED or (
                # A proxy may answer UNAVAILABLE for an unknown service (grpcurl #588);
                # a READY channel shows the connection itself is fine.
                exc.code == grpc.StatusCode.UNAVAILABLE
                and protocol == "v1"
                and channel.get_state() == grpc.ChannelConnectivity.READY
            ):
                unimplemented.append(f"{protocol}: {exc.code.name}")
                continue
            raise _discovery_error(address, exc) from None
        try:
            if listing.HasField("error_response"):
                err = listing.error_response
                raise ReflectionUnavailable(address, f"list_services failed: {err.error_message}")
            services = sorted(
                s.name
                for s in listing.list_services_response.service
                if s.name not in _REFLECTION_SERVICES
            )
            wanted = [s for s in services if want(s)]
            try:
                files = await _fetch(stream, address, wanted, fallback_files or {})
            except _Failed as exc:
                raise _discovery_error(address, exc) from None
            return Descriptors(
                address=address,
                protocol=protocol,
                services=tuple(services),
                resolved=tuple(wanted),
                files=files,
                fingerprint=fingerprint_files(files.values()),
            )
        finally:
            await stream.close()

    if fallback_files:
        # No reflection at all: the descriptor set is the whole truth.
        services = services_in(fallback_files.values())
        return Descriptors(
            address=address,
            protocol="descriptor-set",
            services=tuple(services),
            resolved=tuple(s for s in services if want(s)),
            files=dict(fallback_files),
            fingerprint=fingerprint_files(fallback_files.values()),
        )
    raise ReflectionUnavailable(address, "; ".join(unimplemented))


#: How often to retry an exchange whose status grpc.aio lost (see ``_lost_status``).
_LOST_STATUS_RETRIES = 3


def _lost_status(exc: _Failed) -> bool:
    """grpc.aio reports INTERNAL when sending races the server's early close.

    The server's real answer (UNIMPLEMENTED for a missing reflection version) is
    lost; measured at a few percent of calls on loopback. A new stream is cheap.
    """
    return exc.code == grpc.StatusCode.INTERNAL and exc.details == "Internal error from Core"


async def _open(
    channel: grpc.aio.Channel,
    address: str,
    path: str,
    metadata: Sequence[tuple[str, str]],
    connect_timeout: float,
    timeout: float,
) -> tuple[_Stream, rpb.ServerReflectionResponse]:
    """Open a reflection stream and list the services: the first answer proves the protocol."""
    for attempt in range(_LOST_STATUS_RETRIES + 1):
        stream = _Stream(channel, path, metadata, timeout)
        try:
            (listing,) = await asyncio.wait_for(
                stream.ask([rpb.ServerReflectionRequest(list_services="*")]), connect_timeout
            )
            return stream, listing
        except TimeoutError:
            await stream.close()
            raise TargetUnreachable(address, f"no answer within {connect_timeout:g}s") from None
        except _Failed as exc:
            await stream.close()
            if not (_lost_status(exc) and attempt < _LOST_STATUS_RETRIES):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _discovery_error(address: str, exc: _Failed) -> DiscoveryError:
    if exc.code == grpc.StatusCode.UNAVAILABLE:
        return TargetUnreachable(address, _unreachable_reason(exc.details))
    if exc.code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TargetUnreachable(address, "reflection timed out")
    if exc.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return ReflectionUnavailable(
            address,
            f"reflection refused: {exc.code.name}: {exc.details}; pass credentials with -H",
        )
    return DiscoveryError(f"{address}: reflection failed: {exc.code.name}: {exc.details}")


def _defined_services(fdp: descriptor_pb2.FileDescriptorProto) -> Iterable[str]:
    prefix = f"{fdp.package}." if fdp.package else ""
    return (prefix + s.name for s in fdp.service)


async def _fetch(
    stream: _Stream,
    address: str,
    services: Sequence[str],
    fallback: Mapping[str, descriptor_pb2.FileDescriptorProto],
) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """Fetch the files defining ``services`` and, transitively, all their imports.

    Every file received is cached, because a server may skip files it already
    sent on this stream (jhump/protoreflect's lesson), and requests are pipelined
    level by level so a deep import tree costs few round trips.
    """
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    defined: set[str] = set()

    def keep(answer: rpb.ServerReflectionResponse) -> None:
        for blob in answer.file_descriptor_response.file_descriptor_proto:
            fdp = descriptor_pb2.FileDescriptorProto.FromString(blob)
            if fdp.name not in files:
                files[fdp.name] = fdp
                defined.update(_defined_services(fdp))

    answers = await stream.ask(
        [rpb.ServerReflectionRequest(file_containing_symbol=s) for s in services]
    )
    for service, answer in zip(services, answers, strict=True):
        if answer.HasField("error_response"):
            raise SymbolNotFound(address, service, answer.error_response.error_message)
        keep(answer)
    for service in services:
        if service not in defined:
            raise SymbolNotFound(address, service, "the returned files do not define it")

    while True:
        missing: dict[str, str] = {}
        for fdp in files.values():
            for dep in fdp.dependency:
                if dep not in files and dep not in missing:
                    missing[dep] = fdp.name
        if not missing:
            return files
        wanted = sorted(missing)
        answers = await stream.ask(
            [rpb.ServerReflectionRequest(file_by_filename=n) for n in wanted]
        )
        for name, answer in zip(wanted, answers, strict=True):
            if not answer.HasField("error_response"):
                keep(answer)
            if name not in files:
                if name in fallback:
                    files[name] = fallback[name]
                else:
                    raise DependencyMissing(address, name, missing[name])
