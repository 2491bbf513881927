"""Running a run to its end: the caller's metadata forwarded per upstream, the owner's kept
sealed while the run may resume without them, secrets redacted, the journal while it runs,
and its end (final save, alerts, log line) whatever is cancelled meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from agentd import telemetry
from agentd.config import Config, MemoryConfig
from agentd.library.plans import PlanLibrary
from agentd.loop.agent import Agent
from agentd.loop.deadline import Deadline
from agentd.loop.hooks import RunHooks
from agentd.loop.state import Budget, RunState
from agentd.runs.admission import Admission
from agentd.runs.alerts import Alerter, run_alerts
from agentd.runs.journal import Journal, request_record, save_final, to_completion
from agentd.runs.sealing import Sealer, UpstreamMetadata
from agentd.runs.watch import Feed
from agentd.store import RunStore
from agentd.store.runs import RunRecords, Stored
from agentd.telemetry.redact import Redactor
from agentd.tools.upstream import ToolCatalog

log = structlog.get_logger("agentd.runs.runner")

Metadata = Sequence[tuple[str, str]]
TimeLeft = Callable[[], float | None]


class Runner:
    """One replica's runs: their admission, credentials and run to the end."""

    def __init__(
        self,
        config: Config,
        catalog: ToolCatalog,
        agent: Agent,
        store: RunStore,
        alerter: Alerter | None = None,
        sealer: Sealer | None = None,
        *,
        inbound_tokens: bool = False,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.agent = agent
        self.store = store
        self.records = RunRecords(store)
        # Worked examples for the planner ([examples]; the file is read here, at start).
        self.library = PlanLibrary(config.examples, store)
        self.alerter = alerter or Alerter(config.alerts)
        self.admission = Admission(config.server)
        # Bearer tokens authenticate callers: the caller's ``authorization`` is agentd's own,
        # forwarded only to upstreams that opt in (forward_inbound_credential).
        self.inbound_tokens = inbound_tokens
        # Keeps a run's owner credentials sealed while nobody of theirs attends it (None:
        # approvals.seal_key_env unset, and such resumed runs forward no metadata).
        self.sealer = sealer
        # The events of the runs this replica runs now, for WatchRun callers here.
        self.feeds: dict[str, Feed] = {}

    # --- sealed credentials ---------------------------------------------------------------------

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

    # --- the run ---------------------------------------------------------------------------------

    def _provider(self) -> str:
        """gen_ai.provider.name of the run's span: the planner's, which every run calls."""
        planner = self.agent.models.get("planner")
        return telemetry.provider_name(planner) if planner is not None else ""

    def _configured_secrets(self) -> list[str]:
        """Secrets from the config every run redacts too: the model endpoints' API keys."""
        return [key for m in self.agent.models.values() if (key := getattr(m, "api_key", ""))]

    async def run_to_end(
        self,
        run: RunState,
        tools: Mapping[str, Any],
        limits: Budget,
        caller: Metadata,
        time_left: TimeLeft = lambda: None,
        *,
        owner_metadata: UpstreamMetadata | None = None,
        admitted: bool = False,
        deadline: Deadline | None = None,
        on_event: Callable[[Any], None] | None = None,
        on_start: Callable[[RunState], Awaitable[None]] | None = None,
    ) -> Stored:
        """Run (or resume) ``run`` with the caller's metadata, journaled, stored at its end.

        ``owner_metadata``: per upstream, what a resumed run forwards instead of a caller's
        (its owner's, unsealed; never an approver's). ``admitted``: the slot is already held.
        ``deadline``: the run's, when it resumes with one stored; else made here from the
        caller's ``time_left`` and ``limits.run_timeout_s``. ``on_start``: awaited once the
        run has its trace id and is stored (when journaled), before any model call.
        ``on_event``: handed each event as journaled (a RunEvent message). Its end (final
        record, alerts, log) happens whatever is cancelled meanwhile."""
        async with contextlib.nullcontext() if admitted else self.admission.slots:
            if deadline is None:
                deadline = Deadline.start(self.config.limits.run_timeout_s, time_left())
            run.deadline_at, run.deadline_caller = deadline.at, deadline.caller
            forwarded = {
                name: forward(
                    caller,
                    tool.upstream.forward_metadata,
                    # agentd's own bearer token only where the upstream's config opts in
                    inbound=not self.inbound_tokens or tool.upstream.forward_inbound_credential,
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
                storage = self.config.storage
                journal = Journal(
                    self.records, run, request_record(run, tools), storage.max_events_per_run
                )
                # Every event is numbered and kept by the journal (answer deltas too, stored in
                # batches with the next snapshot); someone following them (RunStream) also gets
                # the answer as it is decoded, unless agent.stream_answer is off.
                hooks = RunHooks(
                    journal.wrap(on_event, snapshots=storage.journal),
                    stream_answer=on_event is not None and self.config.agent.stream_answer,
                )
                feed = None
                try:
                    if run.resumes:  # its events number on from those of its earlier parts
                        last = await self.records.last_event(run.run_id)
                        journal.sequence = last.sequence if last is not None else 0
                    feed = self.feeds[run.run_id] = journal.feed = Feed(journal.sequence + 1)
                    if storage.journal:
                        await journal.save_now()
                        hooks = dataclasses.replace(hooks, before_side_effect=journal.save_now)
                        journal.keep_lease()
                    if on_start is not None:  # stored as RUNNING: the caller may follow it
                        await on_start(run)
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
                    try:
                        record = await to_completion(
                            self._finish(run, tools, journal, bound, per_upstream)
                        )
                    finally:
                        if feed is not None:
                            if self.feeds.get(run.run_id) is feed:
                                del self.feeds[run.run_id]
                            feed.close()
            return record

    async def _finish(
        self,
        run: RunState,
        tools: Mapping[str, Any],
        journal: Journal,
        bound: Any,
        per_upstream: UpstreamMetadata,
    ) -> Stored:
        """The end of a run: the last journal write, the final record, alerts, the log line."""
        # Persist even when the caller cancelled: an acknowledged run is never lost.
        await journal.drain()
        run.sealed_credentials = (  # kept while it waits; dropped when it ends
            self.seal_while_waiting(run.run_id, per_upstream)
            if run.status == "needs_approval"
            else None
        )
        record = await save_final(self.records, run, request_record(run, tools), journal)
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


def _secrets(
    caller: Sequence[tuple[str, str]], forwarded: Mapping[str, Sequence[tuple[str, str]]]
) -> list[str]:
    """A run's secrets: forwarded metadata and the caller's authorization (the Redactor adds
    the bare token after "Bearer " and common encodings)."""
    values = [v for pairs in forwarded.values() for _, v in pairs]
    return values + [v for k, v in caller if k == "authorization"]


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


async def conversation_history(records: RunRecords, run: RunState, config: MemoryConfig) -> str:
    """A bounded summary of the conversation's earlier runs, most recent first."""
    # No user scope (anonymous without memory.allow_anonymous): no history shared by id alone.
    if not run.conversation_id or not run.user_id or config.history_runs <= 0:
        return ""
    earlier = await records.conversation(run.user_id, run.conversation_id, config.history_runs)
    lines: list[str] = []
    used = 0
    for record in earlier:
        answer = record.output or f"(no answer: {record.error or 'status ' + record.status})"
        line = f"- task: {_clip(record.task, 300)} -> answer: {_clip(answer, 500)}"
        if used + len(line) > config.history_chars:
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
