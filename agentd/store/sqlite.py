"""The run store on SQLite (WAL mode): one file, one process's runs, feedback and memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentd.store import (
    AFTER_RUN,
    EXAMPLE_COLUMNS,
    EXAMPLES_STAMP,
    Example,
    FeedbackLimit,
    LeaseLost,
    Memory,
    Outcome,
    decision_outcome,
    dumps,
    example_of_row,
    example_row,
    keywords,
    owned_by,
    replica_id,
    without_feedback,
)
from agentd.store.group_commit import GroupCommit
from agentd.store.sqlite_schema import add_fts, create_tables, upgrade
from agentd.v1 import agent_pb2

# One group commit holds at most this many saves.
_MAX_BATCH = 256


@dataclass
class _Save:
    """One ``save``, as the group commit hands it to ``_commit``."""

    run: agent_pb2.RunResponse
    request: Mapping[str, Any] | None
    events: Sequence[agent_pb2.RunEvent]


class StoreOpenError(RuntimeError):
    """The SQLite file cannot be opened or created; the message names storage.path and the fix
    (`agentd serve` prints it as its one-line error)."""


class SqliteRunStore:
    """One connection guarded by a lock, used from worker threads.

    WAL mode with ``synchronous=FULL``: a record is on disk when ``save`` returns,
    and a ``kill -9`` mid-write leaves the previous state intact.

    Saves are group-committed: one writer thread takes every save waiting when it is free
    and writes them in one transaction, so concurrent runs share a commit (and its fsync)
    instead of paying one each. Each ``save`` still returns only once the commit holding
    it is on disk, and each keeps its own outcome (a run whose lease another replica holds
    gets LeaseLost; the others in its commit are written).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:  # the first writes: a location that is not writable fails here
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            create_tables(self._db)
        except (OSError, sqlite3.Error) as exc:
            raise StoreOpenError(
                f"storage.path: cannot open the SQLite store at {Path(self.path).absolute()} "
                f"({exc}); give storage.path (AGENTD_STORAGE_PATH) a writable location (in a "
                "container with a read-only root: a volume, the image declares /var/lib/agentd), "
                "or use PostgreSQL (storage.url)"
            ) from exc
        self.fts = add_fts(self._db)  # False: recall uses LIKE
        upgrade(self._db)
        self._lock = threading.Lock()
        self.owner = replica_id()
        self.lease_s = 30.0
        self._saves = GroupCommit(
            self._commit, thread_name="agentd-store-writer", max_batch=_MAX_BATCH
        )
        self._closed = False

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """An explicit transaction (the connection is in autocommit mode); caller holds the lock."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    async def save(
        self,
        run: agent_pb2.RunResponse,
        request: Mapping[str, Any] | None = None,
        events: Sequence[agent_pb2.RunEvent] = (),
    ) -> None:
        if self._closed:
            raise sqlite3.ProgrammingError("the run store is closed")
        await self._saves.write(_Save(without_feedback(run), request, events))

    def _commit(self, batch: list[_Save]) -> list[BaseException | None]:
        """Write ``batch`` in one transaction; each save's error, or None."""
        try:
            with self._lock, self._transaction():
                return [self._save_one(item.run, item.request, item.events) for item in batch]
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
        # Something failed the whole commit: each on its own, so one bad save fails alone.
        outcomes: list[BaseException | None] = []
        for item in batch:
            try:
                with self._lock, self._transaction():
                    outcomes.append(self._save_one(item.run, item.request, item.events))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _save_one(
        self,
        run: agent_pb2.RunResponse,
        request: Mapping[str, Any] | None,
        events: Sequence[agent_pb2.RunEvent] = (),
    ) -> LeaseLost | None:
        """The record, its request and its new events in the open transaction; LeaseLost (not
        raised) when another replica holds the run, with this save's writes undone and the
        others kept."""
        now = time.time()
        status = agent_pb2.RunStatus.Name(run.status)
        lease = now + self.lease_s if run.status == agent_pb2.RUN_STATUS_RUNNING else 0.0
        # A savepoint per save: the record and its request are stored together or not at all.
        self._db.execute("SAVEPOINT save")
        if request is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO requests (run_id, request) VALUES (?, ?)",
                (run.run_id, dumps(request)),
            )
        # Fenced: only the lease holder writes, or anyone once the lease lapsed.
        cursor = self._db.execute(
            "INSERT INTO runs (run_id, created_at, updated_at, status, user_id,"
            " conversation_id, principal, record, owner, lease_until)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(run_id) DO UPDATE SET updated_at=excluded.updated_at,"
            " status=excluded.status, record=excluded.record, owner=excluded.owner,"
            " lease_until=excluded.lease_until"
            " WHERE runs.owner = excluded.owner OR runs.lease_until < ?",
            (
                run.run_id,
                now,
                now,
                status,
                run.user_id,
                run.conversation_id,
                run.principal,
                run.SerializeToString(),
                self.owner,
                lease,
                now,
            ),
        )
        if cursor.rowcount == 0:
            self._db.execute("ROLLBACK TO save")
            self._db.execute("RELEASE save")
            return LeaseLost(f"run {run.run_id} is held by another replica")
        # A repeat (a write retried after an error that had committed) changes nothing.
        self._db.executemany(
            "INSERT OR IGNORE INTO run_events (run_id, sequence, record) VALUES (?, ?, ?)",
            [(run.run_id, e.sequence, e.SerializeToString()) for e in events],
        )
        self._db.execute("RELEASE save")
        return None

    # --- leases and decisions ------------------------------------------------------------

    async def renew(self, run_id: str) -> bool:
        def write() -> bool:
            with self._lock:
                cursor = self._db.execute(
                    "UPDATE runs SET lease_until = ? WHERE run_id = ? AND owner = ?"
                    " AND status = 'RUN_STATUS_RUNNING'",
                    (time.time() + self.lease_s, run_id, self.owner),
                )
            return cursor.rowcount > 0

        return await asyncio.to_thread(write)

    async def take_over(self, limit: int) -> list[str]:
        def write() -> list[str]:
            now = time.time()
            with self._lock, self._transaction():  # BEGIN IMMEDIATE: one taker at a time
                ids = [
                    row[0]
                    for row in self._db.execute(
                        "SELECT run_id FROM runs WHERE status = 'RUN_STATUS_RUNNING'"
                        " AND lease_until < ? ORDER BY lease_until LIMIT ?",
                        (now, limit),
                    )
                ]
                self._db.executemany(
                    "UPDATE runs SET owner = ?, lease_until = ? WHERE run_id = ?",
                    [(self.owner, now + self.lease_s, run_id) for run_id in ids],
                )
            return ids

        return await asyncio.to_thread(write)

    async def decide(
        self, run_id: str, key: str, request_id: str, record: agent_pb2.RunResponse
    ) -> tuple[Outcome, agent_pb2.RunResponse | None]:
        def write() -> tuple[Outcome, agent_pb2.RunResponse | None]:
            now = time.time()
            with self._lock, self._transaction():
                row = self._db.execute(
                    "SELECT status, record FROM runs WHERE run_id = ?", (run_id,)
                ).fetchone()
                if row is None:
                    return "missing", None
                seen = self._db.execute(
                    "SELECT key FROM decisions WHERE run_id = ? AND request_id = ?",
                    (run_id, request_id),
                ).fetchone()
                taken = self._db.execute(
                    "SELECT request_id FROM decisions WHERE run_id = ? AND key = ?", (run_id, key)
                ).fetchone()
                outcome = decision_outcome(row[0], seen and seen[0], taken and taken[0])
                if outcome is not None:
                    return outcome, agent_pb2.RunResponse.FromString(row[1])
                self._db.execute(
                    "INSERT INTO decisions (run_id, key, request_id, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (run_id, key, request_id, now),
                )
                running = record.status == agent_pb2.RUN_STATUS_RUNNING
                self._db.execute(
                    "UPDATE runs SET status = ?, record = ?, updated_at = ?, owner = ?,"
                    " lease_until = ? WHERE run_id = ?",
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

        return await asyncio.to_thread(write)

    async def get(self, run_id: str) -> agent_pb2.RunResponse | None:
        return await asyncio.to_thread(self._get, run_id)

    def _get(self, run_id: str) -> agent_pb2.RunResponse | None:
        with self._lock:
            row = self._db.execute("SELECT record FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            return self._with_feedback(agent_pb2.RunResponse.FromString(row[0]))

    def _with_feedback(self, run: agent_pb2.RunResponse) -> agent_pb2.RunResponse:
        rows = self._db.execute(
            "SELECT record FROM feedback WHERE run_id = ? ORDER BY id", (run.run_id,)
        ).fetchall()
        run.feedback.extend(agent_pb2.Feedback.FromString(r[0]) for r in rows)
        return run

    async def get_request(self, run_id: str) -> dict[str, Any] | None:
        """The stored request of a run (no credentials), as JSON data."""

        def read() -> dict[str, Any] | None:
            with self._lock:
                row = self._db.execute(
                    "SELECT request FROM requests WHERE run_id = ?", (run_id,)
                ).fetchone()
            return json.loads(row[0]) if row else None

        return await asyncio.to_thread(read)

    # --- the event journal ------------------------------------------------------------------

    async def events(self, run_id: str, after: int, limit: int) -> list[agent_pb2.RunEvent]:
        def read() -> list[agent_pb2.RunEvent]:
            with self._lock:
                rows = self._db.execute(
                    "SELECT record FROM run_events WHERE run_id = ? AND sequence > ?"
                    " ORDER BY sequence LIMIT ?",
                    (run_id, after, limit),
                ).fetchall()
            return [agent_pb2.RunEvent.FromString(r[0]) for r in rows]

        return await asyncio.to_thread(read)

    async def last_event(self, run_id: str) -> agent_pb2.RunEvent | None:
        def read() -> agent_pb2.RunEvent | None:
            with self._lock:
                row = self._db.execute(
                    "SELECT record FROM run_events WHERE run_id = ? ORDER BY sequence DESC LIMIT 1",
                    (run_id,),
                ).fetchone()
            return agent_pb2.RunEvent.FromString(row[0]) if row else None

        return await asyncio.to_thread(read)

    # --- feedback -------------------------------------------------------------------------

    async def add_feedback(
        self, run_id: str, feedback: agent_pb2.Feedback, most: int
    ) -> agent_pb2.RunResponse | None:
        return await asyncio.to_thread(self._add_feedback, run_id, feedback, most)

    def _add_feedback(
        self, run_id: str, feedback: agent_pb2.Feedback, most: int
    ) -> agent_pb2.RunResponse | None:
        with self._lock, self._transaction():
            row = self._db.execute("SELECT record FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM feedback WHERE run_id = ?", (run_id,)
            ).fetchone()
            if count >= most:
                raise FeedbackLimit(run_id)
            self._db.execute(
                "INSERT INTO feedback (run_id, record) VALUES (?, ?)",
                (run_id, feedback.SerializeToString()),
            )
            return self._with_feedback(agent_pb2.RunResponse.FromString(row[0]))

    async def runs_with_feedback(
        self, limit: int = 100_000, principal: str | None = None, after: str = ""
    ) -> list[agent_pb2.RunResponse]:
        where, params = owned_by(principal, "?")
        return await self._runs(
            f"run_id IN (SELECT run_id FROM feedback){where}", params, limit, after
        )

    async def runs_with_status(
        self, status: str, limit: int = 1000, principal: str | None = None, after: str = ""
    ) -> list[agent_pb2.RunResponse]:
        where, params = owned_by(principal, "?")
        return await self._runs(f"status = ?{where}", (status, *params), limit, after)

    async def _runs(
        self, where: str, params: tuple[Any, ...], limit: int, after: str
    ) -> list[agent_pb2.RunResponse]:
        if after:  # a page's cursor: the runs after that one (none if it is unknown)
            where += f" AND {AFTER_RUN.format('?')}"
            params = (*params, after)

        def read() -> list[agent_pb2.RunResponse]:
            with self._lock:
                rows = self._db.execute(
                    f"SELECT record FROM runs WHERE {where} ORDER BY created_at, run_id LIMIT ?",
                    (*params, limit),
                ).fetchall()
                return [self._with_feedback(agent_pb2.RunResponse.FromString(r[0])) for r in rows]

        return await asyncio.to_thread(read)

    async def conversation(
        self, user_id: str, conversation_id: str, limit: int
    ) -> list[agent_pb2.RunResponse]:
        """The latest runs of one user's conversation, most recent first."""

        def read() -> list[agent_pb2.RunResponse]:
            with self._lock:
                rows = self._db.execute(
                    "SELECT record FROM runs WHERE conversation_id = ? AND user_id = ?"
                    " ORDER BY created_at DESC LIMIT ?",
                    (conversation_id, user_id, limit),
                ).fetchall()
            return [agent_pb2.RunResponse.FromString(r[0]) for r in rows]

        if not conversation_id:
            return []
        return await asyncio.to_thread(read)

    # --- the plan library -------------------------------------------------------------------

    async def add_example(self, example: Example, keep: int) -> bool:
        def write() -> bool:
            with self._lock, self._transaction():
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO examples (id, principal, task, plan, tools, source,"
                    " added_by, note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    example_row(example),
                )
                self._db.execute(
                    "DELETE FROM examples WHERE principal = ? AND id NOT IN (SELECT id FROM"
                    " examples WHERE principal = ? ORDER BY created_at DESC, id LIMIT ?)",
                    (example.principal, example.principal, keep),
                )
            return cursor.rowcount > 0

        return await asyncio.to_thread(write)

    async def examples(self, principals: Sequence[str] | None, limit: int) -> list[Example]:
        where, params = "", list(principals or ())
        if principals is not None:
            where = f" WHERE principal IN ({', '.join('?' for _ in params)})"

        def read() -> list[Example]:
            with self._lock:
                rows = self._db.execute(
                    f"SELECT {EXAMPLE_COLUMNS} FROM examples{where}"
                    " ORDER BY created_at DESC, id LIMIT ?",
                    (*params, limit),
                ).fetchall()
            return [example_of_row(row) for row in rows]

        return await asyncio.to_thread(read)

    async def examples_stamp(self, principals: Sequence[str] | None) -> tuple[float, ...]:
        where, params = "", list(principals or ())
        if principals is not None:
            where = f" WHERE principal IN ({', '.join('?' for _ in params)})"

        def read() -> tuple[float, ...]:
            with self._lock:
                row = self._db.execute(
                    f"SELECT {EXAMPLES_STAMP} FROM examples{where}", params
                ).fetchone()
            return tuple(float(v) for v in row)

        return await asyncio.to_thread(read)

    async def remove_example(self, example_id: str) -> bool:
        def write() -> bool:
            with self._lock, self._transaction():
                cursor = self._db.execute("DELETE FROM examples WHERE id = ?", (example_id,))
            return cursor.rowcount > 0

        return await asyncio.to_thread(write)

    # --- memory ---------------------------------------------------------------------------

    async def remember(self, user_id: str, conversation_id: str, text: str) -> Memory:
        memory = Memory(uuid.uuid4().hex[:16], text, conversation_id, time.time())

        def write() -> None:
            with self._lock, self._transaction():
                self._db.execute(
                    "INSERT INTO memories (id, user_id, conversation_id, text, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (memory.id, user_id, conversation_id, text, memory.created_at),
                )

        await asyncio.to_thread(write)
        return memory

    async def recall(
        self, user_id: str, conversation_id: str, query: str, limit: int
    ) -> list[Memory]:
        """Memories of ``user_id`` (user-wide, or of this conversation) matching any keyword,
        best match then most recent first; the most recent ones for an empty query."""
        words = keywords(query)
        scope = "m.user_id = ? AND (m.conversation_id = '' OR m.conversation_id = ?)"
        columns = "m.id, m.text, m.conversation_id, m.created_at"
        if not words:
            sql = f"SELECT {columns} FROM memories m WHERE {scope} ORDER BY m.created_at DESC"
            params: list[Any] = [user_id, conversation_id]
        elif self.fts:
            match = " OR ".join(f'"{w}"' for w in words)
            sql = (
                f"SELECT {columns} FROM memories_fts f JOIN memories m ON m.rowid = f.rowid"
                f" WHERE memories_fts MATCH ? AND {scope} ORDER BY f.rank, m.created_at DESC"
            )
            params = [match, user_id, conversation_id]
        else:
            like = " OR ".join("lower(m.text) LIKE ?" for _ in words)
            sql = f"SELECT {columns} FROM memories m WHERE ({like}) AND {scope}"
            sql += " ORDER BY m.created_at DESC"
            params = [f"%{w}%" for w in words] + [user_id, conversation_id]

        def read() -> list[Memory]:
            with self._lock:
                rows = self._db.execute(sql + " LIMIT ?", [*params, limit]).fetchall()
            return [Memory(*row) for row in rows]

        return await asyncio.to_thread(read)

    async def forget(self, user_id: str, memory_id: str) -> bool:
        def write() -> bool:
            with self._lock, self._transaction():
                cursor = self._db.execute(
                    "DELETE FROM memories WHERE id = ? AND user_id = ?", (memory_id, user_id)
                )
            return cursor.rowcount > 0

        return await asyncio.to_thread(write)

    async def close(self) -> None:
        self._closed = True
        await self._saves.close()  # after every save already queued
        with self._lock:
            self._db.close()
