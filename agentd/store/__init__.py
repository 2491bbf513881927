"""The run store: every run record, persisted (SQLite in WAL mode by default, PostgreSQL for
several replicas).

Records are the serialized ``RunResponse`` messages, which by construction carry no caller
credentials. This module holds the interface and what both backends share; ``open_store``
picks the backend, importing only the one configured.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from agentd.tools.memory import Memory
from agentd.v1 import agent_pb2


class StoreUnavailable(Exception):
    """The store cannot be reached right now (its database is down or restarting); the
    service answers UNAVAILABLE, so the caller knows nothing was acknowledged."""


class RunStore(Protocol):
    async def save(
        self, run: agent_pb2.RunResponse, request: Mapping[str, Any] | None = None
    ) -> None: ...
    async def get(self, run_id: str) -> agent_pb2.RunResponse | None: ...
    async def close(self) -> None: ...

    # Feedback is kept beside the record and merged into RunResponse.feedback by ``get``.
    async def add_feedback(
        self, run_id: str, feedback: agent_pb2.Feedback
    ) -> agent_pb2.RunResponse | None: ...
    async def runs_with_feedback(self, limit: int = 100_000) -> list[agent_pb2.RunResponse]: ...
    # ``status`` is a RunStatus name, e.g. "RUN_STATUS_NEEDS_APPROVAL"; oldest first.
    async def runs_with_status(
        self, status: str, limit: int = 1000
    ) -> list[agent_pb2.RunResponse]: ...
    async def conversation(
        self, user_id: str, conversation_id: str, limit: int
    ) -> list[agent_pb2.RunResponse]: ...

    # Memory, always scoped by user (the memory tools' MemoryStore).
    async def remember(self, user_id: str, conversation_id: str, text: str) -> Memory: ...
    async def recall(
        self, user_id: str, conversation_id: str, query: str, limit: int
    ) -> list[Memory]: ...
    async def forget(self, user_id: str, memory_id: str) -> bool: ...


def open_store(path: str, url: str = "") -> RunStore:
    """The configured store: PostgreSQL when ``url`` is set, else SQLite at ``path``."""
    if url:
        from agentd.store.postgres import PostgresRunStore

        return PostgresRunStore(url)
    from agentd.store.sqlite import SqliteRunStore

    return SqliteRunStore(path)


def keywords(query: str) -> list[str]:
    """The words of a recall query (letters and digits), lower-cased, at most 16."""
    return re.findall(r"\w+", query.lower())[:16]


def without_feedback(run: agent_pb2.RunResponse) -> agent_pb2.RunResponse:
    """Feedback lives in its own table; a record never carries a stale copy."""
    if not run.feedback:
        return run
    copy = agent_pb2.RunResponse()
    copy.CopyFrom(run)
    del copy.feedback[:]
    return copy


__all__ = ["Memory", "RunStore", "StoreUnavailable", "keywords", "open_store", "without_feedback"]
