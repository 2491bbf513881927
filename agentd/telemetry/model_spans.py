"""The spans of a run's model calls: ``chat {model}`` (GenAI conventions and OpenInference LLM
attributes), the request and reply captured on it when ``capture_content`` is on, and the
provider name a run's span reports. Split from spans.py, which holds the run, tool and
guardrail spans these nest in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

import agentd.telemetry.metrics as metrics
import agentd.telemetry.openinference as oi
from agentd.telemetry.setup import AGENT_NAME
from agentd.telemetry.spans import RunTelemetry, current, hex_span_id, log, tracer

if TYPE_CHECKING:
    from agentd.loop.state import ModelCallRecord


# --- model calls ---------------------------------------------------------------------------------


class Endpoint(Protocol):
    """What a span reads of a model (llm.client.ChatModel is one; named here, not imported:
    the model client imports telemetry, never the other way)."""

    @property
    def endpoint(self) -> str: ...
    @property
    def embedded(self) -> bool: ...


class Reply(Protocol):
    """What a span reads of a model's reply (llm.client.ModelReply is one)."""

    @property
    def model(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def finish_reason(self) -> str: ...


def provider_name(model: Endpoint) -> str:
    """``gen_ai.provider.name`` from the endpoint; OpenAI-compatible servers report ``openai``."""
    host = urlsplit(model.endpoint).hostname or ""
    if model.embedded:
        return "llama.cpp"
    if host.endswith(".openai.azure.com"):
        return "azure.ai.openai"
    return "openai"


@contextmanager
def chat_span(record: ModelCallRecord, model: Endpoint) -> Iterator[Span]:
    """The ``chat {model}`` span of one model call; reads ``record`` at the end.

    Sets ``record.span_id`` and ``record.cost_usd``, records the token and duration metrics
    and logs one line. The caller fills in tokens, finish reason, error and duration.
    """
    settings = current()
    endpoint = urlsplit(model.endpoint)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider_name(model),
        "gen_ai.request.model": record.model,
        "gen_ai.agent.name": AGENT_NAME,
        "agentd.role": record.role,
        "agentd.prompt.name": record.prompt,
        "agentd.prompt.version": record.prompt_version,
        "server.address": endpoint.hostname or "",
    }
    if endpoint.port:
        attributes["server.port"] = endpoint.port
    if settings.conversation_id:
        attributes["gen_ai.conversation.id"] = settings.conversation_id
    # Invocation parameters are added by capture_request, which knows them.
    oi_attributes = oi.llm(
        record.model, attributes["gen_ai.provider.name"], settings.conversation_id
    )
    with tracer.start_as_current_span(
        f"chat {record.model}",
        kind=SpanKind.CLIENT,
        attributes=attributes | oi_attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        record.span_id = hex_span_id(span)
        error: BaseException | None = None
        try:
            yield span
        except BaseException as exc:
            error = exc
            raise
        finally:
            _end_chat(span, record, attributes, settings, error)


def _end_chat(
    span: Span,
    record: ModelCallRecord,
    attributes: Mapping[str, Any],
    settings: RunTelemetry,
    error: BaseException | None,
) -> None:
    record.cost_usd = settings.cost(record.model, record.input_tokens, record.output_tokens)
    span.set_attribute("gen_ai.usage.input_tokens", record.input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", record.output_tokens)
    if record.cached_input_tokens:  # included in input_tokens, as the conventions say
        span.set_attribute("gen_ai.usage.cache_read.input_tokens", record.cached_input_tokens)
    span.set_attribute("agentd.cost_usd", record.cost_usd)
    span.set_attributes(
        oi.token_counts(record.input_tokens, record.output_tokens, record.cached_input_tokens)
        | oi.cost(record.cost_usd)
    )
    if record.finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", [record.finish_reason])
    error_type = ""
    if record.error or error is not None:
        # "kind: message" from the loop; otherwise the exception's class.
        error_type = record.error.partition(":")[0] if record.error else type(error).__name__
        # The span keeps the whole story (endpoint, status, the model's text); the record
        # the caller sees keeps a short reason.
        detail = error.__cause__ if error is not None and error.__cause__ else error
        message = settings.scrub(str(detail) if detail is not None else record.error)[:500]
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, message))
        if error is not None:
            span.record_exception(error, attributes={"exception.message": message})
    metric_attributes = {
        k: attributes[k]
        for k in ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model")
    }
    metric_attributes["agentd.role"] = record.role
    metrics.record_model_call(
        metric_attributes, record.input_tokens, record.output_tokens, record.duration_s, error_type
    )
    log.info(
        "model call",
        role=record.role,
        model=record.model,
        prompt=record.prompt,
        prompt_version=record.prompt_version,
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        cost_usd=round(record.cost_usd, 6),
        duration_ms=round(record.duration_s * 1000, 1),
        finish_reason=record.finish_reason or None,
        error=settings.scrub(record.error)[:300] or None,
    )


def capture_request(messages: list[dict[str, Any]], *, temperature: float, max_tokens: int) -> None:
    """Request attributes of the current chat span; the messages only when capture is on."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute("gen_ai.request.temperature", temperature)
    span.set_attribute("gen_ai.request.max_tokens", max_tokens)
    span.set_attributes(oi.invocation_parameters(temperature, max_tokens))
    settings = current()
    if not settings.capture_content:
        return
    # OpenInference keeps the system message in the list, each message capped on its own.
    span.set_attributes(oi.messages("input", messages, settings))
    # The span lists' input column: the turn that prompted this call, not the whole prompt.
    if messages:
        span.set_attributes(
            oi.value("input", settings.content(str(messages[-1].get("content") or "")))
        )
    # System instructions get their own attribute (as the GenAI conventions have it): they
    # hold the whole tool catalog, and would otherwise push the task past the size cap.
    system = [
        {"type": "text", "content": str(m.get("content") or "")}
        for m in messages
        if m.get("role") == "system"
    ]
    shaped = [
        {
            "role": m.get("role", ""),
            "parts": [{"type": "text", "content": str(m.get("content") or "")}],
        }
        for m in messages
        if m.get("role") != "system"
    ]
    for key, value in (("gen_ai.system_instructions", system), ("gen_ai.input.messages", shaped)):
        text = settings.content(value) if value else None
        if text is not None:
            span.set_attribute(key, text)


def capture_response(reply: Reply, response_id: str | None) -> None:
    """Response attributes of the current chat span; the completion only when capture is on."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute("gen_ai.response.model", reply.model)
    if response_id:
        span.set_attribute("gen_ai.response.id", response_id)
    settings = current()
    if reply.text:
        reply_message = {"role": "assistant", "content": reply.text}
        span.set_attributes(oi.messages("output", [reply_message], settings))
    text = settings.content(reply.text) if reply.text else None
    # Phoenix shows output.value in its span lists; without it, it makes one from the response id.
    span.set_attributes(oi.value("output", text))
    if text is not None:
        span.set_attribute(
            "gen_ai.output.messages",
            json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": text}],
                        "finish_reason": reply.finish_reason,
                    }
                ]
            ),
        )
