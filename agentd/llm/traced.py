"""``TracedChatModel``: telemetry around any ``ChatModel``, so the model itself has none.

Each call puts what was sent (invocation parameters; the messages when ``[telemetry]
capture_content`` is on) and what came back (response model and id; the completion when
capture is on) on the current ``chat {model}`` span, which the loop opens for each model call
(``telemetry.chat_span``: it owns the call's record, role, prompt, usage and cost).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from agentd import telemetry
from agentd.llm.model import ChatModel, ModelError, ModelReply, ToolChoice, ToolSpec

T = TypeVar("T")


class TracedChatModel:
    """``inner`` with its requests and replies captured on the current span."""

    def __init__(self, inner: ChatModel, *, temperature: float, max_tokens: int) -> None:
        self.inner = inner
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.role = inner.role
        self.model = inner.model
        self.tool_call_mode = inner.tool_call_mode
        self.endpoint = inner.endpoint
        self.embedded = inner.embedded

    def __getattr__(self, name: str) -> Any:  # the rest (api_key, config) is the inner model's
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"TracedChatModel({self.inner!r})"

    async def complete_text(self, messages: list[dict[str, Any]]) -> ModelReply:
        self._request(messages)
        return self._reply(await self._traced(self.inner.complete_text(messages)))

    async def complete_json(
        self,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        *,
        name: str,
        strict: bool = False,
        on_delta: Callable[[str], None] | None = None,
    ) -> ModelReply:
        self._request(messages)
        call = self.inner.complete_json(
            messages, schema, name=name, strict=strict, on_delta=on_delta
        )
        return self._reply(await self._traced(call))

    async def choose_tool(
        self,
        messages: list[dict[str, Any]],
        tools: Sequence[ToolSpec],
        *,
        name: str = "tool_call",
        strict: bool = False,
    ) -> ToolChoice:
        self._request(messages)
        choice = await self._traced(
            self.inner.choose_tool(messages, tools, name=name, strict=strict)
        )
        self._reply(choice.reply)
        return choice

    async def aclose(self) -> None:
        await self.inner.aclose()

    def _request(self, messages: list[dict[str, Any]]) -> None:
        telemetry.capture_request(
            messages, temperature=self.temperature, max_tokens=self.max_tokens
        )

    def _reply(self, reply: ModelReply) -> ModelReply:
        telemetry.capture_response(reply, reply.response_id or None)
        return reply

    async def _traced(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except ModelError as exc:  # what the model wrote before it failed is part of the story
            if exc.reply is not None:
                self._reply(exc.reply)
            raise
