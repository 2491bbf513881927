"""The run store: every run record, persisted (SQLite in WAL mode by default).

Records are the serialized ``RunResponse`` messages, which by construction carry
no caller credentials. The interface is two methods so another backend (e.g.
PostgreSQL for several replicas) can stand in.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

from agentd.v1 import agent_pb2


class RunStore(Protocol):
    async def save(self, run: agent_pb2.RunResponse) -> None: ...
    async def get(self, run_id: str) -> agent_pb2.RunResponse | None: ...
    async def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    status TEXT NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    conversation_id TEXT NOT NULL DEFAULT '',
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_conversation ON runs (conversation_id, created_at);
"""


class SqliteRunStore:
    """One connection guarded by a lock, used from worker threads.

    WAL mode with ``synchronous=FULL``: a record is on disk when ``save`` returns,
    and a ``kill -9`` mid-write leaves the previous state intact.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    async def save(self, run: agent_pb2.RunResponse) -> None:
        await asyncio.to_thread(self._save, run)

    def _save(self, run: agent_pb2.RunResponse) -> None:
        now = time.time()
        status = agent_pb2.RunStatus.Name(run.status)
        with self._lock:
            self._db.execute(
                "INSERT INTO runs (run_id, created_at, updated_at, status, user_id,"
                " conversation_id, record) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(run_id) DO UPDATE SET updated_at=excluded.updated_at,"
                " status=excluded.status, record=excluded.record",
                (
                    run.run_id,
                    now,
                    now,
                    status,
                    run.user_id,
                    run.conversation_id,
                    run.SerializeToString(),
                ),
            )

    async def get(self, run_id: str) -> agent_pb2.RunResponse | None:
        return await asyncio.to_thread(self._get, run_id)

    def _get(self, run_id: str) -> agent_pb2.RunResponse | None:
        with self._lock:
            row = self._db.execute("SELECT record FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        return agent_pb2.RunResponse.FromString(row[0])

    async def close(self) -> None:
        with self._lock:
            self._db.close()
