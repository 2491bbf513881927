"""structlog set-up: JSON lines for machines, readable lines on a terminal."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO

import structlog
from opentelemetry import trace

from agentd.telemetry.spans import current


def add_trace_ids(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Put the current span's trace and span ids on every line, to join logs with traces."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    return event


def scrub_secrets(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """No secret of the run in progress in any string value of a log line (the run's
    Redactor, the one the executor and spans use)."""
    redactor = current().redactor
    if redactor:
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = redactor.text(value)
    return event


def json_serializer() -> Callable[..., str]:
    """orjson when installed (agentd[fast]): a JSON log line costs about half as much CPU,
    with the same fallback (``default``) for values JSON has no type for."""
    try:
        import orjson
    except ImportError:
        return json.dumps

    def dumps(value: Any, default: Callable[[Any], Any] | None = None, **_: Any) -> str:
        return orjson.dumps(value, default=default, option=orjson.OPT_NON_STR_KEYS).decode()

    return dumps


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Logs go to ``stream`` (stderr); ``fmt`` auto picks console rendering on a terminal.

    Every line of a run carries ``run_id`` (bound as a context variable for the run, see
    ``telemetry.run_span``) and the ``trace_id`` and ``span_id`` of the span it was logged in.
    """
    stream = sys.stderr if stream is None else stream
    console = fmt == "console" or (fmt == "auto" and stream.isatty())
    renderer: structlog.types.Processor = (
        structlog.dev.ConsoleRenderer()
        if console
        else structlog.processors.JSONRenderer(serializer=json_serializer())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_trace_ids,
            scrub_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
