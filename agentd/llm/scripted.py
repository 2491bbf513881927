"""``ScriptedChatModel``: a ``ChatModel`` that answers from a script, with no socket.

For tests of the loop and for trying agentd without a model: replies are queued per request
name, the way ``tests/support/scripted_llm.py``'s ``when=`` keys them over HTTP — the schema
name for ``complete_json`` (``plan``, ``answer``, ``guard_verdict``), the ``name`` of a
``choose_tool`` call (``step_arguments``, ``react_step``), ``text`` for ``complete_text``. A
reply is checked as an endpoint's would be (JSON, the schema, the offered tools), so a
scripted mistake reaches the loop as the same ``ModelError``. Every request is recorded.

    model = ScriptedChatModel()
    model.reply("plan", {"steps": [], "answer": "hello", "rationale": "no tool needed"})
    agent = Agent(dict.fromkeys(ROLES, model), limits)
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentd.config import ToolCallMode
from agentd.llm.model import ModelError, ModelReply, ToolChoice, ToolSpec, decode_json
from agentd.llm.model import schema_problem as _problem

__all__ = ["Request", "ScriptedChatModel"]


@dataclass
class Request:
    """One request the model got: its name, messages, and the schema or tools it was given."""

    name: str
    messages: list[dict[str, Any]]
    schema: dict[str, Any] | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    strict: bool = False


@dataclass
class _Rule:
    when: str | None  # None: any request
    value: Any  # JSON-dumped unless a str
    error: ModelError | None
    finish_reason: str
    times: int | None  # None: forever


class ScriptedChatModel:
    """Replies from a script; the same object may serve every role."""

    def __init__(
        self,
        model: str = "scripted-model",
        *,
        role: str = "",
        tool_call_mode: ToolCallMode = "structured",
    ) -> None:
        self.role = role
        self.model = model
        self.tool_call_mode: ToolCallMode = tool_call_mode
        self.endpoint = "scripted:"
        self.embedded = False
        self.requests: list[Request] = []
        self.responder: Callable[[Request], Any] | None = None  # when no rule matches
        self._rules: list[_Rule] = []

    def __repr__(self) -> str:
        return f"ScriptedChatModel(model={self.model!r}, pending={self.pending()})"

    def reply(
        self,
        when: str | None,
        value: Any = None,
        *,
        error: ModelError | None = None,
        finish_reason: str = "stop",
        times: int | None = 1,
    ) -> None:
        """Append a rule: the next request named ``when`` (None: any) gets ``value`` (a str is
        sent as it is, e.g. broken JSON; anything else as JSON), or raises ``error``. Rules are
        tried in order; each is used ``times`` times (None: forever)."""
        self._rules.append(_Rule(when, value, error, finish_reason, times))

    def pending(self) -> list[str]:
        """The rules with uses left, by name ("any" for ``when=None``)."""
        return [r.when or "any" for r in self._rules if r.times is None or r.times > 0]

    def named(self, name: str) -> list[Request]:
        """The requests named ``name``, in order."""
        return [r for r in self.requests if r.name == name]

    # -- ChatModel ---------------------------------------------------------------------------

    async def complete_text(self, messages: list[dict[str, Any]]) -> ModelReply:
        reply = self._answer(Request("text", _copy(messages)))
        if not reply.text.strip():
            raise self._error("empty", "the reply had no content", reply)
        return dataclasses.replace(reply, value=reply.text)

    async def complete_json(
        self,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        *,
        name: str,
        strict: bool = False,
        on_delta: Callable[[str], None] | None = None,
    ) -> ModelReply:
        reply = self._answer(Request(name, _copy(messages), schema=schema, strict=strict))
        if on_delta is not None:  # streamed a few characters at a time, as a tokenizer would
            for piece in re.findall(r"\s*\S{1,4}|\s+", reply.text):
                on_delta(piece)
        value = self._decode(reply)
        self._check(value, schema, reply, f"the {name!r} reply")
        return dataclasses.replace(reply, value=value)

    async def choose_tool(
        self,
        messages: list[dict[str, Any]],
        tools: Sequence[ToolSpec],
        *,
        name: str = "tool_call",
        strict: bool = False,
    ) -> ToolChoice:
        if not tools:
            raise ValueError("choose_tool needs at least one tool")
        reply = self._answer(Request(name, _copy(messages), tools=list(tools), strict=strict))
        value = self._decode(reply)
        if isinstance(value, dict) and isinstance(value.get("call"), dict):
            value = value["call"]  # the structured shape for several tools
        by_name = {t.name: t for t in tools}
        called = value.get("tool") if isinstance(value, dict) else None
        if called not in by_name:
            raise self._error(
                "no_tool_call", f"called unknown tool {called!r}; offered {sorted(by_name)}", reply
            )
        arguments = value.get("arguments")
        if not isinstance(arguments, dict):
            raise self._error("schema", "tool arguments must be a JSON object", reply)
        self._check(arguments, by_name[called].parameters, reply, f"arguments of {called!r}")
        reply = dataclasses.replace(reply, value={"tool": called, "arguments": arguments})
        return ToolChoice(called, arguments, reply, f"call_scripted_{len(self.requests)}")

    async def aclose(self) -> None:
        return None

    # -- plumbing ----------------------------------------------------------------------------

    def _answer(self, request: Request) -> ModelReply:
        self.requests.append(request)
        rule = next((r for r in self._rules if _matches(r, request.name)), None)
        if rule is None and self.responder is not None:
            rule = _Rule(request.name, self.responder(request), None, "stop", None)
        if rule is None:
            raise ModelError(
                "http",
                f"ScriptedChatModel: no reply scripted for {request.name!r}; "
                f"rules with uses left: {self.pending()}",
                role=self.role,
                model=self.model,
                endpoint=self.endpoint,
                status=500,
            )
        if rule.times is not None:
            rule.times -= 1
        if rule.error is not None:
            raise rule.error
        text = rule.value if isinstance(rule.value, str) else json.dumps(rule.value)
        tokens = _usage(request.messages, text)
        reply = ModelReply(None, text, rule.finish_reason, *tokens, self.model, 0.0)
        if rule.finish_reason == "length":
            raise self._error("length", "the reply hit max_tokens and was cut off", reply)
        return reply

    def _decode(self, reply: ModelReply) -> Any:
        try:
            return decode_json(reply.text)
        except ModelError as exc:
            raise self._error(exc.kind, exc.detail, reply) from None

    def _check(self, value: Any, schema: dict[str, Any], reply: ModelReply, what: str) -> None:
        problem = _problem(value, schema, what=what)
        if problem:
            raise self._error("schema", problem, reply)

    def _error(self, kind: Any, message: str, reply: ModelReply) -> ModelError:
        return ModelError(
            kind,
            message,
            role=self.role,
            model=self.model,
            endpoint=self.endpoint,
            text=reply.text,
            reply=reply,
        )


def _matches(rule: _Rule, name: str) -> bool:
    return (rule.times is None or rule.times > 0) and rule.when in (None, name)


def _copy(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as sent: the loop appends to its list after the call."""
    return [dict(m) for m in messages]


def _usage(messages: list[dict[str, Any]], text: str) -> tuple[int, int]:
    """(input, output) tokens, about four characters each, as the HTTP fake counts them."""
    return max(1, len(json.dumps(messages)) // 4), max(1, len(text) // 4)
