"""AgentService over gRPC: request checks, the run, its events and its record.

Every bad request gets INVALID_ARGUMENT naming the field; the daemon keeps
serving whatever a caller sends. Caller credentials are read from the metadata
named per upstream and passed only to that run's upstream calls.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import structlog
from google.protobuf import json_format

from agentd import telemetry
from agentd.api import approvals, bounds
from agentd.api import feedback as feedback_
from agentd.api.alerts import Alert, Alerter, run_alerts
from agentd.api.identity import ANONYMOUS, Authenticator, Principal
from agentd.api.records import event_message, run_message
from agentd.api.sealing import Sealer, UpstreamMetadata
from agentd.config import Config, MemoryConfig
from agentd.loop.agent import Agent
from agentd.loop.deadline import Deadline
from agentd.loop.hooks import RunHooks
from agentd.loop.state import Budget, Event, RunState
from agentd.store import LeaseLost, RunStore, StoreUnavailable
from agentd.telemetry.redact import Redactor
from agentd.tools import memory
from agentd.tools.upstream import ToolCatalog
from agentd.v1 import agent_pb2, agent_pb2_grpc

log = structlog.get_logger("agentd.api.service")
T = TypeVar("T")


_MODES = {
    agent_pb2.LOOP_MODE_UNSPECIFIED: None,
    agent_pb2.LOOP_MODE_PLAN_EXECUTE: "plan_execute",
    agent_pb2.LOOP_MODE_REACT: "react",
}


class BadRequest(bounds.BadField):
    """A RunRequest field that cannot be used; the message names it."""


@dataclass
class Audit:
    """One call's audit line: who, what, which run, how it ended (never a credential)."""

    principal: str
    method: str
    run_id: str = ""
    outcome: str = "OK"


class PrincipalLimits:
    """Per-principal concurrent runs and runs per minute, so one caller cannot starve others."""

    def __init__(self, concurrent: int, per_minute: int) -> None:
        self.concurrent = concurrent
        self.per_minute = per_minute
        self.running: collections.Counter[str] = collections.Counter()
        self.started: dict[str, collections.deque[float]] = collections.defaultdict(
            collections.deque
        )

    def acquire(self, principal: str, starting: bool = True) -> str:
        """'' when the run may start (and is counted), else the message naming the limit.
        ``starting=False``: a stopped run resuming, counted as running but not as a start."""
        if self.concurrent and self.running[principal] >= self.concurrent:
            return (
                f"server.max_runs_per_principal: {principal!r} already has {self.concurrent}"
                " runs in progress; retry when one finishes"
            )
        if self.per_minute and starting:
            now = time.monotonic()
            window = self.started[principal]
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= self.per_minute:
                return (
                    f"server.runs_per_minute: {principal!r} started {self.per_minute} runs"
                    " in the last minute; retry later"
                )
            window.append(now)
        self.running[principal] += 1
        return ""

    def release(self, principal: str) -> None:
        self.running[principal] -= 1
        if self.running[principal] <= 0:
            del self.running[principal]


class AgentService(agent_pb2_grpc.AgentServiceServicer):
    def __init__(
        self,
        config: Config,
        catalog: ToolCatalog,
        agent: Agent,
        store: RunStore,
        alerter: Alerter | None = None,
        authenticator: Authenticator | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.agent = agent
        self.store = store
        self.alerter = alerter or Alerter(config.alerts)
        self.authenticator = authenticator or Authenticator(config.server.auth, {})
        self.slots = asyncio.Semaphore(config.server.max_concurrent_runs)
        self.limits = PrincipalLimits(
            config.server.max_runs_per_principal, config.server.runs_per_minute
        )
        # Keeps a run's owner credentials sealed while nobody of theirs attends it (None:
        # approvals.seal_key_env unset, and such resumed runs forward no metadata).
        self.sealer = sealer

    # --- identity, ownership and the audit line ----------------------------------------------

    def caller(self, context: grpc.aio.ServicerContext) -> Principal:
        """The authenticated principal of this call (never what the request says)."""
        return self.authenticator.principal(
            _metadata(context.invocation_metadata()), context.auth_context() or {}
        )

    @contextlib.asynccontextmanager
    async def audited(
        self, context: grpc.aio.ServicerContext, method: str, run_id: str = ""
    ) -> AsyncIterator[tuple[Principal, Audit]]:
        principal = self.caller(context)
        audit = Audit(principal.id, method, run_id)
        try:
            try:
                yield principal, audit
            except StoreUnavailable as exc:
                # Nothing is acknowledged that the store did not keep: the caller may retry.
                log.warning("store unavailable", method=method, run_id=audit.run_id or None)
                await self.deny(context, audit, grpc.StatusCode.UNAVAILABLE, str(exc))
        except asyncio.CancelledError:
            if audit.outcome == "OK":
                audit.outcome = "CANCELLED"
            raise
        except BaseException as exc:
            if audit.outcome == "OK":
                audit.outcome = getattr(context.code(), "name", None) or type(exc).__name__
            raise
        finally:
            log.info(
                "audit",
                principal=audit.principal,
                method=audit.method,
                run_id=audit.run_id or None,
                outcome=audit.outcome,
            )

    @staticmethod
    async def deny(
        context: grpc.aio.ServicerContext, audit: Audit, code: grpc.StatusCode, message: str
    ) -> None:
        audit.outcome = code.name
        await context.abort(code, message)

    @staticmethod
    def visible(record: agent_pb2.RunResponse, principal: Principal) -> bool:
        """Only the run's own principal, or an admin, may see it."""
        return principal.admin or record.principal == principal.id

    @contextlib.asynccontextmanager
    async def admitted(
        self, context: grpc.aio.ServicerContext, audit: Audit, owner: str
    ) -> AsyncIterator[None]:
        """Admission of a stopped run about to resume (ApproveRun): a slot of
        ``server.max_concurrent_runs`` and room in its owner's ``max_runs_per_principal``,
        taken before anything is decided; else RESOURCE_EXHAUSTED and nothing changes."""
        if self.slots.locked():
            await self.deny(
                context,
                audit,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self.config.server.max_concurrent_runs} runs already in progress"
                " (server.max_concurrent_runs); nothing was decided, retry later",
            )
        await self.slots.acquire()  # free: taken at once
        try:
            refused = self.limits.acquire(owner, starting=False)
            if refused:
                await self.deny(
                    context,
                    audit,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{refused} (the run's owner); nothing was decided",
                )
            try:
                yield
            finally:
                self.limits.release(owner)
        finally:
            self.slots.release()

    def seal(
        self, run_id: str, metadata: UpstreamMetadata, lifetime_s: float | None
    ) -> dict[str, Any] | None:
        """``metadata`` sealed for ``run_id`` for ``lifetime_s`` (None: no expiry); None
        without a seal key or when there is nothing to keep."""
        if self.sealer is None or not any(metadata.values()):
            return None
        expires_at = time.time() + lifetime_s if lifetime_s is not None else None
        return self.sealer.seal(run_id, metadata, expires_at)

    def seal_while_waiting(self, run_id: str, metadata: UpstreamMetadata) -> dict[str, Any] | None:
        """Sealed for as long as the run may wait: approvals.ttl_s, and the expiry sweep's
        period and a minute more, so a run resumed as rejected by expiry still has them."""
        ttl = self.config.approvals.ttl_s
        grace = 60 + self.config.storage.takeover_s
        return self.seal(run_id, metadata, ttl + grace if ttl else None)

    def unseal(self, run_id: str, request: Mapping[str, Any]) -> dict[str, list[tuple[str, str]]]:
        """The owner's metadata kept sealed with ``request``; {} when none (or unreadable)."""
        sealed = request.get("sealed_credentials")
        if self.sealer is None or sealed is None:
            return {}
        opened = self.sealer.open(run_id, sealed)
        if opened is None:
            log.warning("sealed credentials unusable (expired, or another key)", run_id=run_id)
        return opened or {}

    async def owned_run(
        self,
        context: grpc.aio.ServicerContext,
        audit: Audit,
        principal: Principal,
        run_id: str,
        path: str = "GetRunRequest.run_id",
    ) -> agent_pb2.RunResponse:
        """The caller's run; someone else's is NOT_FOUND like a missing one (not revealed)."""
        try:
            bounds.run_id(path, run_id)
        except bounds.BadField as exc:
            await self.deny(context, audit, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        record = await self.store.get(run_id)
        if record is None or not self.visible(record, principal):
            await self.deny(
                context, audit, grpc.StatusCode.NOT_FOUND, f"run_id: no run {bounds.echo(run_id)}"
            )
        assert record is not None
        return record

    # --- RPCs -----------------------------------------------------------------------------

    async def Run(
        self, request: agent_pb2.RunRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.RunResponse:
        async with self.audited(context, "Run") as (principal, audit):
            run, tools, limits = await self._prepare(request, context, principal, audit)
            response = await self._execute(run, tools, limits, context, audit)
            audit.outcome = f"OK {agent_pb2.RunStatus.Name(response.status)}"
            return response

    async def RunStream(
        self, request: agent_pb2.RunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.RunEvent]:
        async with self.audited(context, "RunStream") as (principal, audit):
            async for message in self._stream(request, context, principal, audit):
                yield message

    async def _stream(
        self,
        request: agent_pb2.RunRequest,
        context: grpc.aio.ServicerContext,
        principal: Principal,
        audit: Audit,
    ) -> AsyncIterator[agent_pb2.RunEvent]:
        run, tools, limits = await self._prepare(request, context, principal, audit)
        # Events are turned into messages when they happen: records change afterwards.
        events: asyncio.Queue[agent_pb2.RunEvent | None] = asyncio.Queue()
        sequence = 0

        def emit(event: Event) -> None:
            nonlocal sequence
            sequence += 1
            events.put_nowait(event_message(run.run_id, sequence, event))

        task = asyncio.create_task(self._execute(run, tools, limits, context, audit, emit))
        task.add_done_callback(lambda _: events.put_nowait(None))
        try:
            while (message := await events.get()) is not None:
                yield message
            final = await task
        finally:
            if not task.done():  # the caller went away: cancel the run and its upstream calls
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        last = agent_pb2.RunEvent(run_id=run.run_id, sequence=sequence + 1, final=final)
        last.time.GetCurrentTime()
        yield last

    async def ListTools(
        self, request: agent_pb2.ListToolsRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.ListToolsResponse:
        response = agent_pb2.ListToolsResponse(
            unavailable_upstreams=[f"{k}: {v}" for k, v in sorted(self.catalog.unavailable.items())]
        )
        for tool in self.catalog.tools.values():
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
        if self.config.memory.enabled:  # built-in tools, marked by upstream "builtin"
            for spec in memory.SPECS.values():
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

    async def SubmitFeedback(
        self, request: agent_pb2.SubmitFeedbackRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.SubmitFeedbackResponse:
        run_id = request.run_id[: bounds.BOUNDS["SubmitFeedbackRequest.run_id"].chars]
        async with self.audited(context, "SubmitFeedback", run_id) as (principal, audit):
            try:  # the fields first: nothing is looked up for a request out of bounds
                bounds.text("SubmitFeedbackRequest.comment", request.comment)
                bounds.strings("SubmitFeedbackRequest.labels", request.labels)
            except bounds.BadField as exc:
                await self.deny(context, audit, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            path = "SubmitFeedbackRequest.run_id"
            record = await self.owned_run(context, audit, principal, request.run_id, path)
            if len(record.feedback) >= bounds.MAX_FEEDBACK_PER_RUN:
                await self.deny(
                    context,
                    audit,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"run_id: run {record.run_id} already has {len(record.feedback)} feedback"
                    f" entries, the most a run keeps ({bounds.MAX_FEEDBACK_PER_RUN})",
                )
            return await self._feedback(request, context, principal)

    async def _feedback(
        self,
        request: agent_pb2.SubmitFeedbackRequest,
        context: grpc.aio.ServicerContext,
        principal: Principal,
    ) -> agent_pb2.SubmitFeedbackResponse:
        if not request.run_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "run_id: required")
        problem = feedback_.check_rating(request.rating)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        item = agent_pb2.Feedback(
            rating=request.rating,
            comment=request.comment,
            labels=request.labels,
            user_id=principal.id,  # who rated, from authentication
        )
        item.time.GetCurrentTime()
        run = await self.store.add_feedback(request.run_id, item)
        if run is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"run_id: no run {bounds.echo(request.run_id)}"
            )
        assert run is not None
        feedback_.record_span(run, item)
        log.info("feedback", run_id=run.run_id, rating=item.rating, labels=list(item.labels))
        if self.config.alerts.on_negative_feedback and feedback_.score(item.rating) < 0:
            detail = item.comment[:500]
            self.alerter.send(
                Alert(run.run_id, run.trace_id, "negative_feedback", detail, item.rating)
            )
        return agent_pb2.SubmitFeedbackResponse(run_id=run.run_id, feedback=item)

    async def ListRuns(
        self, request: agent_pb2.ListRunsRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.ListRunsResponse:
        if request.with_feedback == bool(request.status):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "with_feedback, status: give exactly one (rated runs, or the runs with a status)",
            )
        if request.status and request.status not in agent_pb2.RunStatus.values():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "status: unknown RunStatus value")
        try:
            bounds.check_int("ListRunsRequest.limit", request.limit)
        except bounds.BadField as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        async with self.audited(context, "ListRuns") as (principal, audit):
            limit = request.limit or 1000
            owner = None if principal.admin else principal.id
            if request.status:
                name = agent_pb2.RunStatus.Name(request.status)
                mine = await self.store.runs_with_status(name, limit, owner)
            else:
                mine = await self.store.runs_with_feedback(limit, owner)
            audit.outcome = f"OK {len(mine)} runs"
            return agent_pb2.ListRunsResponse(runs=mine)

    async def ApproveRun(
        self, request: agent_pb2.ApproveRunRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.RunResponse:
        run_id = request.run_id[: bounds.BOUNDS["ApproveRunRequest.run_id"].chars]
        async with self.audited(context, "ApproveRun", run_id) as (principal, audit):
            problem = approvals.check_request(request)
            if problem:
                await self.deny(context, audit, grpc.StatusCode.INVALID_ARGUMENT, problem)
            path = "ApproveRunRequest.run_id"
            record = await self.owned_run(context, audit, principal, request.run_id, path)
            caller = _metadata(context.invocation_metadata())
            response = await approvals.approve(self, request, context, audit, record, caller)
            if audit.outcome == "OK":
                audit.outcome = f"OK {agent_pb2.RunStatus.Name(response.status)}"
            return response

    async def GetRun(
        self, request: agent_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.RunResponse:
        run_id = request.run_id[: bounds.BOUNDS["GetRunRequest.run_id"].chars]
        async with self.audited(context, "GetRun", run_id) as (principal, audit):
            return await self.owned_run(context, audit, principal, request.run_id)

    # --- the run --------------------------------------------------------------------------

    def _provider(self) -> str:
        """gen_ai.provider.name of the run's span: the planner's, which every run calls."""
        planner = self.agent.models.get("planner")
        return telemetry.provider_name(planner) if planner is not None else ""

    def _configured_secrets(self) -> list[str]:
        """Secrets from the config every run redacts too: the model endpoints' API keys."""
        return [key for m in self.agent.models.values() if (key := getattr(m, "api_key", ""))]

    async def _prepare(
        self,
        request: agent_pb2.RunRequest,
        context: grpc.aio.ServicerContext,
        principal: Principal,
        audit: Audit,
    ) -> tuple[RunState, dict[str, Any], Budget]:
        try:
            run, tools, limits = self.parse(request)
        except bounds.BadField as exc:
            await self.deny(context, audit, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise  # unreachable: abort raises
        audit.run_id = run.run_id
        run.principal = principal.id
        problem = self.scope(run, principal, _metadata(context.invocation_metadata()))
        if problem:
            await self.deny(context, audit, grpc.StatusCode.PERMISSION_DENIED, problem)
        if not run.user_id:  # memory needs a user scope; without one the tools are not offered
            for name in memory.SPECS:
                tools.pop(name, None)
        run.history = await conversation_history(self.store, run, self.config.memory)
        return run, tools, limits

    def scope(self, run: RunState, principal: Principal, caller: Sequence[tuple[str, str]]) -> str:
        """Set whose memory and history the run uses; a message when the caller may not."""
        header = self.config.memory.user_header
        asked, field = run.user_id, "user_id"
        if not asked and header:
            asked, field = memory.user_from_metadata(caller, header), f"{header} metadata"
        if asked and asked != principal.id and not principal.may_impersonate:
            return (
                f"{field}: only an admin or impersonate principal may act for another user"
                f" ({principal.id!r} asked for {asked!r}); leave it empty"
            )
        run.user_id = asked or principal.id
        if run.user_id == ANONYMOUS and not self.config.memory.allow_anonymous:
            run.user_id = ""  # no memory tools, no shared history (memory.allow_anonymous)
        return ""

    def parse(self, request: agent_pb2.RunRequest) -> tuple[RunState, dict[str, Any], Budget]:
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
            schema = parse_schema(request.response_schema)
        upstream, builtin = memory.split_patterns(request.tools)
        try:
            tools: dict[str, Any] = (
                dict(self.catalog.select(upstream)) if upstream or not request.tools else {}
            )
        except LookupError as exc:
            raise BadRequest(
                f"tools: {bounds.echo(exc.args[0])} matches no tool; see ListTools"
            ) from None
        limits = request.limits
        for field in _LIMIT_FIELDS:
            if limits.HasField(field) and getattr(limits, field) < 0:
                raise BadRequest(f"limits.{field}: must not be negative")
        run_limits = Budget.of(
            self.config.limits,
            **{f: getattr(limits, f) if limits.HasField(f) else None for f in _LIMIT_FIELDS},
        )
        run = RunState(
            run_id=uuid.uuid4().hex,
            task=task,
            mode=_MODES[request.mode] or self.config.agent.mode,  # type: ignore[arg-type]
            context=json_format.MessageToDict(request.context),
            response_schema=schema,
            conversation_id=request.conversation_id,
            user_id=request.user_id,
        )
        tools.update(
            memory.builtin_tools(
                self.store, self.config.memory, run, builtin if request.tools else None
            )
        )
        return run, tools, run_limits

    async def _execute(
        self,
        run: RunState,
        tools: Mapping[str, Any],
        limits: Budget,
        context: grpc.aio.ServicerContext,
        audit: Audit,
        on_event: Callable[[Event], None] | None = None,
    ) -> agent_pb2.RunResponse:
        if self.slots.locked():
            await self.deny(
                context,
                audit,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self.config.server.max_concurrent_runs} runs already in progress; retry later",
            )
        refused = self.limits.acquire(run.principal)
        if refused:
            await self.deny(context, audit, grpc.StatusCode.RESOURCE_EXHAUSTED, refused)
        try:
            return await self.run_to_end(
                run,
                tools,
                limits,
                _metadata(context.invocation_metadata()),
                context.time_remaining,
                on_event=on_event,
            )
        except asyncio.CancelledError:  # the caller's deadline, or the caller went away
            deadline = run.status == "deadline_exceeded"
            audit.outcome = "DEADLINE_EXCEEDED" if deadline else "CANCELLED"
            raise
        except LeaseLost as exc:  # another replica took the run over: it carries on there
            await self.deny(
                context, audit, grpc.StatusCode.UNAVAILABLE, f"{exc}; follow it with GetRun"
            )
            raise
        finally:
            self.limits.release(run.principal)

    async def run_to_end(
        self,
        run: RunState,
        tools: Mapping[str, Any],
        limits: Budget,
        caller: Sequence[tuple[str, str]],
        time_left: Callable[[], float | None] = lambda: None,
        *,
        owner_metadata: UpstreamMetadata | None = None,
        admitted: bool = False,
        deadline: Deadline | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> agent_pb2.RunResponse:
        """Run (or resume) ``run`` with the caller's metadata, journaled, stored at its end.

        ``owner_metadata``: per upstream, what a resumed run forwards instead of a caller's
        (its owner's, unsealed; never an approver's). ``admitted``: the slot is already held.
        ``deadline``: the run's, when it resumes with one stored; else made here from the
        caller's ``time_left`` and ``limits.run_timeout_s``. Its end (final record, alerts,
        log) happens whatever is cancelled meanwhile."""
        async with contextlib.nullcontext() if admitted else self.slots:
            if deadline is None:
                deadline = Deadline.start(self.config.limits.run_timeout_s, time_left())
            run.deadline_at, run.deadline_caller = deadline.at, deadline.caller
            forwarded = {
                name: forward(
                    caller,
                    tool.upstream.forward_metadata,
                    # agentd's own bearer token only where the upstream's config opts in
                    inbound=not self.authenticator.uses_tokens
                    or tool.upstream.forward_inbound_credential,
                )
                if owner_metadata is None
                else tuple(owner_metadata.get(tool.upstream.name, ()))
                for name, tool in tools.items()
                if hasattr(tool, "upstream")  # built-in tools get no caller metadata
            }
            # The owner's metadata per upstream, kept sealed (never in clear) with the request
            # while the run may be taken over, and while it waits for a decision.
            per_upstream = {tools[n].upstream.name: pairs for n, pairs in forwarded.items()}
            run.sealed_credentials = self.seal(run.run_id, per_upstream, deadline.remaining())
            bound = log.bind(run_id=run.run_id)
            run.redactor = Redactor.of(_secrets(caller, forwarded) + self._configured_secrets())
            # A credential the caller pasted into the task or context reaches no model either.
            run.task = run.redactor.text(run.task)
            run.context = run.redactor.value(run.context)
            # Sets run.trace_id; every log line inside carries run_id, trace_id and span_id.
            with telemetry.run_span(
                run,
                self.config,
                secrets=run.redactor,
                provider=self._provider(),
            ):
                bound.info("run started", mode=run.mode, tools=len(tools))
                # Stored from its start (RUNNING), then again after every step that ends, so
                # GetRun and ListRuns show a run in progress; the final save below wins.
                journal = Journal(self.store, run, request_record(run, tools))
                hooks = RunHooks(on_event=on_event) if on_event else RunHooks()
                try:
                    if self.config.storage.journal:
                        await journal.save_now()
                        hooks = RunHooks(journal.wrap(hooks.on_event), journal.save_now)
                        journal.keep_lease()
                    await self.agent.run(
                        run,
                        tools,
                        metadata=forwarded,
                        deadline=deadline,
                        budget=limits,
                        hooks=hooks,
                    )
                except BaseException as exc:  # only CancelledError gets past agent.run
                    if run.status == "running":  # stopped before its loop began
                        cancelled = isinstance(exc, asyncio.CancelledError)
                        if cancelled:
                            ending = deadline.ending(True, self.config.limits.run_timeout_s)
                        else:
                            ending = ("failed", "the run could not be stored when it began")
                        run.finish(*ending)  # type: ignore[arg-type]
                    raise
                finally:
                    # gRPC cancels the handler at the caller's deadline or when the caller
                    # goes away, possibly right now: the end runs as its own task.
                    record = await to_completion(
                        self._finish(run, tools, journal, bound, per_upstream)
                    )
            return record

    async def _finish(
        self,
        run: RunState,
        tools: Mapping[str, Any],
        journal: Journal,
        bound: Any,
        per_upstream: UpstreamMetadata,
    ) -> agent_pb2.RunResponse:
        """The end of a run: the last journal write, the final record, alerts, the log line."""
        # Persist even when the caller cancelled: an acknowledged run is never lost.
        await journal.drain()
        run.sealed_credentials = (  # kept while it waits; dropped when it ends
            self.seal_while_waiting(run.run_id, per_upstream)
            if run.status == "needs_approval"
            else None
        )
        record = run_message(run)
        await save_final(self.store, record, request_record(run, tools))
        for alert in run_alerts(
            self.config.alerts,
            run.run_id,
            run.trace_id,
            run.status,
            run.redactor.text(run.error),
            run.verdicts,
        ):
            self.alerter.send(alert)
        bound.info(
            "run finished",
            status=run.status,
            steps=len(run.steps),
            store_writes=journal.writes + 1,
            duration_s=round(run.duration_s, 3),
            error=run.error or None,
        )
        return record


async def to_completion(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even if the awaiting task is cancelled meanwhile (any number
    of times); then the cancellation is raised, as itself. ``asyncio.shield`` alone protects
    the work but not the awaiting coroutine, which would skip whatever follows it."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.cancelled():  # the work itself was cancelled, not just its waiter
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError()
    return result


class Journal:
    """Writes snapshots of a run in progress, one at a time, latest state each time.

    A step that ends marks the run dirty; one writer task saves while it is dirty, so a burst
    of parallel steps costs at most two writes and writes never overtake each other.
    """

    COALESCE_S = 0.005

    def __init__(self, store: RunStore, run: RunState, request: dict[str, Any]) -> None:
        self.store = store
        self.run = run
        self.request = request
        self.dirty = False
        self.writer: asyncio.Task[None] | None = None
        self.renewer: asyncio.Task[None] | None = None
        self.writes = 0
        self.request_saved = False
        self.lock = asyncio.Lock()  # one save at a time, each of the state at its start

    async def save_now(self) -> None:
        async with self.lock:
            self.writes += 1
            # The request does not change while the run goes on: stored with the first
            # snapshot (and again with the final record), not with every one.
            request = None if self.request_saved else self.request
            await self.store.save(run_message(self.run), request)
            self.request_saved = True

    def keep_lease(self) -> None:
        """Renew the run's lease while it runs, so no other replica takes it over."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.store.lease_s / 3)
                try:
                    if not await self.store.renew(self.run.run_id):
                        log.warning("lease lost", run_id=self.run.run_id)
                        return
                except Exception as exc:  # the store is down: the next renewal tries again
                    log.warning("lease renewal failed", run_id=self.run.run_id, error=repr(exc))

        self.renewer = asyncio.create_task(renew())

    def wrap(self, emit: Callable[[Event], None]) -> Callable[[Event], None]:
        def journaled(event: Event) -> None:
            emit(event)
            if event.kind in ("plan", "step_finished"):
                # Steps that end together (a plan's parallel calls) share one snapshot; a
                # plan is written at once, before its steps run.
                self.mark(0.0 if event.kind == "plan" else self.COALESCE_S)

        return journaled

    def mark(self, delay_s: float) -> None:
        self.dirty = True
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self._write(delay_s))

    async def _write(self, delay_s: float) -> None:
        if delay_s:
            await asyncio.sleep(delay_s)
        while self.dirty:
            self.dirty = False
            try:
                await self.save_now()
            except Exception as exc:  # the final save still comes; a journal write may fail
                log.warning("journal write failed", run_id=self.run.run_id, error=repr(exc))

    async def drain(self) -> None:
        """Waits for the last snapshot, so the final record is written after it."""
        self.dirty = False
        if self.renewer is not None:
            self.renewer.cancel()
        if self.writer is not None:
            await self.writer


async def save_final(
    store: RunStore, record: agent_pb2.RunResponse, request: dict[str, Any]
) -> None:
    """The final record, retried once on a fresh connection: the run (and its side effects)
    has happened, so a connection cut by a database restart should not cost its result.
    Still unavailable: the caller gets UNAVAILABLE, never an acknowledgement."""
    try:
        await store.save(record, request)
    except StoreUnavailable:
        log.warning("final save failed, retrying", run_id=record.run_id)
        await store.save(record, request)


_LIMIT_FIELDS = ("max_steps", "max_replans", "max_model_calls", "max_tokens")


def request_record(run: RunState, tools: Mapping[str, Any]) -> dict[str, Any]:
    """The request as stored with the run: every field the caller sent, no metadata in clear
    (the owner's forwarded metadata only sealed, while the run may resume without them)."""
    return {
        "task": run.task,
        "context": run.context,
        "response_schema": run.response_schema,
        "mode": run.mode,
        "tools": sorted(tools),
        "user_id": run.user_id,
        "principal": run.principal,
        "conversation_id": run.conversation_id,
        # The run's deadline (unix seconds): a replica taking it over ends it DEADLINE_EXCEEDED
        # once this has passed, instead of resuming it.
        "deadline_at": run.deadline_at or None,
        "deadline_caller": run.deadline_caller,
    } | ({"sealed_credentials": run.sealed_credentials} if run.sealed_credentials else {})


def parse_schema(text: str) -> dict[str, Any]:
    """A caller's response schema, checked (bounds.response_schema): nothing in it is ever
    fetched, it is finite, and its patterns run in linear time."""
    return bounds.response_schema(text)


def _secrets(
    caller: Sequence[tuple[str, str]], forwarded: Mapping[str, Sequence[tuple[str, str]]]
) -> list[str]:
    """A run's secrets: forwarded metadata and the caller's authorization (the Redactor adds
    the bare token after "Bearer " and common encodings)."""
    values = [v for pairs in forwarded.values() for _, v in pairs]
    return values + [v for k, v in caller if k == "authorization"]


def _metadata(pairs: Any) -> list[tuple[str, str]]:
    return [(str(k).lower(), v if isinstance(v, str) else v.decode()) for k, v in pairs or ()]


def forward(
    caller: Sequence[tuple[str, str]], names: Sequence[str], *, inbound: bool = True
) -> tuple[tuple[str, str], ...]:
    """The caller's metadata entries that an upstream is configured to receive.

    An entry ``"from=to"`` renames on the way, e.g. ``"x-upstream-authorization=authorization"``
    when the caller's ``authorization`` is agentd's own bearer token. ``inbound=False`` (bearer
    auth on, the upstream did not opt in) never passes the caller's ``authorization`` on.
    """
    wanted = {}
    for name in names:
        source, _, target = name.lower().partition("=")
        if source.strip() == "authorization" and not inbound:
            continue
        wanted[source.strip()] = target.strip() or source.strip()
    return tuple((wanted[k], v) for k, v in caller if k in wanted)


async def conversation_history(store: RunStore, run: RunState, config: MemoryConfig) -> str:
    """A bounded summary of the conversation's earlier runs, most recent first."""
    # No user scope (anonymous without memory.allow_anonymous): no history shared by id alone.
    if not run.conversation_id or not run.user_id or config.history_runs <= 0:
        return ""
    earlier = await store.conversation(run.user_id, run.conversation_id, config.history_runs)
    lines: list[str] = []
    used = 0
    for record in earlier:
        answer = record.output or f"(no answer: {record.error or 'status ' + str(record.status)})"
        line = f"- task: {_clip(record.task, 300)} -> answer: {_clip(answer, 500)}"
        if used + len(line) > config.history_chars:
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
