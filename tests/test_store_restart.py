"""PostgreSQL restarted under load, through the real daemon: agentd recovers by itself, every
acknowledged run is stored, every other run was answered UNAVAILABLE (never acked, then lost)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from agentd.store.postgres import PostgresRunStore
from agentd.v1 import agent_pb2
from tests.support.plans import answer, plan
from tests.support.postgres import Postgres, throwaway_postgres
from tests.test_agent import SECRET, Stack, start_stack

RUNS = 50


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    yield from throwaway_postgres()


@pytest.fixture
async def stack(tmp_path: Path, postgres: Postgres) -> AsyncIterator[Stack]:
    async for s in start_stack(tmp_path, env={"AGENTD_STORAGE_URL": postgres.url}):
        # Every run: one planner call that answers directly, slow enough to overlap the restart.
        s.llm.reply(when="plan", content=plan(answer="fine"), times=None, delay_s=0.3)
        s.llm.reply(when="answer", content=answer("fine"), times=None)
        yield s


Outcome = agent_pb2.RunResponse | grpc.aio.AioRpcError


async def burst(s: Stack, label: str) -> list[Outcome]:
    calls = [s.run(f"{label} {i}") for i in range(RUNS)]
    return list(await asyncio.gather(*calls, return_exceptions=True))  # type: ignore[arg-type]


async def check_outcomes(postgres: Postgres, outcomes: list[Outcome]) -> list[str]:
    """Acked runs are stored exactly as answered; the rest are UNAVAILABLE. The acked ids."""
    acked = [o for o in outcomes if isinstance(o, agent_pb2.RunResponse)]
    refused = [o for o in outcomes if not isinstance(o, agent_pb2.RunResponse)]
    for error in refused:
        assert isinstance(error, grpc.aio.AioRpcError), repr(error)
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error
        assert "PostgreSQL store unavailable" in (error.details() or "")
    reader = PostgresRunStore(postgres.url)  # another replica, reading what was written
    try:
        for response in acked:
            stored = await reader.get(response.run_id)
            assert stored is not None, response.run_id
            assert stored.status == response.status == agent_pb2.RUN_STATUS_SUCCEEDED
            assert stored.output == response.output
    finally:
        await reader.close()
    return [r.run_id for r in acked]


async def recovered(s: Stack) -> agent_pb2.RunResponse:
    """The daemon, never restarted, runs again once the pool has reconnected."""
    for _ in range(20):  # the pool retries with back-off; each attempt waits its timeout
        try:
            return await s.run("after the restart")
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
    raise AssertionError("agentd never recovered after PostgreSQL came back")


async def test_pg_ctl_restart_under_50_concurrent_runs(stack: Stack, postgres: Postgres) -> None:
    s = stack
    await s.run("warm up: the pool is open and the schema made")
    runs = asyncio.gather(burst(s, "during restart"))
    await s.llm.wait_for_requests(1 + RUNS // 2)  # half the runs are in flight
    await asyncio.to_thread(postgres.restart)
    (outcomes,) = await runs
    acked = await check_outcomes(postgres, outcomes)
    after = await recovered(s)
    assert after.status == agent_pb2.RUN_STATUS_SUCCEEDED
    # The same daemon serves GetRun for runs from before and after the restart.
    for run_id in [*acked[:5], after.run_id]:
        got = await s.stub.GetRun(
            agent_pb2.GetRunRequest(run_id=run_id), metadata=(("authorization", SECRET),)
        )
        assert got.run_id == run_id


async def test_runs_while_postgres_is_down_are_unavailable_then_served(
    stack: Stack, postgres: Postgres
) -> None:
    s = stack
    await s.run("warm up: the pool is open and the schema made")
    await asyncio.to_thread(postgres.stop)
    try:
        # Nothing can be stored, so nothing may be acknowledged.
        assert await check_outcomes(postgres, await burst(s, "while down")) == []
        # Reading is refused the same way, not answered NOT_FOUND.
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await s.stub.GetRun(
                agent_pb2.GetRunRequest(run_id="any"), metadata=(("authorization", SECRET),)
            )
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await asyncio.to_thread(postgres.start)
    await recovered(s)
    up = await burst(s, "back up")
    assert len(await check_outcomes(postgres, up)) == RUNS  # all acknowledged, all stored
