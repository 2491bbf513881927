"""Python functions as loop tools: the in-process stand-ins for reflected upstream methods."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Function = Callable[..., "dict[str, Any] | Awaitable[dict[str, Any]]"]


@dataclass(frozen=True)
class _Code:
    name: str


class ToolError(Exception):
    """What an upstream call raises: a status ``code`` (its name, e.g. NOT_FOUND) and a message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = _Code(code)
        self.details = message


@dataclass
class FunctionTool:
    """A ``LoopTool`` that calls ``fn(**arguments)`` (sync or async) and records each call."""

    name: str
    fn: Function
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None
    description: str = ""
    side_effects: str = "none"
    policy: str = "allow"
    calls: list[dict[str, Any]] = field(default_factory=list)
    metadata: list[Sequence[tuple[str, str]]] = field(default_factory=list)

    @property
    def method(self) -> str:
        return f"test.Functions/{self.name}"

    @property
    def model_schema(self) -> dict[str, Any]:
        return self.input_schema

    async def invoke(
        self, arguments: dict[str, Any], *, metadata: Sequence[tuple[str, str]], timeout: float
    ) -> dict[str, Any]:
        self.calls.append(arguments)
        self.metadata.append(metadata)
        result = self.fn(**arguments)
        if inspect.isawaitable(result):
            result = await asyncio.wait_for(result, timeout)
        return dict(result)


def obj(required: Sequence[str] = (), **properties: Any) -> dict[str, Any]:
    """An object schema with ``properties``, closed."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


STRING: dict[str, Any] = {"type": "string", "maxLength": 100}


def tools(*items: FunctionTool) -> dict[str, FunctionTool]:
    return {t.name: t for t in items}
