"""One deadline per run: made once from the caller's remaining time and ``run_timeout_s``,
then read by everything that must stop in time (the loop's timer, each upstream call, the
journal, a replica taking the run over).

It holds the same instant twice: on the wall clock, to be stored with the run and read by
another process, and on the monotonic clock, to be measured against here. The loop ends
``margin_s`` before the caller's deadline, so the run ends itself (stored, alerts sent) rather
than being cut off by gRPC's cancellation of the call at the deadline itself; upstream calls
get at most the time the loop has left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

# How long before the caller's deadline the loop stops: enough for the request's transit
# (the server's view of the deadline lags the caller's by it) and the final record. At most
# half of what the caller gave, so a short deadline still leaves the run time to work.
MARGIN_S = 0.1


@dataclass(frozen=True)
class Deadline:
    """When a run must have ended: ``at`` (unix seconds) and ``monotonic`` (time.monotonic())
    name the same instant; ``margin_s`` comes off both for the loop's own end."""

    at: float
    monotonic: float
    margin_s: float = 0.0
    caller: bool = False  # set by the caller's deadline (else by run_timeout_s)

    @classmethod
    def start(cls, run_timeout_s: float, caller_remaining_s: float | None = None) -> Deadline:
        """For a run starting now: ``run_timeout_s``, or the caller's remaining time if less."""
        now_wall, now = time.time(), time.monotonic()
        if caller_remaining_s is not None and caller_remaining_s < run_timeout_s:
            left = max(0.0, caller_remaining_s)
            return cls(now_wall + left, now + left, min(MARGIN_S, left / 2), caller=True)
        return cls(now_wall + run_timeout_s, now + run_timeout_s)

    @classmethod
    def stored(
        cls,
        at: float,
        caller: bool,
        run_timeout_s: float,
        caller_remaining_s: float | None = None,
    ) -> Deadline:
        """A resumed run's: the stored instant ``at`` (unix seconds, 0: none) still holds, even
        when it has passed, unless this resume's own bound (``run_timeout_s``, the time left
        to the caller resuming it) is earlier."""
        fresh = cls.start(run_timeout_s, caller_remaining_s)
        if not at or fresh.at <= at:
            return fresh
        return cls(at, time.monotonic() + (at - time.time()), fresh.margin_s, caller)

    def remaining(self) -> float:
        """Seconds the run may still work (its loop's end: the margin before the deadline)."""
        return self.monotonic - self.margin_s - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def ending(self, cancelled: bool, run_timeout_s: float) -> tuple[str, str]:
        """(status, error) of a run stopped by a cancellation or its timer. A cancellation once
        the run's time is up is the deadline (gRPC cancels the call at the caller's
        deadline), not the caller cancelling."""
        if cancelled and not self.expired():
            return "cancelled", "the caller cancelled the run"
        if self.caller:
            return "deadline_exceeded", "the caller's deadline passed"
        return "deadline_exceeded", f"the run did not finish within {run_timeout_s:g} s"

    def call_timeout(self, per_call_s: float) -> float:
        """An upstream call's timeout: its own, or what the run has left if less."""
        return max(0.001, min(per_call_s, self.remaining()))
