"""User feedback on runs: checking a rating, its trace event, and the export for evaluation.

Ratings are thumbs (-1 / +1) or stars (1 to 5). ``1`` is read as a thumbs up, so on the
star scale 2 is the lowest rating that counts as bad. Scores are normalised to [-1, 1]:
-1 -> -1, +1 -> 1, stars 2..5 -> -0.5, 0, 0.5, 1.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.util.types import AttributeValue

from agentd.telemetry import openinference as oi
from agentd.v1 import agent_pb2

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


def record_span(run: agent_pb2.RunResponse, feedback: agent_pb2.Feedback) -> None:
    """A ``gen_ai.evaluation.result`` span and event in the run's own trace."""
    context = None
    try:
        trace_id = int(run.trace_id, 16)
    except ValueError:
        trace_id = 0
    if trace_id:
        # The run's root span is gone; a remote parent with its trace id puts this span
        # in the same trace, which is what trace viewers group by.
        parent = SpanContext(
            trace_id,
            random.getrandbits(64) or 1,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        context = trace.set_span_in_context(NonRecordingSpan(parent))
    attributes: dict[str, AttributeValue] = {
        "gen_ai.evaluation.name": "user_feedback",
        "gen_ai.evaluation.score.value": score(feedback.rating),
        "gen_ai.evaluation.score.label": label(feedback.rating),
        "agentd.run_id": run.run_id,
        "agentd.api.feedback.rating": feedback.rating,
    }
    attributes |= oi.kind(oi.EVALUATOR)
    if feedback.labels:
        attributes["agentd.api.feedback.labels"] = list(feedback.labels)
    with tracer.start_as_current_span(
        "evaluation user_feedback", context=context, attributes=attributes
    ) as span:
        span.add_event("gen_ai.evaluation.result", attributes)


# --- export -------------------------------------------------------------------------------


def _plain(message: Any) -> Any:
    """As every JSON agentd's CLI prints: the proto field names (`depends_on`), as grpcurl."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def chat_record(run: agent_pb2.RunResponse) -> dict[str, Any]:
    """One run as chat messages (task, tool calls and results, answer) plus its feedback."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": run.task}]
    done = [s for s in run.steps if s.status == agent_pb2.STEP_STATUS_SUCCEEDED]
    if done:
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": s.id,
                        "type": "function",
                        "function": {"name": s.tool, "arguments": json.dumps(_plain(s.arguments))},
                    }
                    for s in done
                ],
            }
        )
        messages += [
            {"role": "tool", "tool_call_id": s.id, "content": json.dumps(_plain(s.result))}
            for s in done
        ]
    messages.append({"role": "assistant", "content": run.output})
    last = run.feedback[-1]
    return {
        "kind": "chat",
        "messages": messages,
        "run_id": run.run_id,
        "trace_id": run.trace_id,
        "status": agent_pb2.RunStatus.Name(run.status).removeprefix("RUN_STATUS_").lower(),
        "plan": _plain(run.plan) if run.HasField("plan") else None,
        "rating": last.rating,
        "score": score(last.rating),
        "label": label(last.rating),
        "labels": list(last.labels),
        "comment": last.comment,
    }


def preference_pairs(runs: Iterable[agent_pb2.RunResponse]) -> Iterator[dict[str, Any]]:
    """For each task with a good and a bad run: the best and the worst answer as a pair."""
    by_task: dict[str, list[agent_pb2.RunResponse]] = {}
    for run in runs:
        if run.feedback and run.output:
            by_task.setdefault(" ".join(run.task.lower().split()), []).append(run)
    for group in by_task.values():
        ranked = sorted(group, key=lambda r: score(r.feedback[-1].rating))
        worst, best = ranked[0], ranked[-1]
        if score(best.feedback[-1].rating) > 0 > score(worst.feedback[-1].rating):
            yield {
                "kind": "preference",
                "input": {"messages": [{"role": "user", "content": best.task}]},
                "preferred_output": [{"role": "assistant", "content": best.output}],
                "non_preferred_output": [{"role": "assistant", "content": worst.output}],
                "preferred_run_id": best.run_id,
                "non_preferred_run_id": worst.run_id,
            }


def export_jsonl(runs: Iterable[agent_pb2.RunResponse]) -> Iterator[str]:
    """JSON lines: one chat record per run with feedback, then the preference pairs."""
    runs = [r for r in runs if r.feedback]
    for run in runs:
        yield json.dumps(chat_record(run), ensure_ascii=False)
    for pair in preference_pairs(runs):
        yield json.dumps(pair, ensure_ascii=False)


__all__ = ["check_rating", "export_jsonl", "label", "record_span", "score"]
