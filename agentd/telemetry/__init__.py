"""agentd's telemetry: OpenTelemetry set-up, the spans of a run, metrics and logs.

Everything the loop and the edge record goes through here, so instrumentation stays one
``with`` per place in the code it observes.
"""

from agentd.telemetry.model_spans import capture_request, capture_response, chat_span, provider_name
from agentd.telemetry.server import server_spans
from agentd.telemetry.setup import flush, setup_metrics, setup_tracing, shutdown
from agentd.telemetry.spans import (
    AGENT_NAME,
    GuardrailSpan,
    RunTelemetry,
    current,
    guardrail_span,
    planning,
    run_span,
    tool_span,
    with_trace_context,
)

__all__ = [
    "AGENT_NAME",
    "GuardrailSpan",
    "RunTelemetry",
    "capture_request",
    "capture_response",
    "chat_span",
    "current",
    "flush",
    "guardrail_span",
    "planning",
    "provider_name",
    "run_span",
    "server_spans",
    "setup_metrics",
    "setup_tracing",
    "shutdown",
    "tool_span",
    "with_trace_context",
]
