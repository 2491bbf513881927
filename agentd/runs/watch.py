"""Following a run's events from a cursor (WatchRun), on whichever replica the caller reaches.

A run's events are numbered 1, 2, 3, ... across its parts (a run resumed after an approval or
a takeover numbers on); each part ends with a final event carrying the record (the run ended,
or waits for approval). The journal stores them with the run's snapshots (agentd/runs/
journal.py). A watcher gets the stored events after its cursor, then the live ones: from this
replica's ``Feed`` while the run runs here, else by polling the store every ``POLL_S``, until
the next final event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from agentd.store.runs import RunRecords

# How often a replica that does not run the run reads the store for its new events.
POLL_S = 0.2
# Events read from the store at once.
PAGE = 500


class Feed:
    """The events of the part of a run this replica runs now (RunEvent messages, from
    sequence ``first``), for watchers here: those journaled so far, and a queue per watcher
    for the next ones; None in a queue: the part ended."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.kept: list[Any] = []
        self.watchers: set[asyncio.Queue[Any]] = set()
        self.closed = False

    def publish(self, message: Any, kept: bool) -> None:
        if kept:  # as the journal: a run keeps at most storage.max_events_per_run events
            self.kept.append(message)
        for queue in self.watchers:
            queue.put_nowait(message)

    def close(self) -> None:
        self.closed = True
        for queue in self.watchers:
            queue.put_nowait(None)

    @contextlib.contextmanager
    def watching(self) -> Iterator[tuple[list[Any], asyncio.Queue[Any]]]:
        """The events kept so far and the queue of the next ones, with none in both."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        if self.closed:
            queue.put_nowait(None)
        self.watchers.add(queue)
        try:
            yield list(self.kept), queue
        finally:
            self.watchers.discard(queue)


async def _journaled(
    records: RunRecords, run_id: str, after: int, below: int | None = None
) -> AsyncIterator[Any]:
    """The stored events after ``after`` (and before ``below``), in order."""
    while True:
        page = await records.events(run_id, after, PAGE)
        for message in page:
            if below is not None and message.sequence >= below:
                return
            yield message
            after = message.sequence
        if len(page) < PAGE:
            return


async def follow(
    records: RunRecords, feeds: Mapping[str, Feed], run_id: str, after: int
) -> AsyncIterator[Any]:
    """RunEvent messages of ``run_id`` after sequence ``after``, each once and in order,
    ending with the next final event; none when the caller has seen the last one already."""
    cursor = after
    while True:
        feed = feeds.get(run_id)
        if feed is not None:  # this replica runs it now
            with feed.watching() as (kept, queue):
                # Its earlier parts from the store, then this part as it goes.
                async for message in _journaled(records, run_id, cursor, below=feed.first):
                    yield message
                    if message.HasField("final"):
                        return
                    cursor = message.sequence
                for message in kept:
                    if message.sequence > cursor:
                        yield message
                        if message.HasField("final"):
                            return
                        cursor = message.sequence
                while (message := await queue.get()) is not None:
                    if message.sequence > cursor:
                        yield message
                        if message.HasField("final"):
                            return
                        cursor = message.sequence
            # Ended without its final event (its end could not be stored): the store says.
        seen = cursor
        async for message in _journaled(records, run_id, cursor):
            yield message
            if message.HasField("final"):
                return
            cursor = message.sequence
        if cursor != seen:
            continue
        stored = await records.get(run_id, with_request=False)
        if stored is None:
            return
        if stored.run.status != "running":
            # Events stored with this record, if any, are readable now.
            if await records.events(run_id, cursor, 1):
                continue
            last = await records.last_event(run_id)
            if last is not None and last.HasField("final") and last.sequence <= cursor:
                return  # the caller saw this end already
            # A record stored without a final event (an expiry, a takeover that waits).
            yield records.final(stored, max(cursor, last.sequence if last else 0) + 1)
            return
        await asyncio.sleep(POLL_S)
