"""OpenTelemetry for agentd: set-up from the standard OTEL_* variables, and the spans of a run.

A real SDK tracer provider is always installed (unless OTEL_SDK_DISABLED=true) so every run has
a trace id to report, even when nothing is exported. Spans follow the GenAI semantic
conventions::

    agentd.v1.AgentService/Run              SERVER  (ServerSpans, parented by the caller)
    └─ invoke_agent agentd                  run_span(): the run's trace id comes from here
       ├─ plan / replan                     planning(): one per planner round
       │  └─ chat {model}                   chat_span(): every model call, role on agentd.role
       ├─ execute_tool {tool}               tool_span(): every tool call; parallel ones overlap
       │  ├─ chat {model}                   (the executor filling in arguments)
       │  └─ pkg.Service/Method  SERVER     (the upstream, joined through `traceparent`)
       ├─ chat {model}                      (the responder; guard calls alike)
       └─ apply_guardrail {name}            guardrail_span(): the hook for guardrails

Message content (prompts, completions, tool arguments and results) goes on spans only when
``[telemetry] capture_content`` is on, capped at ``max_content_chars``, and with every forwarded
caller credential scrubbed. Helpers here are context managers so the loop keeps one ``with`` per
place and reads like the loop, not like instrumentation.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import grpc
import structlog
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from agentd import metrics

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider

    from agentd.config import Config
    from agentd.llm.client import ChatModel, ModelReply
    from agentd.loop.plan import LoopTool
    from agentd.loop.state import ModelCallRecord, RunState, StepRecord

__all__ = [
    "AGENT_NAME",
    "GuardrailSpan",
    "RunTelemetry",
    "ServerSpans",
    "capture_request",
    "capture_response",
    "chat_span",
    "flush",
    "guardrail_span",
    "planning",
    "run_span",
    "setup_metrics",
    "setup_tracing",
    "shutdown",
    "tool_span",
    "with_trace_context",
]

AGENT_NAME = "agentd"
log = structlog.get_logger("agentd.telemetry")
# A proxy until a provider is installed, so module import order does not matter.
tracer = trace.get_tracer("agentd")

P = ParamSpec("P")
T = TypeVar("T")


# --- set-up ------------------------------------------------------------------------------------

_tracer_provider: TracerProvider | None = None
_meter_provider: MeterProvider | None = None


def _version() -> str:
    try:
        return importlib_metadata.version("agentd")
    except importlib_metadata.PackageNotFoundError:  # running from a source tree
        return "0.0.0"


def _resource(env: Mapping[str, str], service_name: str) -> Resource:
    return Resource.create(
        {
            "service.name": env.get("OTEL_SERVICE_NAME") or service_name,
            "service.version": _version(),
        }
    )


def _disabled(env: Mapping[str, str]) -> bool:
    return env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def setup_tracing(
    env: Mapping[str, str] | None = None,
    *,
    service_name: str = AGENT_NAME,
    processors: Iterable[SpanProcessor] = (),
) -> TracerProvider | None:
    """Install the SDK tracer provider once, exporting as OTEL_TRACES_EXPORTER says.

    When an SDK provider is already installed (by an earlier call, by the embedding
    application or by a test with an in-memory exporter) it is kept: the global provider can
    be set only once per process. ``processors`` are added to whichever provider is in use.
    """
    global _tracer_provider
    env = os.environ if env is None else env
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        for processor in processors:
            current.add_span_processor(processor)
        return current
    if _disabled(env):
        return None
    provider = TracerProvider(resource=_resource(env, service_name))
    for processor in processors:
        provider.add_span_processor(processor)
    for name in _names(env.get("OTEL_TRACES_EXPORTER", "none")):
        exporter = _span_exporter(name, env)
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _tracer_provider = provider
    return provider


def setup_metrics(
    env: Mapping[str, str] | None = None, *, service_name: str = AGENT_NAME
) -> MeterProvider | None:
    """Install an SDK meter provider when OTEL_METRICS_EXPORTER names an exporter (default none).

    With none, the API's no-op meter costs nothing, and a test or embedding application
    stays free to install its own provider.
    """
    global _meter_provider
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    env = os.environ if env is None else env
    names = _names(env.get("OTEL_METRICS_EXPORTER", "none"))
    if _disabled(env) or not names or _meter_provider is not None:
        return _meter_provider
    if isinstance(otel_metrics.get_meter_provider(), MeterProvider):
        return None  # someone else's
    readers = [PeriodicExportingMetricReader(_metric_exporter(name, env)) for name in names]
    provider = MeterProvider(resource=_resource(env, service_name), metric_readers=readers)
    otel_metrics.set_meter_provider(provider)
    _meter_provider = provider
    return provider


def flush(timeout_s: float = 5.0) -> None:
    """Export what is buffered (daemon stop); the provider keeps working afterwards."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush(int(timeout_s * 1000))
    if _meter_provider is not None:
        _meter_provider.force_flush(int(timeout_s * 1000))


def shutdown() -> None:
    """Flush and close the providers this module installed (process exit)."""
    global _tracer_provider, _meter_provider
    if _tracer_provider is not None:
        _tracer_provider.shutdown()
        _tracer_provider = None
    if _meter_provider is not None:
        _meter_provider.shutdown()
        _meter_provider = None


def _names(value: str) -> list[str]:
    return [n for n in (part.strip().lower() for part in value.split(",")) if n and n != "none"]


def _protocol(env: Mapping[str, str], signal: str) -> str:
    return (
        env.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()


def _endpoint(env: Mapping[str, str], signal: str, http: bool) -> str | None:
    """The endpoint from ``env`` (which may not be os.environ); the exporters read only that."""
    specific = env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    if specific:
        return specific
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not base:
        return None
    # The HTTP exporters append the signal's path to the generic endpoint; gRPC uses it as is.
    return f"{base.rstrip('/')}/v1/{signal.lower()}" if http else base


def _span_exporter(name: str, env: Mapping[str, str]) -> SpanExporter | None:
    if name == "console":
        return ConsoleSpanExporter()
    if name != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console or none)")
    protocol = _protocol(env, "TRACES")
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        return HttpExporter(endpoint=_endpoint(env, "TRACES", http=True))
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=_endpoint(env, "TRACES", http=False))
    raise ValueError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol {protocol!r} (grpc or http/protobuf)"
    )


def _metric_exporter(name: str, env: Mapping[str, str]) -> Any:
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter()
    if name != "otlp":
        raise ValueError(
            f"OTEL_METRICS_EXPORTER: unknown exporter {name!r} (otlp, console or none)"
        )
    protocol = _protocol(env, "METRICS")
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpExporter,
        )

        return HttpExporter(endpoint=_endpoint(env, "METRICS", http=True))
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(endpoint=_endpoint(env, "METRICS", http=False))
    raise ValueError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol {protocol!r} (grpc or http/protobuf)"
    )


# --- what one run records ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunTelemetry:
    """Per-run settings the span helpers read: content capture, prices, secrets to scrub."""

    capture_content: bool = False
    max_content_chars: int = 4000
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # USD per Mtok in/out
    secrets: tuple[str, ...] = ()
    conversation_id: str = ""

    @classmethod
    def of(cls, config: Config, secrets: Iterable[str] = (), conversation_id: str = "") -> Any:
        return cls(
            capture_content=config.telemetry.capture_content,
            max_content_chars=config.telemetry.max_content_chars,
            prices={
                model: (price.input_per_mtok, price.output_per_mtok)
                for model, price in config.pricing.items()
            },
            # Short values would scrub ordinary words; real credentials are longer.
            secrets=tuple(sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)),
            conversation_id=conversation_id,
        )

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """USD for one call from the price table; 0 for an unpriced model."""
        price = self.prices.get(model)
        if price is None:
            return 0.0
        return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000

    def scrub(self, text: str) -> str:
        """Remove every forwarded credential, wherever it appears."""
        for secret in self.secrets:
            text = text.replace(secret, "[REDACTED]")
        return text

    def content(self, value: Any) -> str | None:
        """``value`` as capped, scrubbed text for a span, or None when capture is off."""
        if not self.capture_content:
            return None
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        text = self.scrub(text)
        if len(text) > self.max_content_chars:
            cut = len(text) - self.max_content_chars
            text = f"{text[: self.max_content_chars]}…[{cut} more chars]"
        return text


_run: ContextVar[RunTelemetry | None] = ContextVar("agentd_run_telemetry", default=None)
_DEFAULTS = RunTelemetry()


def current() -> RunTelemetry:
    """The settings of the run in progress (defaults outside a run)."""
    return _run.get() or _DEFAULTS


def _hex_span_id(span: Span) -> str:
    return format(span.get_span_context().span_id, "016x")


_RUN_ERRORS = {"failed", "limits_exceeded", "deadline_exceeded", "cancelled"}


@contextmanager
def run_span(
    run: RunState, config: Config, *, secrets: Iterable[str] = (), provider: str = ""
) -> Iterator[Span]:
    """The ``invoke_agent`` span of one run; binds ``run_id`` to every log line inside it.

    Sets ``run.trace_id``; at the end records the run's status, cost and metrics.
    """
    settings = RunTelemetry.of(config, secrets, run.conversation_id)
    token = _run.set(settings)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": AGENT_NAME,
        "agentd.run.id": run.run_id,
        "agentd.run.mode": run.mode,
    }
    if provider:
        attributes["gen_ai.provider.name"] = provider
    if run.conversation_id:
        attributes["gen_ai.conversation.id"] = run.conversation_id
    if run.user_id:
        attributes["user.id"] = run.user_id
    if (task := settings.content(run.task)) is not None:
        attributes["gen_ai.input.messages"] = json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": task}]}]
        )
    try:
        with (
            tracer.start_as_current_span(
                f"invoke_agent {AGENT_NAME}", kind=SpanKind.INTERNAL, attributes=attributes
            ) as span,
            structlog.contextvars.bound_contextvars(run_id=run.run_id),
        ):
            run.trace_id = format(span.get_span_context().trace_id, "032x")
            try:
                yield span
            finally:
                _end_run(span, run, settings)
    finally:
        _run.reset(token)


def _end_run(span: Span, run: RunState, settings: RunTelemetry) -> None:
    span.set_attribute("agentd.run.status", run.status)
    span.set_attribute("agentd.cost_usd", run.cost_usd)
    span.set_attribute("gen_ai.usage.input_tokens", sum(u.input_tokens for u in run.usage.values()))
    span.set_attribute(
        "gen_ai.usage.output_tokens", sum(u.output_tokens for u in run.usage.values())
    )
    if run.status in _RUN_ERRORS:
        span.set_attribute("error.type", run.status)
        span.set_status(Status(StatusCode.ERROR, settings.scrub(run.error)[:500]))
    elif (output := settings.content(run.output)) is not None:
        span.set_attribute(
            "gen_ai.output.messages",
            json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": output}]}]),
        )
    metrics.record_run(run.status, run.duration_s or (time.time() - run.start_time))


def planning(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """A ``plan`` (or ``replan``) span around one planner round, its model calls inside.

    A decorator rather than a ``with`` so the planner's body keeps its shape; it reads the
    ``reason`` argument and the returned plan.
    """

    @functools.wraps(fn)
    async def traced(*args: P.args, **kwargs: P.kwargs) -> T:
        reason = kwargs.get("reason", args[1] if len(args) > 1 else None)
        attributes: dict[str, Any] = {"agentd.operation": "replan" if reason else "plan"}
        if reason:
            attributes["agentd.plan.reason"] = current().scrub(str(reason))[:500]
        with tracer.start_as_current_span(
            "replan" if reason else "plan", attributes=attributes
        ) as span:
            plan = await fn(*args, **kwargs)
            span.set_attribute("agentd.plan.revision", getattr(plan, "revision", 0))
            span.set_attribute("agentd.plan.steps", len(getattr(plan, "steps", ())))
            span.set_attribute(
                "agentd.plan.direct_answer", bool(getattr(plan, "direct_answer", ""))
            )
            return plan

    return traced


# --- model calls ---------------------------------------------------------------------------------


def provider_name(model: ChatModel) -> str:
    """``gen_ai.provider.name`` from the endpoint; OpenAI-compatible servers report ``openai``."""
    host = urlsplit(model.endpoint).hostname or ""
    if model.embedded:
        return "llama.cpp"
    if host.endswith(".openai.azure.com"):
        return "azure.ai.openai"
    return "openai"


@contextmanager
def chat_span(record: ModelCallRecord, model: ChatModel) -> Iterator[Span]:
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
    with tracer.start_as_current_span(
        f"chat {record.model}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        record.span_id = _hex_span_id(span)
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
    span.set_attribute("agentd.cost_usd", record.cost_usd)
    if record.finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", [record.finish_reason])
    error_type = ""
    if record.error or error is not None:
        # "kind: message" from the loop; otherwise the exception's class.
        error_type = record.error.partition(":")[0] if record.error else type(error).__name__
        message = settings.scrub(record.error or str(error))[:500]
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
    settings = current()
    if not settings.capture_content:
        return
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


def capture_response(reply: ModelReply, response_id: str | None) -> None:
    """Response attributes of the current chat span; the completion only when capture is on."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute("gen_ai.response.model", reply.model)
    if response_id:
        span.set_attribute("gen_ai.response.id", response_id)
    text = current().content(reply.text) if reply.text else None
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


# --- tool calls ----------------------------------------------------------------------------------


def _grpc_code(name: str) -> int | None:
    code = getattr(grpc.StatusCode, name, None)
    return code.value[0] if isinstance(code, grpc.StatusCode) else None


@contextmanager
def tool_span(tool: LoopTool, record: StepRecord) -> Iterator[Span]:
    """The ``execute_tool {tool}`` span of one step; reads ``record`` (status, error) at the end.

    Argument completion by the executor model happens inside, so its chat span is a child.
    The upstream call made inside carries this span in ``traceparent`` (with_trace_context).
    """
    settings = current()
    service, _, method = record.method.strip("/").rpartition("/")
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool.name,
        "gen_ai.tool.call.id": record.id,
        "gen_ai.tool.type": "extension",  # agent-side calls to external APIs
        "gen_ai.agent.name": AGENT_NAME,
        "rpc.system": "grpc",
        "rpc.service": service,
        "rpc.method": method,
        "agentd.step.plan_revision": record.plan_revision,
        "agentd.tool.side_effects": tool.side_effects,
    }
    if settings.conversation_id:
        attributes["gen_ai.conversation.id"] = settings.conversation_id
    with tracer.start_as_current_span(
        f"execute_tool {tool.name}",
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        error: BaseException | None = None
        try:
            yield span
        except BaseException as exc:
            error = exc
            raise
        finally:
            _end_tool(span, tool, record, settings, error)


def _end_tool(
    span: Span,
    tool: LoopTool,
    record: StepRecord,
    settings: RunTelemetry,
    error: BaseException | None,
) -> None:
    span.set_attribute("agentd.step.status", record.status)
    code = "OK" if record.status == "succeeded" else (record.error_code or record.status.upper())
    if record.status in ("succeeded", "failed") and (number := _grpc_code(code)) is not None:
        span.set_attribute("rpc.grpc.status_code", number)
    if record.result_truncated:
        span.set_attribute("agentd.step.result_truncated", True)
    if (arguments := settings.content(record.arguments)) is not None:
        span.set_attribute("gen_ai.tool.call.arguments", arguments)
    if record.result is not None and (result := settings.content(record.result)) is not None:
        span.set_attribute("gen_ai.tool.call.result", result)
    message = settings.scrub(record.error_message)[:500]
    if record.status in ("failed", "denied") or error is not None:
        span.set_attribute("error.type", record.error_code or type(error).__name__)
        span.set_status(Status(StatusCode.ERROR, message or str(error or "")))
        if error is not None:
            span.record_exception(error)
    metrics.record_tool_call(tool.name, code, record.duration_s)
    log.info(
        "tool call",
        tool=tool.name,
        step=record.id,
        status=record.status,
        code=code,
        duration_ms=round(record.duration_s * 1000, 1),
        error=message or None,
    )


def with_trace_context(metadata: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """``metadata`` plus the W3C ``traceparent`` (and baggage) of the current span."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return (*metadata, *carrier.items())


# --- guardrails ----------------------------------------------------------------------------------


@dataclass
class GuardrailSpan:
    """What guardrail_span yields: the span and a way to record the verdict on it."""

    span: Span
    name: str

    def verdict(self, decision: str, reason: str = "", score: float | None = None) -> None:
        """Record a verdict (``pass``, ``flag``, ``block``) as attributes and an evaluation event."""
        reason = current().scrub(reason)[:500]
        self.span.set_attribute("agentd.guardrail.verdict", decision)
        event: dict[str, Any] = {
            "gen_ai.evaluation.name": self.name,
            "gen_ai.evaluation.score.label": decision,
        }
        if score is not None:
            event["gen_ai.evaluation.score.value"] = score
        if reason:
            event["gen_ai.evaluation.explanation"] = reason
        self.span.add_event("gen_ai.evaluation.result", event)


@contextmanager
def guardrail_span(name: str, target: str) -> Iterator[GuardrailSpan]:
    """``apply_guardrail {name}`` around one check of ``target`` (input, tool_result, answer).

    Guard model calls made inside (through ``_Session.ask``) become its children.
    """
    with tracer.start_as_current_span(
        f"apply_guardrail {name}",
        attributes={
            "agentd.operation": "guardrail",
            "agentd.guardrail.name": name,
            "agentd.guardrail.target": target,
        },
    ) as span:
        yield GuardrailSpan(span, name)


# --- gRPC servers --------------------------------------------------------------------------------

# Server span status is ERROR only for codes that mean the server failed (RPC conventions).
_SERVER_ERRORS = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}


class ServerSpans(grpc.aio.ServerInterceptor):
    """A SERVER span per unary-request call of ``services``, parented by the caller's traceparent.

    Written here because opentelemetry-instrumentation-grpc is not a dependency; health and
    reflection calls are left out so probes do not flood the traces.
    """

    def __init__(self, services: Iterable[str]) -> None:
        self._prefixes = tuple(f"/{s}/" for s in services)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method or ""
        if handler is None or handler.request_streaming or not method.startswith(self._prefixes):
            return handler
        carrier = {
            str(k): v
            for k, v in (details.invocation_metadata or ())  # type: ignore[attr-defined]
            if isinstance(v, str)
        }
        parent = propagate.extract(carrier)
        service, _, name = method[1:].rpartition("/")
        attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}

        def start() -> Any:
            return tracer.start_as_current_span(
                method[1:],
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            )

        if handler.response_streaming:
            stream: Callable[..., Any] = handler.unary_stream  # type: ignore[assignment]

            async def traced_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with start() as span:
                    try:
                        result = stream(request, context)
                        if inspect.isasyncgen(result):
                            async for item in result:
                                yield item
                        elif inspect.isawaitable(result):
                            await result
                    except BaseException as exc:
                        _end_server_span(span, context, exc)
                        raise
                    _end_server_span(span, context, None)

            return grpc.unary_stream_rpc_method_handler(
                traced_stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        unary: Callable[..., Any] = handler.unary_unary  # type: ignore[assignment]

        async def traced(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with start() as span:
                try:
                    result = unary(request, context)
                    if inspect.isawaitable(result):
                        result = await result
                except BaseException as exc:
                    _end_server_span(span, context, exc)
                    raise
                _end_server_span(span, context, None)
                return result

        return grpc.unary_unary_rpc_method_handler(
            traced,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _end_server_span(
    span: Span, context: grpc.aio.ServicerContext, error: BaseException | None
) -> None:
    code = context.code()
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN
        if isinstance(error, BaseException) and type(error).__name__ == "CancelledError":
            code = grpc.StatusCode.CANCELLED
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, code.name))
        if error is not None and not isinstance(error, grpc.aio.AbortError):
            span.record_exception(error)
