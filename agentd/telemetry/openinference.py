"""OpenInference attributes, set beside the GenAI ones from the same data.

Arize Phoenix (and other OpenInference readers) classify a span by ``openinference.span.kind``
and show messages from flattened keys such as ``llm.input_messages.0.message.content``; the
GenAI conventions' JSON attributes mean nothing to them. The span helpers in ``spans.py`` call
these functions with values they already hold, so both vocabularies always agree.

Every piece of content passes through ``RunTelemetry.content`` (capture switch, size cap,
credential scrubbing) before it gets here; functions that take content return nothing for it
when capture is off.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from openinference.semconv.trace import (
    MessageAttributes,
    OpenInferenceMimeTypeValues,
    OpenInferenceSpanKindValues,
    SpanAttributes,
)


class RunTelemetry(Protocol):
    """What the message attributes read of a run's settings (spans.RunTelemetry is one; named
    here, not imported, so that spans -> openinference is the only direction)."""

    @property
    def capture_content(self) -> bool: ...

    def content(self, value: Any) -> str | None: ...


KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND
AGENT = OpenInferenceSpanKindValues.AGENT.value
CHAIN = OpenInferenceSpanKindValues.CHAIN.value
LLM = OpenInferenceSpanKindValues.LLM.value
TOOL = OpenInferenceSpanKindValues.TOOL.value
GUARDRAIL = OpenInferenceSpanKindValues.GUARDRAIL.value
EVALUATOR = OpenInferenceSpanKindValues.EVALUATOR.value

_JSON = OpenInferenceMimeTypeValues.JSON.value
_TEXT = OpenInferenceMimeTypeValues.TEXT.value


def kind(value: str) -> dict[str, Any]:
    return {KIND: value}


def agent(name: str, conversation_id: str, user_id: str) -> dict[str, Any]:
    """The ``invoke_agent`` span: an AGENT, grouped into a Phoenix session by conversation."""
    attributes: dict[str, Any] = {KIND: AGENT, SpanAttributes.AGENT_NAME: name}
    if conversation_id:
        attributes[SpanAttributes.SESSION_ID] = conversation_id
    if user_id:
        attributes[SpanAttributes.USER_ID] = user_id
    return attributes


def entry(conversation_id: str, user_id: str) -> dict[str, Any]:
    """The gRPC SERVER span a run starts in: Phoenix lists a trace by its root span (kind,
    input, output, user), and without these that row says ``unknown`` with nothing in it."""
    attributes: dict[str, Any] = {KIND: CHAIN}
    if conversation_id:
        attributes[SpanAttributes.SESSION_ID] = conversation_id
    if user_id:
        attributes[SpanAttributes.USER_ID] = user_id
    return attributes


def value(direction: str, content: str | None, *, is_json: bool = False) -> dict[str, Any]:
    """``input.value``/``output.value`` and their mime type; nothing when capture is off."""
    if content is None:
        return {}
    key, mime = (
        (SpanAttributes.INPUT_VALUE, SpanAttributes.INPUT_MIME_TYPE)
        if direction == "input"
        else (SpanAttributes.OUTPUT_VALUE, SpanAttributes.OUTPUT_MIME_TYPE)
    )
    return {key: content, mime: _JSON if is_json else _TEXT}


def llm(model: str, provider: str, conversation_id: str) -> dict[str, Any]:
    """What a ``chat`` span knows before the call: an LLM span and its model."""
    attributes: dict[str, Any] = {
        KIND: LLM,
        SpanAttributes.LLM_MODEL_NAME: model,
        SpanAttributes.LLM_PROVIDER: provider,
    }
    if conversation_id:
        attributes[SpanAttributes.SESSION_ID] = conversation_id
    return attributes


def invocation_parameters(temperature: float, max_tokens: int) -> dict[str, Any]:
    return {
        SpanAttributes.LLM_INVOCATION_PARAMETERS: json.dumps(
            {"temperature": temperature, "max_tokens": max_tokens}
        )
    }


def messages(
    direction: str, items: Iterable[Mapping[str, Any]], settings: RunTelemetry
) -> dict[str, Any]:
    """Flattened ``llm.{input,output}_messages.N.message.{role,content}``, each capped and scrubbed.

    Empty when capture is off.
    """
    if not settings.capture_content:
        return {}
    prefix = (
        SpanAttributes.LLM_INPUT_MESSAGES
        if direction == "input"
        else SpanAttributes.LLM_OUTPUT_MESSAGES
    )
    attributes: dict[str, Any] = {}
    for index, message in enumerate(items):
        attributes[f"{prefix}.{index}.{MessageAttributes.MESSAGE_ROLE}"] = str(
            message.get("role", "")
        )
        content = settings.content(str(message.get("content") or ""))
        if content is not None:
            attributes[f"{prefix}.{index}.{MessageAttributes.MESSAGE_CONTENT}"] = content
    return attributes


def token_counts(input_tokens: int, output_tokens: int, cached: int = 0) -> dict[str, Any]:
    counts = {
        SpanAttributes.LLM_TOKEN_COUNT_PROMPT: input_tokens,
        SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: output_tokens,
        SpanAttributes.LLM_TOKEN_COUNT_TOTAL: input_tokens + output_tokens,
    }
    if cached:
        counts[SpanAttributes.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ] = cached
    return counts


def cost(usd: float) -> dict[str, Any]:
    return {SpanAttributes.LLM_COST_TOTAL: usd} if usd else {}


def tool(name: str, call_id: str, description: str = "") -> dict[str, Any]:
    attributes: dict[str, Any] = {
        KIND: TOOL,
        SpanAttributes.TOOL_NAME: name,
        SpanAttributes.TOOL_ID: call_id,
    }
    if description:
        attributes[SpanAttributes.TOOL_DESCRIPTION] = description
    return attributes


__all__ = [
    "AGENT",
    "CHAIN",
    "EVALUATOR",
    "GUARDRAIL",
    "KIND",
    "LLM",
    "TOOL",
    "agent",
    "cost",
    "entry",
    "invocation_parameters",
    "kind",
    "llm",
    "messages",
    "token_counts",
    "tool",
    "value",
]
