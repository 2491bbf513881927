"""toolgen: any gRPC server into LLM tools.

Reflect a server, keep the allowlisted methods (unary, server or client streaming;
see ``toolgen.streaming``), and get tools with JSON Schemas that take JSON and return JSON::

    async with await toolgen.discover("127.0.0.1:50051", allow=["pkg.Service/*"]) as catalog:
        tool = catalog["Service_Method"]
        result = await tool.invoke({"id": "42"}, metadata=[("authorization", "Bearer ...")])
"""

from toolgen._allowlist import Allowlist, Skipped
from toolgen._errors import (
    AllowlistError,
    ArgumentsError,
    DependencyMissing,
    DiscoveryError,
    ReflectionUnavailable,
    SymbolNotFound,
    TargetUnreachable,
    ToolCallError,
    ToolgenError,
    Violation,
)
from toolgen._naming import NAME_PATTERN
from toolgen._target import Target
from toolgen._tool import Catalog, SideEffects, Tool, discover
from toolgen.schema import Bounds, SchemaLimitError, message_schema
from toolgen.streaming import StreamLimits

__all__ = [
    "NAME_PATTERN",
    "Allowlist",
    "AllowlistError",
    "ArgumentsError",
    "Bounds",
    "Catalog",
    "DependencyMissing",
    "DiscoveryError",
    "ReflectionUnavailable",
    "SchemaLimitError",
    "SideEffects",
    "Skipped",
    "StreamLimits",
    "SymbolNotFound",
    "Target",
    "TargetUnreachable",
    "Tool",
    "ToolCallError",
    "ToolgenError",
    "Violation",
    "discover",
    "message_schema",
]
