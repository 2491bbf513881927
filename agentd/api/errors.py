"""One table from errors to gRPC status, with structured details (google.rpc, AIP-193).

Every refusal agentd makes over gRPC comes from here: the run domain's errors
(agentd/runs/errors.py), the edge's own (a bad field, a missing credential) and the store's.
The message stays the one a person reads; the details say the same for programs:

- ``ErrorInfo`` on every error: domain ``agentd``, a stable ``reason`` (below), and in its
  metadata the ``field`` and ``run_id`` the error concerns, when it concerns one;
- ``BadRequest`` field violations for INVALID_ARGUMENT: the field path the message names;
- ``ResourceInfo`` for NOT_FOUND: the run asked for;
- ``RetryInfo`` for RESOURCE_EXHAUSTED and UNAVAILABLE, when a retry may succeed.

docs/errors.md is generated from ``TABLE`` (python -m agentd.api.errors; a test compares).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from agentd.runs import errors
from agentd.store import LeaseLost, StoreUnavailable

DOMAIN = "agentd"


class Unauthenticated(Exception):
    """No valid inbound credential (server.auth)."""


@dataclass(frozen=True)
class Entry:
    error: type[BaseException]
    code: grpc.StatusCode
    reason: str
    meaning: str
    retry: bool = False  # RetryInfo: a retry may succeed


TABLE = (
    Entry(
        errors.InvalidField,
        grpc.StatusCode.INVALID_ARGUMENT,
        "FIELD_INVALID",
        "a request field is missing, out of its bound or unusable; the message starts with"
        " its path",
    ),
    Entry(
        errors.RunNotFound,
        grpc.StatusCode.NOT_FOUND,
        "RUN_NOT_FOUND",
        "no such run (or another principal's: never revealed)",
    ),
    Entry(
        errors.Forbidden,
        grpc.StatusCode.PERMISSION_DENIED,
        "ACTING_FOR_ANOTHER_USER",
        "user_id (or the memory.user_header metadata) names another user; only an admin or"
        " impersonate principal may",
    ),
    Entry(
        errors.NotWaiting,
        grpc.StatusCode.FAILED_PRECONDITION,
        "RUN_NOT_WAITING",
        "ApproveRun on a run that is not waiting for approval",
    ),
    Entry(
        errors.ApprovalExpired,
        grpc.StatusCode.FAILED_PRECONDITION,
        "APPROVAL_EXPIRED",
        "nobody decided the pending calls within approvals.ttl_s",
    ),
    Entry(
        errors.PolicyForbids,
        grpc.StatusCode.FAILED_PRECONDITION,
        "POLICY_FORBIDS",
        "the approved tool is no longer allowed (allowlist or policy changed); reject it",
    ),
    Entry(
        errors.AlreadyDecided,
        grpc.StatusCode.ABORTED,
        "ALREADY_DECIDED",
        "another decision on this wait was taken first; GetRun shows the run",
    ),
    Entry(
        errors.Busy,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "SERVER_BUSY",
        "server.max_concurrent_runs runs in progress",
        retry=True,
    ),
    Entry(
        errors.RateLimited,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "RATE_LIMITED",
        "the principal's server.max_runs_per_principal or server.runs_per_minute is used up",
        retry=True,
    ),
    Entry(
        errors.FeedbackFull,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "FEEDBACK_FULL",
        "the run keeps no more feedback entries",
    ),
    Entry(
        StoreUnavailable,
        grpc.StatusCode.UNAVAILABLE,
        "STORE_UNAVAILABLE",
        "the run store cannot be reached; nothing was acknowledged",
        retry=True,
    ),
    Entry(
        LeaseLost,
        grpc.StatusCode.UNAVAILABLE,
        "RUN_MOVED",
        "another replica took the run over and carries it on; follow it with GetRun",
        retry=True,
    ),
    Entry(
        Unauthenticated,
        grpc.StatusCode.UNAUTHENTICATED,
        "UNAUTHENTICATED",
        "missing or invalid bearer token",
    ),
)


def entry(exc: BaseException) -> Entry | None:
    """The table's entry for ``exc`` (its most specific class first), None if not ours."""
    by_type = {e.error: e for e in TABLE}
    for kind in type(exc).__mro__:
        if kind in by_type:
            return by_type[kind]
    return None


def message(exc: BaseException) -> str:
    if isinstance(exc, LeaseLost):
        return f"{exc}; follow it with GetRun"
    return str(exc)


def status(exc: BaseException, found: Entry) -> status_pb2.Status:
    """The google.rpc.Status of ``exc``: code, the message, and its details."""
    text = message(exc)
    field = getattr(exc, "field", "")
    run_id = getattr(exc, "run_id", "")
    info = error_details_pb2.ErrorInfo(reason=found.reason, domain=DOMAIN)
    if field:
        info.metadata["field"] = field
    if run_id:
        info.metadata["run_id"] = run_id
    details: list[object] = [info]
    if found.code == grpc.StatusCode.INVALID_ARGUMENT:
        violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=text)
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    if found.code == grpc.StatusCode.NOT_FOUND:
        details.append(
            error_details_pb2.ResourceInfo(
                resource_type="agentd.v1.Run", resource_name=run_id, description=text
            )
        )
    if found.retry:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(getattr(exc, "retry_s", 1.0) * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for detail in details:
        item = any_pb2.Any()
        item.Pack(detail)  # type: ignore[arg-type]
        packed.append(item)
    return status_pb2.Status(code=found.code.value[0], message=text, details=packed)


async def abort(context: grpc.aio.ServicerContext, exc: BaseException) -> NoReturn:
    """End the call with ``exc``'s status and details (``exc``: an error of ``TABLE``)."""
    found = entry(exc)
    assert found is not None, f"not in agentd/api/errors.py TABLE: {type(exc).__name__}"
    await context.abort_with_status(rpc_status.to_status(status(exc, found)))  # type: ignore[attr-defined]
    raise AssertionError("unreachable: abort raises")


def reference() -> str:
    """docs/errors.md: every status agentd answers with, and its ErrorInfo reason."""
    lines = [
        "# agentd's errors",
        "",
        "<!-- Generated by `python -m agentd.api.errors` from agentd/api/errors.py; do not"
        " edit. -->",
        "",
        "Every error carries a `google.rpc.ErrorInfo` (domain `agentd`, the reason below;",
        "metadata `field` and `run_id` when it concerns one), and the message a person reads.",
        "INVALID_ARGUMENT adds `BadRequest` (the field path), NOT_FOUND `ResourceInfo` (the",
        "run), and the retryable ones `RetryInfo` (when to try again). Read them with",
        "`grpc_status.rpc_status.from_call(call)` (Python) or the `grpc-status-details-bin`",
        "trailer.",
        "",
        "| reason | status | retry | meaning |",
        "|---|---|---|---|",
    ]
    for e in TABLE:
        retry = "RetryInfo" if e.retry else ""
        lines.append(f"| `{e.reason}` | {e.code.name} | {retry} | {e.meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
