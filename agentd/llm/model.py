"""What the loop needs of a model: the ``ChatModel`` protocol and the values it passes.

Three implementations: ``OpenAIChatModel`` (any OpenAI-compatible endpoint, in
``agentd.llm.client``), ``TracedChatModel`` (spans and usage around another one, in
``agentd.llm.traced``) and ``ScriptedChatModel`` (replies from a script, no socket, in
``agentd.llm.scripted``). Every failure is one ``ModelError`` whose ``kind`` tells the loop
whether to feed it back to the model or give up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import jsonschema

from agentd.config import ToolCallMode
from agentd.llm.schemas import validator

__all__ = [
    "RECOVERABLE_KINDS",
    "ChatModel",
    "ErrorKind",
    "ModelError",
    "ModelReply",
    "ToolChoice",
    "ToolSpec",
    "decode_json",
    "schema_problem",
]

ErrorKind = Literal[
    "length", "invalid_json", "schema", "no_tool_call", "empty", "transport", "http"
]

# Kinds caused by what the model wrote: worth showing the model its mistake and asking again.
RECOVERABLE_KINDS: frozenset[str] = frozenset(
    {"length", "invalid_json", "schema", "no_tool_call", "empty"}
)


@dataclass(frozen=True)
class ModelReply:
    """A decoded reply: ``value`` is the parsed JSON (or the text for ``complete_text``)."""

    value: Any
    text: str
    finish_reason: str
    input_tokens: int
    output_tokens: int
    model: str
    latency_s: float
    response_id: str = ""  # the endpoint's id of the completion, when it gave one
    cached_tokens: int = 0  # of input_tokens, read from the endpoint's prompt cache


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model; ``parameters`` is its JSON Schema (an object schema)."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolChoice:
    """The tool call the model made.

    ``reply.value`` is ``{"tool": name, "arguments": {...}}`` in both modes. ``call_id`` is the
    endpoint's id in native mode and generated in structured mode, so tool-result messages can
    always refer to it.
    """

    name: str
    arguments: dict[str, Any]
    reply: ModelReply
    call_id: str


class ModelError(Exception):
    """Any failed model call. ``kind`` says what went wrong; ``recoverable`` whether to re-ask.

    ``text`` holds what the model wrote (when it wrote something), so the loop can show the model
    its own mistake. Messages name the role, model and endpoint, never the API key.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        role: str = "",
        model: str = "",
        endpoint: str = "",
        text: str = "",
        status: int | None = None,
        reply: ModelReply | None = None,
    ) -> None:
        where = f"model {model!r} for role {role!r} at {endpoint}" if model else ""
        super().__init__(f"{where}: {message}" if where else message)
        self.kind: ErrorKind = kind
        self.detail = message
        self.role = role
        self.model = model
        self.endpoint = endpoint
        self.text = text
        self.status = status
        self.reply = reply

    @property
    def recoverable(self) -> bool:
        """True when the model's own output was at fault, so asking again may succeed."""
        return self.kind in RECOVERABLE_KINDS

    @property
    def reason(self) -> str:
        """A short, stable reason for callers: no URL, no upstream text, no model output."""
        if self.kind == "http":
            return f"HTTP {self.status}" if self.status else "HTTP error"
        if self.kind == "transport":
            return "timed out" if self.detail.startswith("timed out") else "endpoint unreachable"
        return _REASONS.get(self.kind, self.kind)

    @property
    def public(self) -> str:
        """What a caller is shown, e.g. "the planner model failed (HTTP 500)"; ``str()`` holds
        the details (endpoint, status text, the model's output) for logs and spans."""
        return f"the {self.role or 'model'} model failed ({self.reason})"


_REASONS = {
    "length": "reply cut short at max_tokens",
    "invalid_json": "reply not valid JSON",
    "schema": "reply did not match its schema",
    "no_tool_call": "reply had no tool call",
    "empty": "empty reply",
}


class ChatModel(Protocol):
    """One role's model, as the loop uses it.

    ``model`` names it on records and spans; ``tool_call_mode`` says whether the planner gets a
    root union (``structured``: grammar-constrained decoding) or strict mode (``native``);
    ``endpoint`` and ``embedded`` name where it runs (spans, logs).
    """

    role: str
    model: str
    tool_call_mode: ToolCallMode
    endpoint: str
    embedded: bool

    async def complete_text(self, messages: list[dict[str, Any]]) -> ModelReply:
        """Free text."""
        ...

    async def complete_json(
        self,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        *,
        name: str,
        strict: bool = False,
        on_delta: Callable[[str], None] | None = None,
    ) -> ModelReply:
        """A JSON value valid under ``schema`` (``name`` names the schema; ``strict``: it meets
        OpenAI strict mode); anything else raises ``ModelError``. ``on_delta``: called with
        each piece of the reply's text as it is decoded (streaming), before the whole is
        decoded and validated."""
        ...

    async def choose_tool(
        self,
        messages: list[dict[str, Any]],
        tools: Sequence[ToolSpec],
        *,
        name: str = "tool_call",
        strict: bool = False,
    ) -> ToolChoice:
        """Exactly one call of one of ``tools``, its arguments valid under its parameters."""
        ...

    async def aclose(self) -> None:
        """Release what the model holds (connections)."""
        ...


def decode_json(text: str | None) -> Any:
    """The JSON value of a reply's text; ``ModelError`` (``empty``, ``invalid_json``) if none."""
    if not text or not text.strip():
        raise ModelError("empty", "the reply had no content")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ModelError("invalid_json", f"the reply is not valid JSON ({exc})") from exc


def schema_problem(value: Any, schema: dict[str, Any], *, what: str) -> str:
    """Why ``value`` does not match ``schema``, naming the path ("" when it matches)."""
    compiled = validator(schema)
    if compiled.is_valid(value):  # the common case; finding the best error is slower
        return ""
    error = jsonschema.exceptions.best_match(compiled.iter_errors(value))
    if error is None:
        return ""
    path = "/".join(str(p) for p in error.absolute_path) or "(root)"
    message = error.message if len(error.message) <= 300 else error.message[:300] + "…"
    return f"{what} does not match its schema at {path}: {message}"
