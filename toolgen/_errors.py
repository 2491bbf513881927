"""The exceptions toolgen raises.

Every message says what went wrong *and* what to do about it, because the
CLI prints them verbatim as its one line on stderr.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc
    from google.rpc import status_pb2

__all__ = [
    "AllowlistError",
    "ArgumentsError",
    "DependencyMissing",
    "DiscoveryError",
    "ReflectionUnavailable",
    "SymbolNotFound",
    "TargetUnreachable",
    "ToolCallError",
    "ToolgenError",
    "Violation",
]


class ToolgenError(Exception):
    """Base class of every error toolgen raises on purpose."""


class DiscoveryError(ToolgenError):
    """Discovery could not build a catalog for a target."""


class TargetUnreachable(DiscoveryError):
    """No gRPC connection could be made to the target."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(
            f"{address} is unreachable ({reason}); check the address, TLS settings "
            "(--plaintext/--tls) or start the server"
        )


class ReflectionUnavailable(DiscoveryError):
    """The target answers, but serves neither reflection v1 nor v1alpha."""

    def __init__(self, address: str, detail: str = "") -> None:
        self.address = address
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{address} does not serve gRPC reflection (grpc.reflection.v1 or v1alpha){extra}; "
            "enable reflection on the server or pass a descriptor set "
            "(protoc --include_imports -o FILE) with --descriptor-set"
        )


class SymbolNotFound(DiscoveryError):
    """The server listed a symbol but could not return the file that defines it."""

    def __init__(self, address: str, symbol: str, detail: str = "") -> None:
        self.address = address
        self.symbol = symbol
        extra = f": {detail}" if detail else ""
        super().__init__(
            f"{address} lists {symbol} but its reflection service cannot describe it{extra}; "
            "register the service's descriptors with reflection or use --descriptor-set"
        )


class DependencyMissing(DiscoveryError):
    """A proto file imports a file that neither reflection nor the descriptor set provides."""

    def __init__(self, address: str, filename: str, needed_by: str) -> None:
        self.address = address
        self.filename = filename
        self.needed_by = needed_by
        super().__init__(
            f"{address}: {needed_by} imports {filename}, which the server's reflection does "
            "not provide; register it on the server or pass a descriptor set built with "
            "--include_imports"
        )


class AllowlistError(ToolgenError, ValueError):
    """An allow entry matches no method the target serves."""

    def __init__(self, unmatched: Sequence[tuple[str, Sequence[str]]]) -> None:
        #: ``(entry, closest existing methods)`` per allow entry that matched nothing.
        self.unmatched = tuple((entry, tuple(close)) for entry, close in unmatched)
        parts = []
        for entry, close in self.unmatched:
            hint = f" (closest: {', '.join(close)})" if close else " (no similar method)"
            parts.append(f"{entry!r}{hint}")
        super().__init__(
            "allow entry matches no method: " + "; ".join(parts) + "; fix the entry, "
            "see `toolgen list TARGET` for the methods"
        )


@dataclass(frozen=True)
class Violation:
    """One reason why tool arguments were rejected."""

    #: JSON pointer (RFC 6901) to the offending value; ``""`` is the whole object.
    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


class ArgumentsError(ToolgenError, ValueError):
    """Tool arguments do not fit the tool's input schema or the request message."""

    def __init__(self, tool: str, violations: Sequence[Violation]) -> None:
        self.tool = tool
        self.violations = tuple(violations)
        listed = "; ".join(str(v) for v in self.violations)
        super().__init__(f"invalid arguments for {tool}: {listed}")


class ToolCallError(ToolgenError):
    """The upstream gRPC call failed with a status."""

    def __init__(
        self,
        method: str,
        code: grpc.StatusCode,
        details: str,
        status: status_pb2.Status | None = None,
    ) -> None:
        self.method = method
        self.code = code
        self.details = details
        #: The rich ``google.rpc.Status`` from ``grpc-status-details-bin``, when sent.
        self.status = status
        super().__init__(f"{method} failed: {code.name}: {details}")

    def error_details(self) -> list[dict[str, object]]:
        """The rich error details (``google.rpc.*`` messages) as proto3 JSON objects."""
        if self.status is None:
            return []
        from google.protobuf import json_format
        from google.rpc import error_details_pb2  # noqa: F401  registers the detail types

        out: list[dict[str, object]] = []
        for detail in self.status.details:
            try:
                out.append(json_format.MessageToDict(detail))
            except (TypeError, KeyError, json_format.Error):
                # An unknown detail type: keep its type URL so it is not silently lost.
                out.append({"@type": detail.type_url})
        return out
