"""OpenTelemetry tracing set-up, driven by the standard OTEL_* variables.

A real SDK tracer provider is always installed (unless OTEL_SDK_DISABLED=true) so
every run has a trace id to report, even when nothing is exported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

_configured = False


def setup_tracing(env: Mapping[str, str] | None = None, version: str = "0.1.0") -> None:
    """Install the SDK tracer provider once, exporting as OTEL_TRACES_EXPORTER says."""
    global _configured
    env = os.environ if env is None else env
    if _configured or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    resource = Resource.create(
        {"service.name": env.get("OTEL_SERVICE_NAME", "agentd"), "service.version": version}
    )
    provider = TracerProvider(resource=resource)
    exporter = _exporter(env.get("OTEL_TRACES_EXPORTER", "none").lower(), env)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True


def _exporter(name: str, env: Mapping[str, str]) -> SpanExporter | None:
    if name in ("", "none"):
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        if protocol.startswith("http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[assignment]
                OTLPSpanExporter,
            )
        return OTLPSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console or none)")
