"""agentd's OpenTelemetry metrics: token usage and durations by the GenAI conventions, plus tools
and runs.

Instruments come from the global meter, a proxy until a provider is installed (see
``telemetry.setup_metrics``), so recording costs nothing when metrics are off. Attributes are
low-cardinality on purpose: model, role, tool and status, never ids or content.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics

_meter = metrics.get_meter("agentd")

# Bucket advice from the GenAI metric conventions.
_TOKEN_BUCKETS = [4.0**i for i in range(14)]  # 1, 4, 16, ... 67,108,864
_DURATION_BUCKETS = [0.01 * 2**i for i in range(14)]  # 0.01 s ... 81.92 s

token_usage = _meter.create_histogram(
    "gen_ai.client.token.usage",
    unit="{token}",
    description="Number of input and output tokens used per model call",
    explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
)
operation_duration = _meter.create_histogram(
    "gen_ai.client.operation.duration",
    unit="s",
    description="Duration of one model call",
    explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
)
tool_calls = _meter.create_counter(
    "agentd.tool.calls", unit="{call}", description="Tool calls by tool and status"
)
tool_duration = _meter.create_histogram(
    "agentd.tool.duration",
    unit="s",
    description="Duration of one upstream tool call",
    explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
)
runs = _meter.create_counter("agentd.runs", unit="{run}", description="Runs by final status")
run_duration = _meter.create_histogram(
    "agentd.run.duration",
    unit="s",
    description="Duration of one run",
    explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
)


def record_model_call(
    attributes: Mapping[str, Any],
    input_tokens: int,
    output_tokens: int,
    duration_s: float,
    error_type: str = "",
) -> None:
    """Tokens by type and the call's duration; failed calls carry ``error.type``."""
    base = dict(attributes)
    token_usage.record(input_tokens, {**base, "gen_ai.token.type": "input"})
    token_usage.record(output_tokens, {**base, "gen_ai.token.type": "output"})
    if error_type:
        base["error.type"] = error_type
    operation_duration.record(duration_s, base)


def record_tool_call(tool: str, status: str, duration_s: float) -> None:
    """``status`` is OK or the error code (a gRPC code name, INVALID_ARGUMENTS, DENIED, ...)."""
    attributes = {"gen_ai.tool.name": tool, "agentd.tool.status": status}
    tool_calls.add(1, attributes)
    tool_duration.record(duration_s, attributes)


def record_run(status: str, duration_s: float) -> None:
    attributes = {"agentd.run.status": status}
    runs.add(1, attributes)
    run_duration.record(duration_s, attributes)
