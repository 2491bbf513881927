"""The run store: records survive a restart and a kill -9 mid-write; the PostgreSQL store
passes the same checks where a PostgreSQL server can be started."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentd.store import FeedbackLimit, LeaseLost, RunStore
from agentd.store.sqlite import SqliteRunStore
from agentd.v1 import agent_pb2
from tests.support.postgres import Postgres, throwaway_postgres

WRITER = """
import asyncio, sys
from agentd.store.sqlite import SqliteRunStore
from agentd.v1 import agent_pb2

async def main():
    store = SqliteRunStore(sys.argv[1])
    i = 0
    while True:
        run = agent_pb2.RunResponse(run_id=f"{sys.argv[2]}-{i}", task="t" * 2000, output="o")
        run.steps.add(id="s1", tool="x", error=agent_pb2.StepError(message="e" * 4000))
        await store.save(run, {"task": run.task})
        await store.add_feedback(run.run_id, agent_pb2.Feedback(rating=1), 20)
        await store.remember("u", "", f"memory {i}")
        print(run.run_id, flush=True)  # acknowledged: every write above has returned
        i += 1

asyncio.run(main())
"""


def test_kill_9_during_writes_loses_no_acknowledged_record(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    acknowledged: list[str] = []
    for round_ in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"round{round_}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        for _ in range(100):  # wait for acknowledgements, then kill in the middle of writes
            line = writer.stdout.readline()
            assert line, "the writer died"
            acknowledged.append(line.strip())
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        writer.stdout.close()

    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = SqliteRunStore(path)

    async def check() -> None:
        for run_id in acknowledged:
            run = await store.get(run_id)
            assert run is not None, run_id
            assert run.feedback[0].rating == 1 and len(run.steps[0].error.message) == 4000
        assert len(await store.recall("u", "", "memory", 1000)) >= len(acknowledged)
        await store.close()

    asyncio.run(check())


async def test_records_survive_a_reopen(tmp_path: Path) -> None:
    store = SqliteRunStore(tmp_path / "runs.db")
    await exercise(store)
    await store.close()
    reopened = SqliteRunStore(tmp_path / "runs.db")
    run = await reopened.get("r1")
    assert run is not None and [f.rating for f in run.feedback] == [-1, 4]
    assert await reopened.get_request("r1") == {"task": "first", "context": {}}
    await reopened.close()


async def test_concurrent_saves_share_commits_and_keep_their_own_outcome(tmp_path: Path) -> None:
    """Saves waiting together are group-committed; the one whose run another replica leases
    gets LeaseLost (its record and request untouched), the others in its commit are written."""

    batches: list[int] = []

    class Counting(SqliteRunStore):
        def _commit(self, batch: list[Any]) -> list[BaseException | None]:
            batches.append(len(batch))
            return super()._commit(batch)

    a = SqliteRunStore(tmp_path / "runs.db")
    b = Counting(tmp_path / "runs.db")  # a second replica on the same file
    held = agent_pb2.RunResponse(run_id="held", task="a's", status=agent_pb2.RUN_STATUS_RUNNING)
    await a.save(held, {"task": "a's"})
    stolen = agent_pb2.RunResponse(run_id="held", task="b's", status=agent_pb2.RUN_STATUS_RUNNING)
    runs = [agent_pb2.RunResponse(run_id=f"r{i}", task=f"t{i}") for i in range(300)]
    outcomes = await asyncio.gather(
        *(b.save(run, {"task": run.task}) for run in runs[:150]),
        b.save(stolen, {"task": "b's"}),
        *(b.save(run, {"task": run.task}) for run in runs[150:]),
        return_exceptions=True,
    )
    assert isinstance(outcomes.pop(150), LeaseLost)
    assert outcomes == [None] * len(runs)
    assert sum(batches) == len(runs) + 1 and max(batches) > 1  # commits were shared
    kept = await a.get("held")
    assert kept is not None and kept.task == "a's"
    assert await a.get_request("held") == {"task": "a's"}
    reopened = SqliteRunStore(tmp_path / "runs.db")
    for run in runs:
        stored = await reopened.get(run.run_id)
        assert stored is not None and stored.task == run.task
        assert await reopened.get_request(run.run_id) == {"task": run.task}
    for store in (a, b, reopened):
        await store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        await b.save(runs[0])


async def exercise(store: RunStore) -> None:
    """The interface's contract, for every backend."""
    first = agent_pb2.RunResponse(run_id="r1", task="first", user_id="u", conversation_id="c")
    await store.save(first, {"task": "first", "context": {}})
    await store.save(agent_pb2.RunResponse(run_id="r2", task="second", user_id="u"))
    assert await store.get("missing") is None
    assert await store.add_feedback("missing", agent_pb2.Feedback(rating=1), 20) is None
    await store.add_feedback("r1", agent_pb2.Feedback(rating=-1), 20)
    updated = await store.add_feedback("r1", agent_pb2.Feedback(rating=4), 20)
    assert updated is not None and [f.rating for f in updated.feedback] == [-1, 4]
    with pytest.raises(FeedbackLimit):  # the cap is checked by the write itself
        await store.add_feedback("r1", agent_pb2.Feedback(rating=1), 2)
    # Saving again (a record with a stale feedback copy) keeps the feedback as stored.
    await store.save(updated)
    again = await store.get("r1")
    assert again is not None and [f.rating for f in again.feedback] == [-1, 4]
    assert [r.run_id for r in await store.runs_with_feedback()] == ["r1"]
    # A run is stored RUNNING when it starts, then overwritten by its final record.
    running = agent_pb2.RunResponse(run_id="r3", status=agent_pb2.RUN_STATUS_RUNNING)
    await store.save(running)
    assert [r.run_id for r in await store.runs_with_status("RUN_STATUS_RUNNING")] == ["r3"]
    running.status = agent_pb2.RUN_STATUS_NEEDS_APPROVAL
    await store.save(running)
    assert await store.runs_with_status("RUN_STATUS_RUNNING") == []
    waiting = await store.runs_with_status("RUN_STATUS_NEEDS_APPROVAL")
    assert [r.run_id for r in waiting] == ["r3"]
    # Listing one principal's runs is a query, not a scan of everyone's records.
    for run_id, principal in (("a1", "alice"), ("b1", "bob"), ("a2", "alice")):
        await store.save(agent_pb2.RunResponse(run_id=run_id, principal=principal))
        await store.add_feedback(run_id, agent_pb2.Feedback(rating=1), 20)
    done = "RUN_STATUS_UNSPECIFIED"
    assert [r.run_id for r in await store.runs_with_status(done, 10, "alice")] == ["a1", "a2"]
    assert [r.run_id for r in await store.runs_with_status(done, 1, "alice")] == ["a1"]
    assert [r.run_id for r in await store.runs_with_feedback(10, "bob")] == ["b1"]
    assert [r.run_id for r in await store.runs_with_feedback(10, "carol")] == []
    assert len(await store.runs_with_status(done, 10)) == 5  # r1, r2 and the three above
    # Pages: the runs after a cursor (a run id), in the same order; an unknown one: none.
    assert [r.run_id for r in await store.runs_with_status(done, 10, "alice", "a1")] == ["a2"]
    everyone = [r.run_id for r in await store.runs_with_status(done, 10)]
    after = [r.run_id for r in await store.runs_with_status(done, 10, None, everyone[1])]
    assert after == everyone[2:]
    assert [r.run_id for r in await store.runs_with_feedback(10, None, "a1")] == ["b1", "a2"]
    assert await store.runs_with_status(done, 10, None, "no-such-run") == []
    assert [r.run_id for r in await store.conversation("u", "c", 5)] == ["r1"]
    assert await store.conversation("other", "c", 5) == []
    kept = await store.remember("u", "", "the coffee vendor is Bohnen GmbH")
    await store.remember("v", "", "coffee for v")
    assert [m.id for m in await store.recall("u", "", "coffee", 5)] == [kept.id]
    assert not await store.forget("v", kept.id)
    assert await store.forget("u", kept.id)
    assert await store.recall("u", "", "coffee", 5) == []


_OLD_RUNS = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    status TEXT NOT NULL, user_id TEXT NOT NULL DEFAULT '',
    conversation_id TEXT NOT NULL DEFAULT '', record {blob} NOT NULL)
"""


def _old_record(run_id: str, principal: str) -> tuple[str, float, float, str, bytes]:
    run = agent_pb2.RunResponse(run_id=run_id, principal=principal)
    return (run_id, 1.0, 1.0, "RUN_STATUS_SUCCEEDED", run.SerializeToString())


async def test_a_file_from_before_the_principal_column_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(_OLD_RUNS.format(blob="BLOB"))
        db.executemany(
            "INSERT INTO runs (run_id, created_at, updated_at, status, record)"
            " VALUES (?, ?, ?, ?, ?)",
            [_old_record("o1", "alice"), _old_record("o2", "bob")],
        )
    store = SqliteRunStore(path)
    mine = await store.runs_with_status("RUN_STATUS_SUCCEEDED", 10, "alice")
    assert [r.run_id for r in mine] == ["o1"]
    await store.close()


# --- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    yield from throwaway_postgres()


@pytest.fixture(scope="module")
def postgres_url(postgres: Postgres) -> str:
    return postgres.url


@pytest.fixture
async def pg_store(postgres_url: str) -> AsyncIterator[RunStore]:
    from agentd.store.postgres import PostgresRunStore

    store = PostgresRunStore(postgres_url)
    async with store.connection() as db:
        await db.execute("TRUNCATE runs, requests, feedback, memories, decisions")
    yield store
    await store.close()


async def test_postgres_store_contract(pg_store: RunStore) -> None:
    await exercise(pg_store)


async def test_postgres_records_shared_between_replicas(
    postgres_url: str, pg_store: RunStore
) -> None:
    from agentd.store.postgres import PostgresRunStore

    await pg_store.save(agent_pb2.RunResponse(run_id="shared", task="x"))
    other = PostgresRunStore(postgres_url)  # a second replica
    try:
        await other.add_feedback("shared", agent_pb2.Feedback(rating=5), 20)
        run = await pg_store.get("shared")
        assert run is not None and run.feedback[0].rating == 5
    finally:
        await other.close()


async def test_postgres_table_from_before_the_principal_column_is_upgraded(
    postgres_url: str,
) -> None:
    import psycopg

    from agentd.store.postgres import PostgresRunStore

    schema = f"old_layout_{os.getpid()}"  # a schema of its own: the old table beside none
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as db:
        await db.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        await db.execute(_OLD_RUNS.format(blob="BYTEA"))
        async with db.cursor() as cursor:
            await cursor.executemany(
                "INSERT INTO runs (run_id, created_at, updated_at, status, record)"
                " VALUES (%s, %s, %s, %s, %s)",
                [_old_record("o1", "alice"), _old_record("o2", "bob")],
            )
    store = PostgresRunStore(url)
    try:
        mine = await store.runs_with_status("RUN_STATUS_SUCCEEDED", 10, "bob")
        assert [r.run_id for r in mine] == ["o2"]
    finally:
        await store.close()
