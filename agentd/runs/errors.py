"""The durable-run domain's errors: what an edge maps to its own status (the gRPC edge's table
is agentd/api/errors.py). Each names what it concerns (``field``: the request field its
message starts with; ``run_id``: the run) and keeps the message a caller reads."""

from __future__ import annotations

# How much of a caller's value an error message quotes.
ECHO_CHARS = 40


def echo(value: str) -> str:
    """``value`` quoted for an error message, cut to a short prefix."""
    if len(value) <= ECHO_CHARS:
        return repr(value)
    return f"{value[:ECHO_CHARS]!r}… ({len(value):,} characters)"


class RunError(Exception):
    """A request the run domain refuses; ``str(exc)`` is the caller's message."""

    field = ""

    def __init__(self, message: str, *, field: str = "", run_id: str = "") -> None:
        super().__init__(message)
        self.field = field or message.partition(":")[0]
        self.run_id = run_id


class InvalidField(RunError, ValueError):
    """A field that cannot be used; the message starts with its path (``field: ...``)."""


class RunNotFound(RunError):
    """No such run, or another principal's (never revealed)."""


class Forbidden(RunError):
    """The caller may not act as the request asks (another user's memory and history)."""


class NotWaiting(RunError):
    """The run is not waiting for a decision."""


class AlreadyDecided(RunError):
    """Another decision on this waiting period was taken first."""


class ApprovalExpired(RunError):
    """Nobody decided the pending calls within approvals.ttl_s."""


class PolicyForbids(RunError):
    """An approval the current allowlist or policy no longer lets run."""


class Busy(RunError):
    """server.max_concurrent_runs runs in progress; ``retry_s``: when to try again."""

    def __init__(self, message: str, retry_s: float = 1.0) -> None:
        super().__init__(message, field="server.max_concurrent_runs")
        self.retry_s = retry_s


class RateLimited(RunError):
    """The principal's concurrent runs or runs per minute are used up."""

    def __init__(self, message: str, retry_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_s = retry_s


class FeedbackFull(RunError):
    """The run keeps no more feedback entries."""
