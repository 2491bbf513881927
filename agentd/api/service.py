"""AgentService over gRPC: a thin edge over the run domain (agentd/runs/).

Each handler parses its request (agentd/api/requests.py), calls ``Runs`` and answers with the
stored record. Refusals are raised, never aborted here: the audit interceptor
(agentd/api/audit.py) audits every call once and maps errors to their status and details
(agentd/api/errors.py).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import structlog

from agentd.api import bounds, requests
from agentd.api.audit import Audit, current
from agentd.loop.state import RunState
from agentd.runs.service import OnStart, RunHandle, Runs
from agentd.tools import memory
from agentd.v1 import agent_pb2, agent_pb2_grpc

log = structlog.get_logger("agentd.api.service")

# Initial metadata of Run and RunStream: which run to follow (GetRun) and its trace.
RUN_ID_KEY = "x-agentd-run-id"
TRACE_ID_KEY = "x-agentd-trace-id"


def _announce(context: grpc.aio.ServicerContext) -> OnStart:
    """Sends the run's id and trace id as initial metadata once the run has them, before its
    first model call; a caller already gone is no reason to fail the run."""

    async def started(run: RunState) -> None:
        try:
            await context.send_initial_metadata(
                ((RUN_ID_KEY, run.run_id), (TRACE_ID_KEY, run.trace_id))
            )
        except Exception as exc:  # the caller went away: its cancellation follows
            log.warning("initial metadata not sent", run_id=run.run_id, error=repr(exc))

    return started


def _head(path: str, run_id: str) -> str:
    """A run id as audited: no longer than its bound."""
    return run_id[: bounds.BOUNDS[path].chars]


@contextlib.contextmanager
def _ended_by(handle: RunHandle, audit: Audit) -> Iterator[None]:
    """A run cut short by the caller's deadline or the caller going away is audited so."""
    try:
        yield
    except BaseException:
        if audit.outcome == "OK":
            audit.outcome = "DEADLINE_EXCEEDED" if handle.deadline_exceeded else "CANCELLED"
        raise


def _tools(catalog: Any, with_memory: bool) -> agent_pb2.ListToolsResponse:
    """The upstreams' tools, then the built-in memory tools (upstream "builtin")."""
    response = agent_pb2.ListToolsResponse(
        unavailable_upstreams=[f"{k}: {v}" for k, v in sorted(catalog.unavailable.items())]
    )
    for tool in catalog.tools.values():
        response.tools.add(
            name=tool.name,
            method=tool.method,
            description=tool.description,
            side_effects=tool.side_effects,
            input_schema=json.dumps(tool.input_schema),
            output_schema=json.dumps(tool.output_schema),
            upstream=tool.upstream.name,
            policy=tool.policy,
        )
    for spec in memory.SPECS.values() if with_memory else ():
        response.tools.add(
            name=spec.name,
            method=spec.method,
            description=spec.description,
            side_effects=spec.side_effects,
            input_schema=json.dumps(spec.input_schema),
            output_schema="{}",
            upstream=memory.BUILTIN_UPSTREAM,
            policy=spec.policy,
        )
    return response


# Room in a ListRunsResponse for its own framing and the page token.
_PAGE_SLACK_BYTES = 4096


def _page(runs: list[Any], max_bytes: int) -> agent_pb2.ListRunsResponse:
    """The runs that fit in one message of ``max_bytes`` (always at least one), and the token
    of the next page when some did not fit. Each record is bounded, a listing of many is not:
    without this one principal's big runs would break an admin's listing and the export."""
    response = agent_pb2.ListRunsResponse()
    size = _PAGE_SLACK_BYTES
    for run in runs:
        size += run.ByteSize() + 8  # the field's tag and length
        if size > max_bytes and response.runs:
            response.next_page_token = response.runs[-1].run_id
            break
        response.runs.append(run)
    return response


class AgentService(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, runs: Runs) -> None:
        self.runs = runs

    async def _start(self, request: agent_pb2.RunRequest, context: Any) -> RunHandle:
        audit = current()
        spec = requests.run_spec(request)
        caller = requests.metadata(context.invocation_metadata())
        handle = await self.runs.start(spec, audit.principal, caller, context.time_remaining)
        audit.run_id = handle.run_id
        return handle

    async def Run(
        self, request: agent_pb2.RunRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.RunResponse:
        handle = await self._start(request, context)
        with _ended_by(handle, current()):
            stored = await handle.result(_announce(context))
        current().outcome = f"OK {stored.status_name}"
        return stored.message  # type: ignore[no-any-return]

    async def RunStream(
        self, request: agent_pb2.RunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.RunEvent]:
        handle = await self._start(request, context)
        with _ended_by(handle, current()):
            async for message in handle.events(_announce(context)):
                yield message
            stored = await handle.result()
        last = agent_pb2.RunEvent(
            run_id=handle.run_id, sequence=handle.sequence + 1, final=stored.message
        )
        last.time.GetCurrentTime()
        yield last

    async def ListTools(
        self, request: agent_pb2.ListToolsRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.ListToolsResponse:
        response = _tools(self.runs.catalog, self.runs.config.memory.enabled)
        current().outcome = f"OK {len(response.tools)} tools"
        return response

    async def SubmitFeedback(
        self, request: agent_pb2.SubmitFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.SubmitFeedbackResponse:
        audit = current()
        audit.run_id = _head("SubmitFeedbackRequest.run_id", request.run_id)
        requests.feedback(request)
        stored, item = await self.runs.feedback(
            request.run_id, audit.principal, request.rating, request.comment, request.labels
        )
        return agent_pb2.SubmitFeedbackResponse(run_id=stored.run.run_id, feedback=item)

    async def ListRuns(
        self, request: agent_pb2.ListRunsRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.ListRunsResponse:
        status, after = requests.list_runs(request)
        limit = request.limit or 1000
        # One more than asked: whether a next page exists.
        runs = await self.runs.list(current().principal, status, limit + 1, after)
        response = _page(runs[:limit], self.runs.config.server.max_message_bytes)
        if not response.next_page_token and len(runs) > limit:
            response.next_page_token = runs[limit - 1].run_id
        current().outcome = f"OK {len(response.runs)} runs"
        return response

    async def ApproveRun(
        self, request: agent_pb2.ApproveRunRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.RunResponse:
        audit = current()
        audit.run_id = _head("ApproveRunRequest.run_id", request.run_id)
        decisions = requests.decisions(request)
        caller = requests.metadata(context.invocation_metadata())
        stored, repeat = await self.runs.approve(
            request.run_id, audit.principal, decisions, request.request_id, caller,
            context.time_remaining,
        )  # fmt: skip
        audit.outcome = "OK repeat" if repeat else f"OK {stored.status_name}"
        return stored.message  # type: ignore[no-any-return]

    async def GetRun(
        self, request: agent_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.RunResponse:
        current().run_id = _head("GetRunRequest.run_id", request.run_id)
        run_id = requests.run_id("GetRunRequest.run_id", request.run_id)
        return (await self.runs.get(run_id, current().principal)).message  # type: ignore[no-any-return]

    async def WatchRun(
        self, request: agent_pb2.WatchRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.RunEvent]:
        audit = current()
        audit.run_id = _head("WatchRunRequest.run_id", request.run_id)
        run_id, after = requests.watch(request)
        sent = 0
        async for message in self.runs.watch(run_id, audit.principal, after):
            sent += 1
            yield message
        audit.outcome = f"OK {sent} events"
