"""Where a gRPC server lives and how to connect to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

__all__ = ["DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH", "Target"]

#: gRPC's own default (4 MiB) is too small for reflection of large APIs
#: (evans #674, grpcurl -max-msg-sz) and for big list responses.
DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH = 64 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    """A gRPC server to discover tools on.

    Plaintext unless ``tls=True``: most targets in a service mesh or on loopback
    speak plaintext, and an explicit opt-in keeps the choice visible.
    """

    #: ``host:port`` (any gRPC target string, e.g. ``dns:///svc:443``).
    address: str
    #: Use TLS; with ``ca_file`` unset the system roots verify the server.
    tls: bool = False
    #: PEM file of the CA that signed the server's certificate.
    ca_file: Path | None = None
    #: Metadata sent on the reflection stream, e.g. ``(("authorization", "Bearer ..."),)``.
    metadata: tuple[tuple[str, str], ...] = ()
    #: Seconds to wait for the first reflection answer before calling the target unreachable.
    connect_timeout: float = 5.0
    #: Seconds the whole reflection exchange may take.
    reflection_timeout: float = 30.0
    #: Largest message the channel accepts, in bytes.
    max_receive_message_length: int = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH
    #: Extra channel options, passed to grpc as they are.
    options: tuple[tuple[str, str | int], ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("Target.address must not be empty")
        if self.ca_file is not None and not self.tls:
            raise ValueError("Target.ca_file needs tls=True")
        # Accept lists for convenience but store tuples so the Target stays hashable.
        object.__setattr__(self, "metadata", _pairs(self.metadata))
        object.__setattr__(self, "options", tuple(tuple(o) for o in self.options))

    def channel(self) -> grpc.aio.Channel:
        """Open a new ``grpc.aio`` channel to the target (must run inside an event loop)."""
        options: list[tuple[str, str | int]] = [
            ("grpc.max_receive_message_length", self.max_receive_message_length),
            *self.options,
        ]
        if not self.tls:
            return grpc.aio.insecure_channel(self.address, options=options)
        roots = Path(self.ca_file).read_bytes() if self.ca_file is not None else None
        credentials = grpc.ssl_channel_credentials(root_certificates=roots)
        return grpc.aio.secure_channel(self.address, credentials, options=options)


def _pairs(metadata: Sequence[Sequence[str]]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in metadata:
        key, value = item
        # gRPC rejects upper-case metadata keys; lower-casing here gives a clear early fix.
        pairs.append((key.lower(), value))
    return tuple(pairs)
