"""User feedback on runs: the export for evaluation. Ratings (checking, scores, their trace
event) are the run domain's: agentd/runs/feedback.py."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf import json_format

from agentd.runs.feedback import VALID_RATINGS, check_rating, label, score
from agentd.v1 import agent_pb2

__all__ = ["VALID_RATINGS", "check_rating", "export_jsonl", "label", "score"]

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
