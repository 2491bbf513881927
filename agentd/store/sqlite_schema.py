"""The SQLite store's tables, its full-text index, and the upgrade of files written by
earlier versions.

Split from ``agentd.store.sqlite`` so that module reads as the store's queries: what a file
holds and how an old one is brought up to date is decided once, when the store opens it.
"""

from __future__ import annotations

import sqlite3

from agentd.v1 import agent_pb2

__all__ = ["add_fts", "create_tables", "upgrade"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    status TEXT NOT NULL,
    user_id TEXT NOT NULL DEFAULT '',
    conversation_id TEXT NOT NULL DEFAULT '',
    principal TEXT NOT NULL DEFAULT '',
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_conversation ON runs (conversation_id, created_at);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, created_at);
CREATE TABLE IF NOT EXISTS decisions (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    request_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS requests (
    run_id TEXT PRIMARY KEY,
    request TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_run ON feedback (run_id);
CREATE TABLE IF NOT EXISTS memories (
    rowid INTEGER PRIMARY KEY,
    id TEXT UNIQUE NOT NULL,
    user_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS memories_user ON memories (user_id, created_at);
CREATE TABLE IF NOT EXISTS examples (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL DEFAULT '',
    task TEXT NOT NULL,
    plan TEXT NOT NULL,
    tools TEXT NOT NULL,
    source TEXT NOT NULL,
    added_by TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    UNIQUE (source, principal)
);
CREATE INDEX IF NOT EXISTS examples_principal ON examples (principal, created_at);
CREATE TABLE IF NOT EXISTS run_events (
    run_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (run_id, sequence)
);
"""

# External-content FTS5 index over memories.text, kept in step by triggers.
_FTS = """
CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5(
    text, content='memories', content_rowid='rowid'
);
CREATE TRIGGER IF NOT EXISTS memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER IF NOT EXISTS memories_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
"""


def create_tables(db: sqlite3.Connection) -> None:
    """The tables and their indexes, where missing (the store's first writes)."""
    db.executescript(_SCHEMA)


def add_fts(db: sqlite3.Connection) -> bool:
    """The FTS5 index over memories; False on an SQLite built without FTS5."""
    try:
        db.executescript(_FTS)
    except sqlite3.OperationalError:
        return False
    return True


def upgrade(db: sqlite3.Connection) -> None:
    """Bring a file from an earlier version up to date: the columns it lacks, filled in."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    if "owner" not in columns:  # a file from before leases: add their columns
        db.execute("ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
        db.execute("ALTER TABLE runs ADD COLUMN lease_until REAL NOT NULL DEFAULT 0")
    if "principal" not in columns:  # a file from before the column: fill it from records
        db.execute("ALTER TABLE runs ADD COLUMN principal TEXT NOT NULL DEFAULT ''")
        db.executemany(
            "UPDATE runs SET principal = ? WHERE run_id = ?",
            [
                (agent_pb2.RunResponse.FromString(record).principal, run_id)
                for run_id, record in db.execute("SELECT run_id, record FROM runs")
            ],
        )
    db.execute("CREATE INDEX IF NOT EXISTS runs_principal ON runs (principal, status, created_at)")
