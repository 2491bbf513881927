"""How client commands reach a daemon: plaintext or TLS, an optional client certificate, and
metadata (``-H`` and ``$AGENTD_TOKEN``) sent with every call.

Every client command (run, tools, health, get, runs, approve, reject, trace, feedback, eval
--target) takes the same options, declared here once (``add_connection_options``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from agentd.cli.common import CommandFailed, Exit, fail
from agentd.v1 import agent_pb2_grpc

DEFAULT_TARGET = "127.0.0.1:50051"


class BadOption(ValueError):
    """A connection option that cannot be used; the message names it."""


def add_connection_options(parser: argparse.ArgumentParser, *, many_targets: bool = False) -> None:
    """--target, -H, --tls, --ca, --cert and --key, as one "connection" group of ``parser``.

    ``many_targets``: --target is repeatable and has no default (agentd eval compares
    daemons); otherwise one address, by default $AGENTD_TARGET or 127.0.0.1:50051.
    """
    group = parser.add_argument_group("connection")
    if many_targets:
        group.add_argument(
            "--target", action="append", default=[], help="address of a running agentd (repeatable)"
        )
    else:
        group.add_argument(
            "--target",
            default=None,
            help=f"address of a running agentd (default: $AGENTD_TARGET or {DEFAULT_TARGET})",
        )
    group.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'KEY: VALUE'",
        help="metadata to send, e.g. 'authorization: Bearer ...' (default: "
        "'authorization: Bearer $AGENTD_TOKEN' when that is set)",
    )
    group.add_argument("--tls", action="store_true", help="connect with TLS (implied by --ca)")
    group.add_argument("--ca", metavar="FILE", help="CA certificate (PEM) to trust the daemon by")
    group.add_argument("--cert", metavar="FILE", help="client certificate (PEM) for mTLS")
    group.add_argument("--key", metavar="FILE", help="the client certificate's private key")


def target(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> str:
    """--target, else $AGENTD_TARGET, else 127.0.0.1:50051."""
    env = os.environ if env is None else env
    return str(args.target or env.get("AGENTD_TARGET") or DEFAULT_TARGET)


@contextlib.asynccontextmanager
async def agent_stub(args: argparse.Namespace) -> AsyncIterator[agent_pb2_grpc.AgentServiceStub]:
    """A stub for the daemon at ``--target`` (TLS, client certificate, ``-H`` and
    ``$AGENTD_TOKEN`` from the connection options); a failed call ends the command with its exit
    code and one line naming the status (or that the daemon is unreachable)."""
    address = target(args)
    try:
        conn = connection(args)
    except BadOption as exc:
        raise CommandFailed(fail(str(exc), Exit.USAGE)) from None
    async with conn.channel(address) as channel:
        try:
            yield agent_pb2_grpc.AgentServiceStub(channel)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                message = f"{address} is unreachable ({exc.details()}); is `agentd serve` running?"
                raise CommandFailed(fail(message, Exit.UNREACHABLE)) from None
            raise CommandFailed(
                fail(f"{exc.code().name}: {exc.details()}", Exit.REJECTED)
            ) from None


@dataclass(frozen=True)
class Connection:
    """What a client needs to reach a daemon; built from the options and the environment."""

    metadata: tuple[tuple[str, str], ...] = ()
    credentials: grpc.ChannelCredentials | None = None

    def channel(self, target: str) -> grpc.aio.Channel:
        # grpc-stubs types aio interceptors as a placeholder protocol our class cannot name
        interceptors: Any = None
        if self.metadata:
            # grpc.aio files an interceptor under its first matching kind only, so one object
            # per kind: a single class with both kinds never saw the stream calls (agentd run).
            interceptors = [_UnaryMetadata(self.metadata), _StreamMetadata(self.metadata)]
        if self.credentials is None:
            return grpc.aio.insecure_channel(target, interceptors=interceptors)
        return grpc.aio.secure_channel(target, self.credentials, interceptors=interceptors)


def parse_headers(raw: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for item in raw:
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise BadOption(f"-H {item!r}: expected 'key: value'")
        pairs.append((key.strip().lower(), value.strip()))
    return pairs


def connection(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Connection:
    """The options as a Connection; raises BadOption naming the option to fix."""
    env = os.environ if env is None else env
    metadata = parse_headers(getattr(args, "header", []) or [])
    token = env.get("AGENTD_TOKEN", "").strip()
    if token and not any(k == "authorization" for k, _ in metadata):  # -H wins
        metadata.append(("authorization", f"Bearer {token}"))
    ca, cert, key = (getattr(args, name, None) for name in ("ca", "cert", "key"))
    if bool(cert) != bool(key):
        raise BadOption("--cert and --key: give both (the client certificate and its key)")
    credentials = None
    if getattr(args, "tls", False) or ca or cert:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(ca, "--ca"),
            private_key=_read(key, "--key"),
            certificate_chain=_read(cert, "--cert"),
        )
    return Connection(tuple(metadata), credentials)


def _read(path: str | None, option: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BadOption(f"{option} {path}: {exc.strerror}") from None


class _Metadata:
    """Adds the connection's metadata to every call, before the call's own entries."""

    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self.metadata = tuple(metadata)

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        own = tuple(details.metadata or ())
        names = {k for k, _ in own}
        merged = grpc.aio.Metadata(*[p for p in self.metadata if p[0] not in names], *own)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, merged, details.credentials, details.wait_for_ready
        )


class _UnaryMetadata(_Metadata, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


class _StreamMetadata(_Metadata, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


async def listed_runs(stub: Any, request: Any, most: int = 1000) -> list[Any]:
    """ListRuns followed page by page (next_page_token) until ``most`` runs or the last page:
    a page holds only what fits in one message."""
    runs: list[Any] = []
    while True:
        request.limit = min(1000, most - len(runs))
        response = await stub.ListRuns(request, timeout=60)
        runs += response.runs
        if not response.next_page_token or len(runs) >= most:
            return runs
        request.page_token = response.next_page_token


__all__ = [
    "DEFAULT_TARGET",
    "BadOption",
    "Connection",
    "add_connection_options",
    "agent_stub",
    "connection",
    "listed_runs",
    "parse_headers",
    "target",
]
