"""OpenTelemetry set-up from the standard OTEL_* variables: tracer and meter providers, exporters.

A real SDK tracer provider is always installed (unless OTEL_SDK_DISABLED=true) so every run has
a trace id to report, even when nothing is exported.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider


AGENT_NAME = "agentd"


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
    return _otlp_exporter(env, "TRACES")


def _metric_exporter(name: str, env: Mapping[str, str]) -> Any:
    if name == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter()
    if name != "otlp":
        raise ValueError(
            f"OTEL_METRICS_EXPORTER: unknown exporter {name!r} (otlp, console or none)"
        )
    return _otlp_exporter(env, "METRICS")


# (module, class) of the OTLP exporter per signal and protocol, imported only when configured.
_OTLP = {
    ("TRACES", "http/protobuf"): (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "OTLPSpanExporter",
    ),
    ("TRACES", "grpc"): (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "OTLPSpanExporter",
    ),
    ("METRICS", "http/protobuf"): (
        "opentelemetry.exporter.otlp.proto.http.metric_exporter",
        "OTLPMetricExporter",
    ),
    ("METRICS", "grpc"): (
        "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
        "OTLPMetricExporter",
    ),
}


def _otlp_exporter(env: Mapping[str, str], signal: str) -> Any:
    protocol = _protocol(env, signal)
    where = _OTLP.get((signal, protocol))
    if where is None:
        raise ValueError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol {protocol!r} (grpc or http/protobuf)"
        )
    exporter = getattr(importlib.import_module(where[0]), where[1])
    return exporter(endpoint=_endpoint(env, signal, http=protocol == "http/protobuf"))
