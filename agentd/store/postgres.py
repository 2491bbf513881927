"""The run store on PostgreSQL, for several agentd replicas sharing runs, feedback and memory.

Same interface and semantics as ``SqliteRunStore``; needs ``psycopg`` and ``psycopg_pool``
(``pip install 'agentd[postgres]'``), imported only when ``storage.url`` is set. Keyword recall
uses PostgreSQL full-text search (``simple`` configuration: no stemming, any language).

Connections come from a pool: statements of one replica run in parallel (no lock), every
connection is checked when it is taken, so one broken by a server restart or failover is
replaced rather than reused. While the server cannot be reached, every call raises
``StoreUnavailable`` within ``timeout_s`` (the service answers UNAVAILABLE): nothing is
acknowledged that was not written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from agentd.store import (
    AFTER_RUN,
    EXAMPLE_COLUMNS,
    EXAMPLES_STAMP,
    Example,
    FeedbackLimit,
    LeaseLost,
    Memory,
    Outcome,
    StoreUnavailable,
    decision_outcome,
    example_of_row,
    example_row,
    keywords,
    owned_by,
    replica_id,
    without_feedback,
)
from agentd.v1 import agent_pb2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    conversation_id TEXT NOT NULL DEFAULT '',
    principal TEXT NOT NULL DEFAULT '',
    record BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_conversation ON runs (conversation_id, user_id, created_at);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, created_at);
ALTER TABLE runs ADD COLUMN IF NOT EXISTS owner TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN IF NOT EXISTS lease_until DOUBLE PRECISION NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS runs_principal ON runs (principal, status, created_at);
CREATE TABLE IF NOT EXISTS decisions (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, key)
);
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
CREATE TABLE IF NOT EXISTS examples (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL DEFAULT '',
    task TEXT NOT NULL,
    plan JSONB NOT NULL,
    tools TEXT NOT NULL,
    source TEXT NOT NULL,
    added_by TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (source, principal)
);
CREATE INDEX IF NOT EXISTS examples_principal ON examples (principal, created_at);
CREATE TABLE IF NOT EXISTS run_events (
    run_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    record BYTEA NOT NULL,
    PRIMARY KEY (run_id, sequence)
);
"""
_LOCK_ID = 0x61676E74  # advisory lock: replicas starting together create the schema once


class PostgresRunStore:
    """A pool of ``min_size``..``max_size`` connections per replica, opened on first use."""

    def __init__(
        self, url: str, min_size: int = 1, max_size: int = 10, timeout_s: float = 5.0
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._pool = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            check=AsyncConnectionPool.check_connection,  # a dead connection is replaced
            timeout=timeout_s,
            open=False,
        )
        self._ready = False
        self.owner = replica_id()
        self.lease_s = 30.0
        self._opening = asyncio.Lock()  # held only until the pool is open and the schema made

    async def _open(self) -> None:
        async with self._opening:
            if self._ready:
                return
            await self._pool.open(wait=False)
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
                await self._add_principal_column(conn)
                await conn.execute(_SCHEMA)
            self._ready = True

    @staticmethod
    async def _add_principal_column(conn: psycopg.AsyncConnection[Any]) -> None:
        """Runs tables from before ``principal`` get the column, filled from their records."""
        cursor = await conn.execute(
            "SELECT"
            " EXISTS (SELECT 1 FROM information_schema.tables WHERE table_name = 'runs'"
            "         AND table_schema = current_schema()),"
            " EXISTS (SELECT 1 FROM information_schema.columns WHERE table_name = 'runs'"
            "         AND table_schema = current_schema() AND column_name = 'principal')"
        )
        table, column = await cursor.fetchone() or (False, False)
        if column or not table:  # up to date, or new: the schema makes the column
            return
        await conn.execute("ALTER TABLE runs ADD COLUMN principal TEXT NOT NULL DEFAULT ''")
        cursor = await conn.execute("SELECT run_id, record FROM runs")
        rows = [
            (agent_pb2.RunResponse.FromString(record).principal, run_id)
            for run_id, record in await cursor.fetchall()
        ]
        async with conn.cursor() as update:
            await update.executemany("UPDATE runs SET principal = %s WHERE run_id = %s", rows)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A checked connection from the pool (autocommit; use ``conn.transaction()``).

        A server that cannot be reached, or dies mid-statement, is ``StoreUnavailable``.
        """
        try:
            if not self._ready:
                await self._open()
            async with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            raise StoreUnavailable(f"PostgreSQL store unavailable: {exc}") from exc

    async def _fetch(self, sql: str, params: Any = ()) -> list[Any]:
        async with self.connection() as db:
            cursor = await db.execute(sql, params)
            return list(await cursor.fetchall())

    async def save(
        self,
        run: agent_pb2.RunResponse,
        request: Mapping[str, Any] | None = None,
        events: Sequence[agent_pb2.RunEvent] = (),
    ) -> None:
        now = time.time()
        run = without_feedback(run)
        async with self.connection() as db, db.transaction():
            if request is not None:
                await db.execute(
                    "INSERT INTO requests (run_id, request) VALUES (%s, %s)"
                    " ON CONFLICT (run_id) DO UPDATE SET request = excluded.request",
                    (run.run_id, json.dumps(request, default=str)),
                )
            # Fenced: only the lease holder writes, or anyone once the lease lapsed.
            cursor = await db.execute(
                "INSERT INTO runs (run_id, created_at, updated_at, status, user_id,"
                " conversation_id, principal, record, owner, lease_until)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (run_id) DO UPDATE SET updated_at = excluded.updated_at,"
                " status = excluded.status, record = excluded.record, owner = excluded.owner,"
                " lease_until = excluded.lease_until"
                " WHERE runs.owner = excluded.owner OR runs.lease_until < %s",
                (
                    run.run_id,
                    now,
                    now,
                    agent_pb2.RunStatus.Name(run.status),
                    run.user_id,
                    run.conversation_id,
                    run.principal,
                    run.SerializeToString(),
                    self.owner,
                    now + self.lease_s if run.status == agent_pb2.RUN_STATUS_RUNNING else 0.0,
                    now,
                ),
            )
            if cursor.rowcount == 0:
                raise LeaseLost(f"run {run.run_id} is held by another replica")
            if events:  # a repeat (a retried write that had committed) changes nothing
                async with db.cursor() as insert:
                    await insert.executemany(
                        "INSERT INTO run_events (run_id, sequence, record) VALUES (%s, %s, %s)"
                        " ON CONFLICT (run_id, sequence) DO NOTHING",
                        [(run.run_id, e.sequence, e.SerializeToString()) for e in events],
                    )

    # --- leases and decisions ------------------------------------------------------------

    async def renew(self, run_id: str) -> bool:
        async with self.connection() as db:
            cursor = await db.execute(
                "UPDATE runs SET lease_until = %s WHERE run_id = %s AND owner = %s"
                " AND status = 'RUN_STATUS_RUNNING'",
                (time.time() + self.lease_s, run_id, self.owner),
            )
            return cursor.rowcount > 0

    async def take_over(self, limit: int) -> list[str]:
        now = time.time()
        # SKIP LOCKED: replicas taking over at the same moment each get different runs.
        rows = await self._fetch(
            "UPDATE runs SET owner = %s, lease_until = %s WHERE run_id IN ("
            " SELECT run_id FROM runs WHERE status = 'RUN_STATUS_RUNNING' AND lease_until < %s"
            " ORDER BY lease_until LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING run_id",
            (self.owner, now + self.lease_s, now, limit),
        )
        return [row[0] for row in rows]

    async def decide(
        self, run_id: str, key: str, request_id: str, record: agent_pb2.RunResponse
    ) -> tuple[Outcome, agent_pb2.RunResponse | None]:
        now = time.time()
        async with self.connection() as db, db.transaction():
            cursor = await db.execute(
                "SELECT status, record FROM runs WHERE run_id = %s FOR UPDATE", (run_id,)
            )
            row = await cursor.fetchone()
            if row is None:
                return "missing", None
            cursor = await db.execute(
                "SELECT key FROM decisions WHERE run_id = %s AND request_id = %s",
                (run_id, request_id),
            )
            seen = await cursor.fetchone()
            cursor = await db.execute(
                "SELECT request_id FROM decisions WHERE run_id = %s AND key = %s", (run_id, key)
            )
            taken = await cursor.fetchone()
            outcome = decision_outcome(row[0], seen and seen[0], taken and taken[0])
            if outcome is not None:
                return outcome, agent_pb2.RunResponse.FromString(row[1])
            await db.execute(
                "INSERT INTO decisions (run_id, key, request_id, created_at)"
                " VALUES (%s, %s, %s, %s)",
                (run_id, key, request_id, now),
            )
            running = record.status == agent_pb2.RUN_STATUS_RUNNING
            await db.execute(
                "UPDATE runs SET status = %s, record = %s, updated_at = %s, owner = %s,"
                " lease_until = %s WHERE run_id = %s",
                (
                    agent_pb2.RunStatus.Name(record.status),
                    without_feedback(record).SerializeToString(),
                    now,
                    self.owner,
                    now + self.lease_s if running else 0.0,
                    run_id,
                ),
            )
        return "decided", record

    # --- the event journal ---------------------------------------------------------------

    async def events(self, run_id: str, after: int, limit: int) -> list[agent_pb2.RunEvent]:
        rows = await self._fetch(
            "SELECT record FROM run_events WHERE run_id = %s AND sequence > %s"
            " ORDER BY sequence LIMIT %s",
            (run_id, after, limit),
        )
        return [agent_pb2.RunEvent.FromString(r[0]) for r in rows]

    async def last_event(self, run_id: str) -> agent_pb2.RunEvent | None:
        rows = await self._fetch(
            "SELECT record FROM run_events WHERE run_id = %s ORDER BY sequence DESC LIMIT 1",
            (run_id,),
        )
        return agent_pb2.RunEvent.FromString(rows[0][0]) if rows else None

    async def get(self, run_id: str) -> agent_pb2.RunResponse | None:
        rows = await self._fetch("SELECT record FROM runs WHERE run_id = %s", (run_id,))
        if not rows:
            return None
        return await self._with_feedback(agent_pb2.RunResponse.FromString(rows[0][0]))

    async def get_request(self, run_id: str) -> dict[str, Any] | None:
        """The stored request of a run (no credentials), as JSON data."""
        rows = await self._fetch("SELECT request FROM requests WHERE run_id = %s", (run_id,))
        return dict(rows[0][0]) if rows else None

    async def _with_feedback(self, run: agent_pb2.RunResponse) -> agent_pb2.RunResponse:
        rows = await self._fetch(
            "SELECT record FROM feedback WHERE run_id = %s ORDER BY id", (run.run_id,)
        )
        run.feedback.extend(agent_pb2.Feedback.FromString(r[0]) for r in rows)
        return run

    async def add_feedback(
        self, run_id: str, feedback: agent_pb2.Feedback, most: int
    ) -> agent_pb2.RunResponse | None:
        async with self.connection() as db, db.transaction():
            # The run's row locked: concurrent ratings of one run count one after another.
            cursor = await db.execute("SELECT 1 FROM runs WHERE run_id = %s FOR UPDATE", (run_id,))
            if await cursor.fetchone() is None:
                return None
            cursor = await db.execute("SELECT COUNT(*) FROM feedback WHERE run_id = %s", (run_id,))
            row = await cursor.fetchone()
            if row is not None and row[0] >= most:
                raise FeedbackLimit(run_id)
            await db.execute(
                "INSERT INTO feedback (run_id, record) VALUES (%s, %s)",
                (run_id, feedback.SerializeToString()),
            )
        return await self.get(run_id)

    async def runs_with_feedback(
        self, limit: int = 100_000, principal: str | None = None, after: str = ""
    ) -> list[agent_pb2.RunResponse]:
        where, params = owned_by(principal, "%s")
        return await self._runs(
            f"run_id IN (SELECT run_id FROM feedback){where}", params, limit, after
        )

    async def runs_with_status(
        self, status: str, limit: int = 1000, principal: str | None = None, after: str = ""
    ) -> list[agent_pb2.RunResponse]:
        where, params = owned_by(principal, "%s")
        return await self._runs(f"status = %s{where}", (status, *params), limit, after)

    async def _runs(
        self, where: str, params: tuple[Any, ...], limit: int, after: str
    ) -> list[agent_pb2.RunResponse]:
        if after:  # a page's cursor: the runs after that one (none if it is unknown)
            where += f" AND {AFTER_RUN.format('%s')}"
            params = (*params, after)
        rows = await self._fetch(
            f"SELECT record FROM runs WHERE {where} ORDER BY created_at, run_id LIMIT %s",
            (*params, limit),
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

    async def add_example(self, example: Example, keep: int) -> bool:
        async with self.connection() as db, db.transaction():
            cursor = await db.execute(
                "INSERT INTO examples (id, principal, task, plan, tools, source, added_by, note,"
                " created_at) VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                example_row(example),
            )
            await db.execute(
                "DELETE FROM examples WHERE principal = %s AND id NOT IN (SELECT id FROM"
                " examples WHERE principal = %s ORDER BY created_at DESC, id LIMIT %s)",
                (example.principal, example.principal, keep),
            )
            return cursor.rowcount > 0

    async def examples(self, principals: Sequence[str] | None, limit: int) -> list[Example]:
        where, params = "", tuple[Any, ...]()
        if principals is not None:
            where, params = " WHERE principal = ANY(%s)", (list(principals),)
        rows = await self._fetch(
            f"SELECT {EXAMPLE_COLUMNS} FROM examples{where} ORDER BY created_at DESC, id LIMIT %s",
            (*params, limit),
        )
        return [example_of_row(row) for row in rows]

    async def examples_stamp(self, principals: Sequence[str] | None) -> tuple[float, ...]:
        where, params = "", tuple[Any, ...]()
        if principals is not None:
            where, params = " WHERE principal = ANY(%s)", (list(principals),)
        rows = await self._fetch(f"SELECT {EXAMPLES_STAMP} FROM examples{where}", params)
        return tuple(float(v) for v in rows[0])

    async def remove_example(self, example_id: str) -> bool:
        rows = await self._fetch("DELETE FROM examples WHERE id = %s RETURNING id", (example_id,))
        return bool(rows)

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
        await self._pool.close()
        self._ready = False


__all__ = ["PostgresRunStore"]
