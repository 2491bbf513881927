"""Ratings of runs: thumbs (-1 / +1) or stars (1 to 5), and their trace event.

``1`` is read as a thumbs up, so on the star scale 2 is the lowest rating that counts as bad.
Scores are normalised to [-1, 1]: -1 -> -1, +1 -> 1, stars 2..5 -> -0.5, 0, 0.5, 1.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.util.types import AttributeValue

from agentd.telemetry import openinference as oi

tracer = trace.get_tracer("agentd")
VALID_RATINGS = (-1, 1, 2, 3, 4, 5)


def check_rating(rating: int) -> str | None:
    """None when ``rating`` is valid, else the INVALID_ARGUMENT message naming the field."""
    if rating in VALID_RATINGS:
        return None
    return f"rating: {rating} is not a rating; use -1 or +1 (thumbs) or 1 to 5 (stars)"


def score(rating: int) -> float:
    if rating in (-1, 1):
        return float(rating)
    return (rating - 3) / 2


def label(rating: int) -> str:
    value = score(rating)
    return "good" if value > 0 else "bad" if value < 0 else "neutral"


def record_span(run_id: str, trace_id: str, rating: int, labels: Sequence[str]) -> None:
    """A ``gen_ai.evaluation.result`` span and event in the run's own trace."""
    context = None
    try:
        trace_number = int(trace_id, 16)
    except ValueError:
        trace_number = 0
    if trace_number:
        # The run's root span is gone; a remote parent with its trace id puts this span
        # in the same trace, which is what trace viewers group by.
        parent = SpanContext(
            trace_number,
            random.getrandbits(64) or 1,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        context = trace.set_span_in_context(NonRecordingSpan(parent))
    attributes: dict[str, AttributeValue] = {
        "gen_ai.evaluation.name": "user_feedback",
        "gen_ai.evaluation.score.value": score(rating),
        "gen_ai.evaluation.score.label": label(rating),
        "agentd.run_id": run_id,
        "agentd.api.rating": rating,
    }
    attributes |= oi.kind(oi.EVALUATOR)
    if labels:
        attributes["agentd.api.labels"] = list(labels)
    with tracer.start_as_current_span(
        "evaluation user_feedback", context=context, attributes=attributes
    ) as span:
        span.add_event("gen_ai.evaluation.result", attributes)
