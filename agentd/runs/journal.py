"""A run's writes: the journal of a run in progress, its final save, the request stored with
it, and the end of a run that runs to completion whatever is cancelled."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import structlog

from agentd.loop.state import Event, RunState
from agentd.runs.watch import Feed
from agentd.store import StoreUnavailable
from agentd.store.runs import RunRecords, Stored

log = structlog.get_logger("agentd.runs.journal")
T = TypeVar("T")


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

    def __init__(
        self, records: RunRecords, run: RunState, request: dict[str, Any], max_events: int = 0
    ) -> None:
        self.records = records
        self.run = run
        self.request = request
        # The run's events, numbered on from those of its earlier parts (a resumed run): the
        # first ``max_events`` are journaled, each with the next snapshot (never a write of
        # its own), and handed to local watchers (``feed``) as they happen.
        self.sequence = 0  # of the last event so far
        self.max_events = max_events
        self.pending: list[Any] = []  # RunEvent messages not stored yet
        self.feed: Feed | None = None
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
            events, self.pending = self.pending, []
            try:
                await self.records.save(self.run, request, events)
            except BaseException:
                self.pending[:0] = events  # they go with the next write (a repeat is ignored)
                raise
            self.request_saved = True

    def keep_lease(self) -> None:
        """Renew the run's lease while it runs, so no other replica takes it over."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.records.store.lease_s / 3)
                try:
                    if not await self.records.store.renew(self.run.run_id):
                        log.warning("lease lost", run_id=self.run.run_id)
                        return
                except Exception as exc:  # the store is down: the next renewal tries again
                    log.warning("lease renewal failed", run_id=self.run.run_id, error=repr(exc))

        self.renewer = asyncio.create_task(renew())

    def wrap(
        self, emit: Callable[[Any], None] | None, snapshots: bool = True
    ) -> Callable[[Event], None]:
        """Number each event and keep it (its RunEvent message, copied now and redacted)
        for the journal, the local watchers and ``emit``; ``snapshots``: a plan and a step's
        end also write a snapshot (storage.journal)."""

        def journaled(event: Event) -> None:
            self.sequence += 1
            event = dataclasses.replace(event, sequence=self.sequence)
            message = self.records.event(self.run, self.sequence, event)
            if emit is not None:
                emit(message)
            kept = self.sequence <= self.max_events
            if kept:
                self.pending.append(message)
            if self.feed is not None:
                self.feed.publish(message, kept)
            if snapshots and event.kind in ("plan", "step_finished"):
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
    records: RunRecords, run: RunState, request: dict[str, Any], journal: Journal | None = None
) -> Stored:
    """The final record, retried once on a fresh connection: the run (and its side effects)
    has happened, so a connection cut by a database restart should not cost its result.
    Still unavailable: the caller gets UNAVAILABLE, never an acknowledgement.

    With ``journal``: stored with the events not stored yet and the final event (the record,
    numbered after the last event), which is then handed to the local watchers."""
    events, final = (journal.pending, journal.sequence + 1) if journal else ([], 0)
    try:
        stored = await records.save(run, request, events, final)
    except StoreUnavailable:
        log.warning("final save failed, retrying", run_id=run.run_id)
        stored = await records.save(run, request, events, final)
    if journal is not None:
        journal.pending, journal.sequence = [], final
        if journal.feed is not None:
            journal.feed.publish(records.final(stored, final), True)
    return stored


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
