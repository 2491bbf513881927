"""The spans of a run, following the OpenTelemetry GenAI semantic conventions.

The tree of one run::

    agentd.v1.AgentService/Run              SERVER  (ServerSpans, parented by the caller)
    └─ invoke_agent agentd                  run_span(): the run's trace id comes from here
       ├─ plan / replan                     planning(): one per planner round
       │  └─ chat {model}                   chat_span() (model_spans.py): every model call
       ├─ execute_tool {tool}               tool_span(): every tool call; parallel ones overlap
       │  ├─ chat {model}                   (the executor filling in arguments)
       │  └─ pkg.Service/Method  SERVER     (the upstream, joined through `traceparent`)
       ├─ chat {model}                      (the responder; guard calls alike)
       └─ apply_guardrail {name}            guardrail_span(): the hook for guardrails

Each span also carries the OpenInference attributes of the same data (``openinference.py``:
AGENT, CHAIN, LLM, TOOL, GUARDRAIL, EVALUATOR), so Arize Phoenix shows a run as an agent; the
SERVER span a run starts in becomes a CHAIN with the run's input and output (Phoenix lists
traces by their root span).

Message content (prompts, completions, tool arguments and results) goes on spans only when
``[telemetry] capture_content`` is on, capped at ``max_content_chars``, and with every forwarded
caller credential scrubbed. Helpers here are context managers so the loop keeps one ``with`` per
place and reads like the loop, not like instrumentation.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import grpc
import structlog
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

import agentd.telemetry.metrics as metrics
import agentd.telemetry.openinference as oi
from agentd.telemetry.redact import NONE, Redactor
from agentd.telemetry.setup import AGENT_NAME

if TYPE_CHECKING:
    from agentd.config import Config
    from agentd.loop.plan import LoopTool
    from agentd.loop.state import RunState, StepRecord


log = structlog.get_logger("agentd.telemetry")


class _Tracer:
    """agentd's tracer from the provider installed now, so module import order does not
    matter; the SDK's own once one is installed, since the API's proxy tracer wraps every
    span in a second context manager (a cost on the hot path, several spans per run)."""

    def __init__(self) -> None:
        self.provider: trace.TracerProvider | None = None
        self.tracer: trace.Tracer = trace.get_tracer("agentd")

    def start_as_current_span(self, name: str, **kwargs: Any) -> Any:
        provider = trace.get_tracer_provider()
        if provider is not self.provider:
            self.provider = provider
            self.tracer = provider.get_tracer("agentd")
        return self.tracer.start_as_current_span(name, **kwargs)


tracer = _Tracer()

P = ParamSpec("P")
T = TypeVar("T")


# --- what one run records ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunTelemetry:
    """Per-run settings the span helpers read: content capture, prices, secrets to scrub."""

    capture_content: bool = False
    max_content_chars: int = 4000
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # USD per Mtok in/out
    redactor: Redactor = NONE
    conversation_id: str = ""

    @classmethod
    def of(
        cls, config: Config, secrets: Iterable[str] | Redactor = (), conversation_id: str = ""
    ) -> Any:
        return cls(
            capture_content=config.telemetry.capture_content,
            max_content_chars=config.telemetry.max_content_chars,
            prices={
                model: (price.input_per_mtok, price.output_per_mtok)
                for model, price in config.pricing.items()
            },
            redactor=secrets if isinstance(secrets, Redactor) else Redactor.of(secrets),
            conversation_id=conversation_id,
        )

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """USD for one call from the price table; 0 for an unpriced model."""
        price = self.prices.get(model)
        if price is None:
            return 0.0
        return (input_tokens * price[0] + output_tokens * price[1]) / 1_000_000

    def scrub(self, text: str) -> str:
        """Remove every secret of the run (and its encodings), wherever it appears."""
        return self.redactor.text(text)

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


def hex_span_id(span: Span) -> str:
    return format(span.get_span_context().span_id, "016x")


_RUN_ERRORS = {"failed", "limits_exceeded", "deadline_exceeded", "cancelled"}


@contextmanager
def run_span(
    run: RunState,
    config: Config,
    *,
    secrets: Iterable[str] | Redactor = (),
    provider: str = "",
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
    attributes |= oi.agent(AGENT_NAME, run.conversation_id, run.user_id)
    entry = _entry_span()
    task = settings.content(run.task)
    if entry is not None:
        entry.set_attributes(oi.entry(run.conversation_id, run.user_id) | oi.value("input", task))
    if task is not None:
        attributes["gen_ai.input.messages"] = json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": task}]}]
        )
        attributes |= oi.value("input", task)
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
                _end_run(span, run, settings, entry)
    finally:
        _run.reset(token)


def _entry_span() -> Span | None:
    """The gRPC SERVER span (Run, RunStream, ApproveRun) a run starts in, if it has no
    OpenInference kind yet; None for runs resumed in the background (no span is current)."""
    span = trace.get_current_span()
    if not span.is_recording() or getattr(span, "kind", None) is not SpanKind.SERVER:
        return None
    if oi.KIND in (getattr(span, "attributes", None) or {}):
        return None
    return span


def _end_run(span: Span, run: RunState, settings: RunTelemetry, entry: Span | None = None) -> None:
    span.set_attribute("agentd.run.status", run.status)
    span.set_attribute("agentd.cost_usd", run.cost_usd)
    span.set_attribute("gen_ai.usage.input_tokens", sum(u.input_tokens for u in run.usage.values()))
    span.set_attribute(
        "gen_ai.usage.output_tokens", sum(u.output_tokens for u in run.usage.values())
    )
    span.set_attributes(
        oi.token_counts(
            sum(u.input_tokens for u in run.usage.values()),
            sum(u.output_tokens for u in run.usage.values()),
        )
        | oi.cost(run.cost_usd)
    )
    if run.status in _RUN_ERRORS:
        span.set_attribute("error.type", run.status)
        span.set_status(Status(StatusCode.ERROR, settings.scrub(run.error)[:500]))
    elif (output := settings.content(run.output)) is not None:
        span.set_attribute(
            "gen_ai.output.messages",
            json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": output}]}]),
        )
        span.set_attributes(oi.value("output", output))
        if entry is not None:
            entry.set_attributes(oi.value("output", output))
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
        attributes |= oi.kind(oi.CHAIN)
        if reason:
            attributes["agentd.plan.reason"] = current().scrub(str(reason))[:500]
            attributes |= oi.value("input", current().content(str(reason)))
        with tracer.start_as_current_span(
            "replan" if reason else "plan", attributes=attributes
        ) as span:
            plan = await fn(*args, **kwargs)
            span.set_attribute("agentd.plan.revision", getattr(plan, "revision", 0))
            span.set_attribute("agentd.plan.steps", len(getattr(plan, "steps", ())))
            span.set_attribute(
                "agentd.plan.direct_answer", bool(getattr(plan, "direct_answer", ""))
            )
            offered = getattr(plan, "offered_tools", ())
            if offered:  # the catalog was shortlisted for this task
                span.set_attribute("agentd.plan.offered_tools", list(offered))
            examples = getattr(plan, "examples", ())
            if examples:  # the plan library's worked examples it was shown
                span.set_attribute("agentd.plan.examples", list(examples))
            dropped = getattr(plan, "dropped", ())
            if dropped:  # arguments the task did not ask for (agentd.loop.grounding)
                span.set_attribute("agentd.plan.dropped_arguments", list(dropped))
            steps = [
                {"id": s.id, "tool": s.tool, "arguments": s.arguments}
                for s in getattr(plan, "steps", ())
            ]
            shown = {"steps": steps, "direct_answer": getattr(plan, "direct_answer", "")}
            span.set_attributes(oi.value("output", current().content(shown), is_json=True))
            return plan

    return traced


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
    attributes |= oi.tool(tool.name, record.id, tool.description)
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
        span.set_attributes(oi.value("input", arguments, is_json=True))
    if record.result is not None and (result := settings.content(record.result)) is not None:
        span.set_attribute("gen_ai.tool.call.result", result)
        span.set_attributes(oi.value("output", result, is_json=True))
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

    Guard model calls made inside (through ``Session.ask``) become its children.
    """
    with tracer.start_as_current_span(
        f"apply_guardrail {name}",
        attributes={
            "agentd.operation": "guardrail",
            "agentd.guardrail.name": name,
            "agentd.guardrail.target": target,
        }
        | oi.kind(oi.GUARDRAIL),
    ) as span:
        yield GuardrailSpan(span, name)
