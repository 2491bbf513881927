"""The durable-run domain, without gRPC: start a run (a ``RunHandle`` an edge iterates and
awaits), run or resume it to its end (journaled, stored, alerted, whatever is cancelled
meanwhile), read runs, rate them. Approvals, expiry and takeover are agentd/runs/approvals.py.

Every refusal is a domain error (agentd/runs/errors.py); each edge maps them to its status.
Caller credentials are read from the metadata named per upstream and passed only to that
run's upstream calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import structlog

from agentd.loop.state import Budget, RunState
from agentd.runs import approvals
from agentd.runs import feedback as feedback_
from agentd.runs.alerts import Alert
from agentd.runs.errors import FeedbackFull, Forbidden, InvalidField, RunNotFound, echo
from agentd.runs.runner import Metadata, Runner, TimeLeft, conversation_history
from agentd.runs.spec import ANONYMOUS, LIMIT_FIELDS, CallDecision, Principal, RunSpec
from agentd.runs.watch import follow
from agentd.store import FeedbackLimit
from agentd.store.runs import Stored
from agentd.tools import memory

log = structlog.get_logger("agentd.runs.service")

OnStart = Callable[[RunState], Awaitable[None]]

# A run keeps at most this many feedback entries (each bounded by the edge's request bounds).
MAX_FEEDBACK_PER_RUN = 20


class RunHandle:
    """A started run: iterate ``events()`` (the journal's sequence numbers, from 1) and/or
    await ``result()``.

    Without ``events()`` the run runs in the awaiting task; with it, in a task of its own that
    is cancelled (with its upstream calls) if the iterating caller goes away. ``on_start``
    (of either) is awaited once the run has its trace id and is stored, before any model
    call: an edge tells the caller which run to follow."""

    def __init__(self, run: RunState, work: Callable[..., Any]) -> None:
        self.run = run
        self.sequence = 0  # of the last event handed out
        self._work = work  # work(on_event, on_start) runs the run to its end
        self._task: asyncio.Task[Stored] | None = None

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def deadline_exceeded(self) -> bool:
        return self.run.status == "deadline_exceeded"

    async def events(self, on_start: OnStart | None = None) -> AsyncIterator[Any]:
        """The run's events as journaled (RunEvent messages, copied when they happened and
        redacted, numbered as WatchRun's cursors count them), until it ends."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task = task = asyncio.create_task(self._work(queue.put_nowait, on_start))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (message := await queue.get()) is not None:
                self.sequence = message.sequence
                yield message
        finally:
            if not task.done():  # the caller went away: cancel the run and its upstream calls
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def result(self, on_start: OnStart | None = None) -> Stored:
        """The run's stored record at its end (raises what ended it otherwise)."""
        if self._task is None:
            return await self._work(None, on_start)  # type: ignore[no-any-return]
        return await self._task


class Runs(Runner):
    """What every edge calls: start, get, list, approve, feedback (errors: runs.errors)."""

    # --- reading and rating runs --------------------------------------------------------------

    async def get(self, run_id: str, principal: Principal) -> Stored:
        """The caller's run; someone else's is RunNotFound like a missing one (not revealed)."""
        stored = await self.records.get(run_id)
        if stored is None or not (principal.admin or stored.principal == principal.id):
            raise RunNotFound(f"run_id: no run {echo(run_id)}", run_id=run_id)
        return stored

    async def watch(self, run_id: str, principal: Principal, after: int) -> AsyncIterator[Any]:
        """The caller's run's events after sequence ``after`` (RunEvent messages): what was
        journaled, then what happens, until the run ends or waits for approval (its final
        event); from whichever replica runs it (agentd/runs/watch.py)."""
        await self.get(run_id, principal)
        async for message in follow(self.records, self.feeds, run_id, after):
            yield message

    async def list(
        self, principal: Principal, status: str = "", limit: int = 0, after: str = ""
    ) -> list[Any]:
        """The caller's runs (an admin's: everyone's) with ``status`` (a RunStatus name), or
        rated ones when ``status`` is empty; stored records, oldest first, after the run
        ``after`` when given (a page's cursor)."""
        owner = None if principal.admin else principal.id
        if status:
            return await self.records.with_status(status, limit or 1000, owner, after)
        return await self.records.with_feedback(limit or 1000, owner, after)

    async def feedback(
        self, run_id: str, principal: Principal, rating: int, comment: str, labels: Sequence[str]
    ) -> tuple[Stored, Any]:
        """Add the caller's rating of their run; the run and the entry (a Feedback message)."""
        stored = await self.get(run_id, principal)
        full = FeedbackFull(
            f"run_id: run {stored.run.run_id} already has {MAX_FEEDBACK_PER_RUN} feedback"
            f" entries, the most a run keeps",
            run_id=run_id,
        )
        if stored.feedback >= MAX_FEEDBACK_PER_RUN:
            raise full
        problem = feedback_.check_rating(rating)
        if problem:
            raise InvalidField(problem)
        try:  # who rated, from authentication; the store counts as it writes
            added = await self.records.add_feedback(
                run_id, rating, comment, labels, principal.id, MAX_FEEDBACK_PER_RUN
            )
        except FeedbackLimit:
            raise full from None
        if added is None:
            raise RunNotFound(f"run_id: no run {echo(run_id)}", run_id=run_id)
        stored, item = added
        run = stored.run
        feedback_.record_span(run.run_id, run.trace_id, rating, labels)
        log.info("feedback", run_id=run.run_id, rating=rating, labels=list(labels))
        if feedback_.score(rating) > 0:  # a plan that went well: a worked example
            example = await self.library.capture(stored.message, principal.id)
            if example is not None:
                log.info("example added", run_id=run.run_id, example_id=example.id)
        if self.config.alerts.on_negative_feedback and feedback_.score(rating) < 0:
            self.alerter.send(
                Alert(run.run_id, run.trace_id, "negative_feedback", comment[:500], rating)
            )
        return stored, item

    # --- starting a run -----------------------------------------------------------------------

    async def start(
        self,
        spec: RunSpec,
        principal: Principal,
        metadata: Metadata,
        time_left: TimeLeft = lambda: None,
    ) -> RunHandle:
        """A new run of ``spec`` for ``principal``, ready to run (see RunHandle). ``metadata``:
        the caller's, forwarded per upstream as configured; ``time_left``: the caller's time
        budget in seconds (None: none), read when the run begins (one Deadline)."""
        upstream, builtin = memory.split_patterns(spec.tools)
        try:
            tools: dict[str, Any] = (
                dict(self.catalog.select(upstream)) if upstream or not spec.tools else {}
            )
        except LookupError as exc:
            raise InvalidField(
                f"tools: {echo(exc.args[0])} matches no tool; see ListTools"
            ) from None
        limits = Budget.of(self.config.limits, **{f: spec.limits.get(f) for f in LIMIT_FIELDS})
        run = RunState(
            run_id=uuid.uuid4().hex,
            task=spec.task,
            mode=spec.mode or self.config.agent.mode,  # type: ignore[arg-type]
            context=spec.context,
            response_schema=spec.response_schema,
            conversation_id=spec.conversation_id,
            user_id=spec.user_id,
            principal=principal.id,
        )
        tools.update(
            memory.builtin_tools(
                self.store, self.config.memory, run, builtin if spec.tools else None
            )
        )
        problem = self.scope(run, principal, metadata)
        if problem:
            raise Forbidden(problem, run_id=run.run_id)
        if not run.user_id:  # memory needs a user scope; without one the tools are not offered
            for name in memory.SPECS:
                tools.pop(name, None)
        run.history = await conversation_history(self.records, run, self.config.memory)
        if run.mode != "react":  # only the planner reads them
            run.examples = await self.library.for_run(run.task, run.principal, tools)

        async def work(on_event: Callable[[Any], None] | None, on_start: OnStart | None) -> Stored:
            self.admission.start(run.principal)
            try:
                return await self.run_to_end(
                    run, tools, limits, metadata, time_left, on_event=on_event, on_start=on_start
                )
            finally:
                self.admission.release(run.principal)

        return RunHandle(run, work)

    def scope(self, run: RunState, principal: Principal, caller: Metadata) -> str:
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

    async def approve(
        self,
        run_id: str,
        principal: Principal,
        decisions: Sequence[CallDecision],
        request_id: str,
        metadata: Metadata,
        time_left: TimeLeft = lambda: None,
    ) -> tuple[Stored, bool]:
        """Decide the pending calls of the caller's run (an admin's: anyone's) and resume it
        (approvals.approve); the run at its end, and whether this only repeated a decision."""
        stored = await self.get(run_id, principal)
        return await approvals.approve(
            self, stored, principal, decisions, request_id, metadata, time_left
        )
