"""Admission of runs: a slot of server.max_concurrent_runs, and room in the principal's limits
(concurrent runs, runs per minute), so one caller cannot starve the others."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator

from agentd.config import ServerConfig
from agentd.runs.errors import Busy, RateLimited


class PrincipalLimits:
    """Per-principal concurrent runs and runs per minute, so one caller cannot starve others."""

    def __init__(self, concurrent: int, per_minute: int) -> None:
        self.concurrent = concurrent
        self.per_minute = per_minute
        self.running: collections.Counter[str] = collections.Counter()
        self.started: dict[str, collections.deque[float]] = collections.defaultdict(
            collections.deque
        )
        self.retry_s = 1.0  # of the last refusal: when a retry may succeed

    def acquire(self, principal: str, starting: bool = True) -> str:
        """'' when the run may start (and is counted), else the message naming the limit.
        ``starting=False``: a stopped run resuming, counted as running but not as a start."""
        self.retry_s = 1.0
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
                self.retry_s = max(1.0, window[0] + 60 - now)
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


class Admission:
    """The slots and the per-principal limits of one replica."""

    def __init__(self, config: ServerConfig) -> None:
        self.max_runs = config.max_concurrent_runs
        self.slots = asyncio.Semaphore(config.max_concurrent_runs)
        self.limits = PrincipalLimits(config.max_runs_per_principal, config.runs_per_minute)

    def start(self, principal: str) -> None:
        """Count a new run of ``principal`` (release it with ``release``); else Busy or
        RateLimited. Its slot is taken when it runs (``run_to_end``)."""
        if self.slots.locked():
            raise Busy(f"{self.max_runs} runs already in progress; retry later")
        refused = self.limits.acquire(principal)
        if refused:
            raise RateLimited(refused, self.limits.retry_s)

    def release(self, principal: str) -> None:
        self.limits.release(principal)

    @contextlib.asynccontextmanager
    async def resuming(self, owner: str) -> AsyncIterator[None]:
        """Admission of a stopped run about to resume (ApproveRun): a slot of
        ``server.max_concurrent_runs`` and room in its owner's ``max_runs_per_principal``,
        taken before anything is decided; else Busy / RateLimited and nothing changes."""
        if self.slots.locked():
            raise Busy(
                f"{self.max_runs} runs already in progress"
                " (server.max_concurrent_runs); nothing was decided, retry later"
            )
        await self.slots.acquire()  # free: taken at once
        try:
            refused = self.limits.acquire(owner, starting=False)
            if refused:
                raise RateLimited(f"{refused} (the run's owner); nothing was decided")
            try:
                yield
            finally:
                self.limits.release(owner)
        finally:
            self.slots.release()
