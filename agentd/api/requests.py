"""The gRPC edge's request parsing: every field checked against its bound (agentd/api/bounds.py)
and turned into what the run domain takes (``RunSpec``, ``CallDecision``). Each raises
``bounds.BadField`` naming the first field that cannot be used."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from agentd.api import bounds
from agentd.runs.spec import LIMIT_FIELDS, CallDecision, RunSpec
from agentd.v1 import agent_pb2

_MODES = {
    agent_pb2.LOOP_MODE_UNSPECIFIED: None,
    agent_pb2.LOOP_MODE_PLAN_EXECUTE: "plan_execute",
    agent_pb2.LOOP_MODE_REACT: "react",
}


class BadRequest(bounds.BadField):
    """A RunRequest field that cannot be used; the message names it."""


def metadata(pairs: Any) -> list[tuple[str, str]]:
    """A call's invocation metadata as (lower-case key, text value) pairs."""
    return [(str(k).lower(), v if isinstance(v, str) else v.decode()) for k, v in pairs or ()]


def run_spec(request: agent_pb2.RunRequest) -> RunSpec:
    """Check every field of ``request``; raises BadRequest naming the first bad one."""
    task = request.task.strip()
    if not task:
        raise BadRequest("task: required (what the agent should do)")
    bounds.text("RunRequest.task", request.task)
    # Size and depth before json_format (recursive) sees the context.
    bounds.struct("RunRequest.context", request.context)
    bounds.text("RunRequest.conversation_id", request.conversation_id)
    bounds.text("RunRequest.user_id", request.user_id)
    bounds.strings("RunRequest.tools", request.tools)
    if request.mode not in _MODES:
        raise BadRequest(f"mode: unknown value {request.mode}")
    schema = None
    if request.response_schema:
        # Checked: nothing in it is ever fetched, it is finite, its patterns run in linear time.
        schema = bounds.response_schema(request.response_schema)
    limits = request.limits
    for field in LIMIT_FIELDS:
        if limits.HasField(field) and getattr(limits, field) < 0:
            raise BadRequest(f"limits.{field}: must not be negative")
    return RunSpec(
        task=task,
        context=json_format.MessageToDict(request.context),
        response_schema=schema,
        tools=list(request.tools),
        mode=_MODES[request.mode],
        limits={f: getattr(limits, f) if limits.HasField(f) else None for f in LIMIT_FIELDS},
        conversation_id=request.conversation_id,
        user_id=request.user_id,
    )


def decisions(request: agent_pb2.ApproveRunRequest) -> list[CallDecision]:
    """The decisions of an ApproveRun, every field within its bound."""
    bounds.run_id("ApproveRunRequest.run_id", request.run_id)
    bounds.text("ApproveRunRequest.request_id", request.request_id)
    bounds.count("ApproveRunRequest.decisions", request.decisions)
    for i, item in enumerate(request.decisions):
        field = f"decisions[{i}]"
        bounds.text("ApproveRunRequest.decisions.step_id", item.step_id, f"{field}.step_id")
        bounds.text("ApproveRunRequest.decisions.reason", item.reason, f"{field}.reason")
        path = "ApproveRunRequest.decisions.arguments"
        bounds.struct(path, item.arguments, f"{field}.arguments")
    return [
        CallDecision(
            item.step_id,
            item.approve,
            item.reason,
            json_format.MessageToDict(item.arguments) if item.HasField("arguments") else None,
        )
        for item in request.decisions
    ]


def feedback(request: agent_pb2.SubmitFeedbackRequest) -> None:
    """The fields first: nothing is looked up for a request out of bounds."""
    bounds.text("SubmitFeedbackRequest.comment", request.comment)
    bounds.strings("SubmitFeedbackRequest.labels", request.labels)
    bounds.run_id("SubmitFeedbackRequest.run_id", request.run_id)


def list_runs(request: agent_pb2.ListRunsRequest) -> tuple[str, str]:
    """The RunStatus name asked for ("": rated runs instead) and the page's cursor."""
    if request.with_feedback == bool(request.status):
        raise bounds.BadField(
            "with_feedback, status: give exactly one (rated runs, or the runs with a status)"
        )
    if request.status and request.status not in agent_pb2.RunStatus.values():
        raise bounds.BadField("status: unknown RunStatus value")
    bounds.check_int("ListRunsRequest.limit", request.limit)
    bounds.text("ListRunsRequest.page_token", request.page_token)
    status = agent_pb2.RunStatus.Name(request.status) if request.status else ""
    return status, request.page_token


def run_id(path: str, value: str) -> str:
    bounds.run_id(path, value)
    return value


def watch(request: agent_pb2.WatchRunRequest) -> tuple[str, int]:
    """The run and the cursor of a WatchRun."""
    bounds.run_id("WatchRunRequest.run_id", request.run_id)
    bounds.check_int("WatchRunRequest.after", request.after)
    return request.run_id, request.after
