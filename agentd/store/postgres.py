"""The run store on PostgreSQL, for several agentd replicas sharing runs, feedback and memory.

Same interface and semantics as ``SqliteRunStore``; needs ``psycopg`` (``pip install
'psycopg[binary]'``), imported only when ``storage.url`` is set. Keyword recall uses
PostgreSQL full-text search (``simple`` configuration: no stemming, any language).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from agentd.store import Memory, keywords, without_feedback
from agentd.v1 import agent_pb2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    conversation_id TEXT NOT NULL DEFAULT '',
    record BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_conversation ON runs (conversation_id, user_id, created_at);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, created_at);
CREATE TABLE IF NOT EXISTS requests (run_id TEXT PRIMARY KEY, request JSONB NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (
    id BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    record BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_run ON feedback (run_id);
CREATE TABLE IF NOT EXISTS memories (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED
);
CREATE INDEX IF NOT EXISTS memories_user ON memories (user_id, created_at);
CREATE INDEX IF NOT EXISTS memories_tsv ON memories USING GIN (tsv);
"""
_LOCK_ID = 0x61676E74  # advisory lock: replicas starting together create the schema once


class PostgresRunStore:
    """One connection per replica, opened on first use; statements serialised per replica."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._lock = asyncio.Lock()

    async def _db(self) -> Any:
        if self._conn is None:
            import psycopg

            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
                await conn.execute(_SCHEMA)
            self._conn = conn
        return self._conn

    async def _fetch(self, sql: str, params: Any = ()) -> list[Any]:
        async with self._lock:
            db = await self._db()
            cursor = await db.execute(sql, params)
            return list(await cursor.fetchall())

    async def save(
        self, run: agent_pb2.RunResponse, request: Mapping[str, Any] | None = None
    ) -> None:
        now = time.time()
        run = without_feedback(run)
        async with self._lock:
            db = await self._db()
            async with db.transaction():
                if request is not None:
                    await db.execute(
                        "INSERT INTO requests (run_id, request) VALUES (%s, %s)"
                        " ON CONFLICT (run_id) DO UPDATE SET request = excluded.request",
                        (run.run_id, json.dumps(request, default=str)),
                    )
                await db.execute(
                    "INSERT INTO runs (run_id, created_at, updated_at, status, user_id,"
                    " conversation_id, record) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (run_id) DO UPDATE SET updated_at = excluded.updated_at,"
                    " status = excluded.status, record = excluded.record",
                    (
                        run.run_id,
                        now,
                        now,
                        agent_pb2.RunStatus.Name(run.status),
                        run.user_id,
                        run.conversation_id,
                        run.SerializeToString(),
                    ),
                )

    async def get(self, run_id: str) -> agent_pb2.RunResponse | None:
        rows = await self._fetch("SELECT record FROM runs WHERE run_id = %s", (run_id,))
        if not rows:
            return None
        return await self._with_feedback(agent_pb2.RunResponse.FromString(rows[0][0]))

    async def _with_feedback(self, run: agent_pb2.RunResponse) -> agent_pb2.RunResponse:
        rows = await self._fetch(
            "SELECT record FROM feedback WHERE run_id = %s ORDER BY id", (run.run_id,)
        )
        run.feedback.extend(agent_pb2.Feedback.FromString(r[0]) for r in rows)
        return run

    async def add_feedback(
        self, run_id: str, feedback: agent_pb2.Feedback
    ) -> agent_pb2.RunResponse | None:
        if await self.get(run_id) is None:
            return None
        await self._fetch(
            "INSERT INTO feedback (run_id, record) VALUES (%s, %s) RETURNING id",
            (run_id, feedback.SerializeToString()),
        )
        return await self.get(run_id)

    async def runs_with_feedback(self, limit: int = 100_000) -> list[agent_pb2.RunResponse]:
        rows = await self._fetch(
            "SELECT record FROM runs WHERE run_id IN (SELECT run_id FROM feedback)"
            " ORDER BY created_at LIMIT %s",
            (limit,),
        )
        return [await self._with_feedback(agent_pb2.RunResponse.FromString(r[0])) for r in rows]

    async def runs_with_status(self, status: str, limit: int = 1000) -> list[agent_pb2.RunResponse]:
        rows = await self._fetch(
            "SELECT record FROM runs WHERE status = %s ORDER BY created_at LIMIT %s",
            (status, limit),
        )
        return [await self._with_feedback(agent_pb2.RunResponse.FromString(r[0])) for r in rows]

    async def conversation(
        self, user_id: str, conversation_id: str, limit: int
    ) -> list[agent_pb2.RunResponse]:
        if not conversation_id:
            return []
        rows = await self._fetch(
            "SELECT record FROM runs WHERE conversation_id = %s AND user_id = %s"
            " ORDER BY created_at DESC LIMIT %s",
            (conversation_id, user_id, limit),
        )
        return [agent_pb2.RunResponse.FromString(r[0]) for r in rows]

    async def remember(self, user_id: str, conversation_id: str, text: str) -> Memory:
        memory = Memory(uuid.uuid4().hex[:16], text, conversation_id, time.time())
        await self._fetch(
            "INSERT INTO memories (id, user_id, conversation_id, text, created_at)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (memory.id, user_id, conversation_id, text, memory.created_at),
        )
        return memory

    async def recall(
        self, user_id: str, conversation_id: str, query: str, limit: int
    ) -> list[Memory]:
        words = keywords(query)
        scope = "user_id = %s AND (conversation_id = '' OR conversation_id = %s)"
        columns = "id, text, conversation_id, created_at"
        if words:
            match = "to_tsquery('simple', %s)"
            sql = (
                f"SELECT {columns} FROM memories WHERE tsv @@ {match} AND {scope}"
                f" ORDER BY ts_rank(tsv, {match}) DESC, created_at DESC LIMIT %s"
            )
            terms = " | ".join(words)
            params: tuple[Any, ...] = (terms, user_id, conversation_id, terms, limit)
        else:
            sql = f"SELECT {columns} FROM memories WHERE {scope} ORDER BY created_at DESC LIMIT %s"
            params = (user_id, conversation_id, limit)
        return [Memory(*row) for row in await self._fetch(sql, params)]

    async def forget(self, user_id: str, memory_id: str) -> bool:
        rows = await self._fetch(
            "DELETE FROM memories WHERE id = %s AND user_id = %s RETURNING id",
            (memory_id, user_id),
        )
        return bool(rows)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


__all__ = ["PostgresRunStore"]
