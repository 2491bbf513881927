"""The run store: every run record, persisted (SQLite in WAL mode by default, PostgreSQL for
several replicas).

Records are the serialized ``RunResponse`` messages, which by construction carry no caller
credentials. This module holds the interface and what both backends share; ``open_store``
picks the backend, importing only the one configured.
"""

from __future__ import annotations

import json
import os
import re
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from agentd.config import StorageConfig
from agentd.library.example import Example
from agentd.tools.memory import Memory
from agentd.v1 import agent_pb2

_orjson: Any
try:
    import orjson as _orjson
except ImportError:
    _orjson = None


class LeaseLost(Exception):
    """Another replica holds the run now (it took over after this one's lease lapsed)."""


# What ``decide`` found: the decision is taken now, was taken before by the same request,
# was taken by another request, was taken by the expiry sweep (its request_id starts with
# "expiry-"), the run is not waiting for one, or there is no such run.
Outcome = Literal["decided", "repeat", "taken", "expired", "not_waiting", "missing"]


def replica_id() -> str:
    """This process's name in run leases: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class FeedbackLimit(Exception):
    """The run already has the most feedback entries it keeps (checked where it is written)."""


class StoreUnavailable(Exception):
    """The store cannot be reached right now (its database is down or restarting); the
    service answers UNAVAILABLE, so the caller knows nothing was acknowledged."""


class RunStore(Protocol):
    # The replica writing through this store, and how long its leases on running runs last.
    owner: str
    lease_s: float

    # ``events``: the run's events not stored yet (RunEvent messages with their sequence),
    # stored with the record in one transaction (a repeated sequence is ignored).
    async def save(
        self,
        run: agent_pb2.RunResponse,
        request: Mapping[str, Any] | None = None,
        events: Sequence[agent_pb2.RunEvent] = (),
    ) -> None: ...
    async def get(self, run_id: str) -> agent_pb2.RunResponse | None: ...
    async def get_request(self, run_id: str) -> dict[str, Any] | None: ...
    async def close(self) -> None: ...

    # Durable runs. ``save`` of a RUNNING record takes or renews this replica's lease and
    # raises LeaseLost when another replica holds it; other statuses end the lease.
    async def renew(self, run_id: str) -> bool: ...
    # Atomically takes over RUNNING runs whose lease lapsed; their ids.
    async def take_over(self, limit: int) -> list[str]: ...
    # One decision per waiting period (``key``) of a NEEDS_APPROVAL run, atomically: the
    # winner's ``record`` replaces the stored one; returns what was found and the record now.
    async def decide(
        self, run_id: str, key: str, request_id: str, record: agent_pb2.RunResponse
    ) -> tuple[Outcome, agent_pb2.RunResponse | None]: ...

    # The event journal: a run's stored events after sequence ``after``, in order; its last.
    async def events(self, run_id: str, after: int, limit: int) -> list[agent_pb2.RunEvent]: ...
    async def last_event(self, run_id: str) -> agent_pb2.RunEvent | None: ...

    # Feedback is kept beside the record and merged into RunResponse.feedback by ``get``;
    # None: no such run; FeedbackLimit: it has ``most`` entries (one write checks and adds).
    async def add_feedback(
        self, run_id: str, feedback: agent_pb2.Feedback, most: int
    ) -> agent_pb2.RunResponse | None: ...
    # Oldest first (created_at, then run_id); ``principal`` limits them to that principal's
    # runs (None: everyone's); ``after``: only the runs after that run (a page's cursor).
    async def runs_with_feedback(
        self, limit: int = 100_000, principal: str | None = None, after: str = ""
    ) -> list[agent_pb2.RunResponse]: ...
    # ``status`` is a RunStatus name, e.g. "RUN_STATUS_NEEDS_APPROVAL".
    async def runs_with_status(
        self, status: str, limit: int = 1000, principal: str | None = None, after: str = ""
    ) -> list[agent_pb2.RunResponse]: ...
    async def conversation(
        self, user_id: str, conversation_id: str, limit: int
    ) -> list[agent_pb2.RunResponse]: ...

    # The plan library (agentd/library/): worked examples. ``add_example`` keeps at most
    # ``keep`` per principal (the oldest go) and ignores a repeat of a source for a principal
    # (False); ``examples`` lists those of ``principals`` (None: everyone's), newest first.
    async def add_example(self, example: Example, keep: int) -> bool: ...
    async def examples(self, principals: Sequence[str] | None, limit: int) -> list[Example]: ...
    async def remove_example(self, example_id: str) -> bool: ...
    # What changes whenever the examples of ``principals`` change (count, newest, sum of their
    # times): a reader keeps what it read until it does.
    async def examples_stamp(self, principals: Sequence[str] | None) -> tuple[float, ...]: ...

    # Memory, always scoped by user (the memory tools' MemoryStore).
    async def remember(self, user_id: str, conversation_id: str, text: str) -> Memory: ...
    async def recall(
        self, user_id: str, conversation_id: str, query: str, limit: int
    ) -> list[Memory]: ...
    async def forget(self, user_id: str, memory_id: str) -> bool: ...


def open_store(config: StorageConfig) -> RunStore:
    """The configured store: PostgreSQL when ``url`` is set, else SQLite at ``path``."""
    if config.url:
        from agentd.store.postgres import PostgresRunStore

        return PostgresRunStore(
            config.url, max_size=config.pool_size, timeout_s=config.pool_timeout_s
        )
    from agentd.store.sqlite import SqliteRunStore

    return SqliteRunStore(config.path)


# Listings go oldest first by (created_at, run_id); a page's cursor is the last run's id.
AFTER_RUN = "(created_at, run_id) > (SELECT created_at, run_id FROM runs WHERE run_id = {0})"


def owned_by(principal: str | None, placeholder: str) -> tuple[str, tuple[str, ...]]:
    """The SQL condition (and its parameter) for one principal's runs; None: everyone's."""
    return ("", ()) if principal is None else (f" AND principal = {placeholder}", (principal,))


def keywords(query: str) -> list[str]:
    """The words of a recall query (letters and digits), lower-cased, at most 16."""
    return re.findall(r"\w+", query.lower())[:16]


def dumps(value: Any) -> str:
    """``value`` as JSON text (a stored request), with orjson when installed (agentd[fast]);
    what orjson refuses (an integer beyond 64 bits) goes through json, as before."""
    if _orjson is not None:
        try:
            return _orjson.dumps(value, default=str).decode()
        except TypeError:
            pass
    return json.dumps(value, default=str)


def example_row(example: Example) -> tuple[Any, ...]:
    """The columns of an ``examples`` row: id, principal, task, plan, tools, source, added_by,
    note, created_at (the plan as JSON text, the tools space-separated)."""
    e = example
    plan = json.dumps(e.plan, ensure_ascii=False)
    tools = " ".join(e.tools)
    return (e.id, e.principal, e.task, plan, tools, e.source, e.added_by, e.note, e.created_at)


EXAMPLE_COLUMNS = "id, principal, task, plan, source, added_by, note, created_at"
EXAMPLES_STAMP = "count(*), coalesce(max(created_at), 0), coalesce(sum(created_at), 0)"


def example_of_row(row: Sequence[Any]) -> Example:
    """An ``Example`` from the columns of ``EXAMPLE_COLUMNS``."""
    ident, principal, task, plan, source, added_by, note, created_at = row
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return Example(ident, task, plan, source, added_by, principal, note, float(created_at))


def without_feedback(run: agent_pb2.RunResponse) -> agent_pb2.RunResponse:
    """Feedback lives in its own table; a record never carries a stale copy."""
    if not run.feedback:
        return run
    copy = agent_pb2.RunResponse()
    copy.CopyFrom(run)
    del copy.feedback[:]
    return copy


def decision_outcome(status: str, seen: str | None, taken_by: str | None) -> Outcome | None:
    """``decide``'s answer from what the transaction read (None: take the decision now).

    ``seen`` is the key this request_id decided before, ``taken_by`` the request_id that
    decided ``key`` (None: undecided).
    """
    if seen is not None:
        return "repeat"
    if taken_by is not None:
        return "expired" if taken_by.startswith("expiry-") else "taken"
    if status != "RUN_STATUS_NEEDS_APPROVAL":
        return "not_waiting"
    return None


__all__ = [
    "EXAMPLES_STAMP",
    "EXAMPLE_COLUMNS",
    "Example",
    "LeaseLost",
    "Memory",
    "Outcome",
    "RunStore",
    "StoreUnavailable",
    "decision_outcome",
    "dumps",
    "example_of_row",
    "example_row",
    "keywords",
    "open_store",
    "owned_by",
    "replica_id",
    "without_feedback",
]
