"""Group commit: writes from any number of event loops, committed by one writer thread, every
write that is waiting when it is free in one transaction.

Split from ``agentd.store.sqlite`` because the hand-over (a queue, a thread, and waking each
writer on its own event loop with its own outcome) is the same whatever a commit writes: the
store hands in the commit (its SQL), this module batches the writes and reports back.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["GroupCommit"]


@dataclass
class _Pending(Generic[T]):
    """One write waiting for the writer thread, and where to report how it went."""

    item: T
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


class GroupCommit(Generic[T]):
    """Hands writes to one writer thread that commits them in batches.

    ``commit`` gets every item waiting (at most ``max_batch``) and returns each one's error, or
    None; it runs on the writer thread, started by the first write. Each ``write`` returns only
    once the commit holding it is done, raising its own error.
    """

    def __init__(
        self,
        commit: Callable[[list[T]], list[BaseException | None]],
        *,
        thread_name: str,
        max_batch: int,
    ) -> None:
        self._commit = commit
        self._thread_name = thread_name
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending[T] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None

    async def write(self, item: T) -> None:
        loop = asyncio.get_running_loop()
        pending = _Pending(item, loop, loop.create_future())
        # Read by the shielded await, or here when its caller was cancelled meanwhile.
        pending.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        if self._writer is None:
            self._writer = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            self._writer.start()
        self._queue.put(pending)
        # Shielded like to_thread's work: a cancelled caller does not unwrite its record.
        await asyncio.shield(pending.future)

    def _run(self) -> None:
        """The writer thread: each pass commits every write that is waiting, in one go."""
        while (first := self._queue.get()) is not None:
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    pending = self._queue.get_nowait()
                except queue.Empty:
                    break
                if pending is None:
                    stop = True
                    break
                batch.append(pending)
            try:
                outcomes = self._commit([pending.item for pending in batch])
            except BaseException as exc:  # never leave a write waiting on a dead writer
                outcomes = [exc] * len(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Pending[T], BaseException | None]]]
            by_loop = {}
            for pending, outcome in zip(batch, outcomes, strict=True):
                by_loop.setdefault(pending.loop, []).append((pending, outcome))
            for loop, settled in by_loop.items():
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    loop.call_soon_threadsafe(_settle, settled)
            if stop:
                return

    async def close(self) -> None:
        """Stop the writer thread after every write already handed over is committed."""
        if self._writer is not None:
            self._queue.put(None)  # after every write already queued
            await asyncio.to_thread(self._writer.join)


def _settle(settled: list[tuple[_Pending[T], BaseException | None]]) -> None:
    """On the writing loop: wake each ``write`` with its outcome."""
    for pending, error in settled:
        if pending.future.done():
            continue
        if error is None:
            pending.future.set_result(None)
        else:
            pending.future.set_exception(error)
