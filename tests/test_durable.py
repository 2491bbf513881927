"""Durable runs, first part: a run is stored from its start and after every step, so GetRun
shows it in progress and ListRuns finds runs by status (real daemon, ledger, SQLite)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import grpc
import pytest

from agentd import cli
from agentd.v1 import agent_pb2
from tests.test_agent import answer, plan, step
from tests.test_faults import GET_VENDOR, stack_with

UPDATE = {
    "id": "s2",
    "tool": "LedgerService_UpdateVendor",
    "arguments": {"vendor": {"id": "ven_001", "phone": "+49 30 000"}, "updateMask": "phone"},
}


async def test_run_in_progress_is_visible_and_listed_by_status(tmp_path: Path) -> None:
    async with stack_with(tmp_path, latency_s=1.0) as s:
        s.llm.reply(when="plan", content=plan(GET_VENDOR))
        s.llm.reply(when="answer", content=answer("Acme"))
        call = s.stub.RunStream(agent_pb2.RunRequest(task="Get vendor ven_001"), timeout=30)
        run_id = ""
        async for event in call:
            run_id = event.run_id
            if event.WhichOneof("event") == "step_started":
                break
        # The upstream call is in flight (1 s latency): the stored record says RUNNING.
        during = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=run_id))
        assert during.status == agent_pb2.RUN_STATUS_RUNNING
        assert during.task == "Get vendor ven_001"
        assert [p.tool for p in during.plan.steps] == ["LedgerService_GetVendor"]
        listed = await s.stub.ListRuns(
            agent_pb2.ListRunsRequest(status=agent_pb2.RUN_STATUS_RUNNING)
        )
        assert [r.run_id for r in listed.runs] == [run_id]
        final = None
        async for event in call:
            if event.WhichOneof("event") == "final":
                final = event.final
        assert final is not None and final.status == agent_pb2.RUN_STATUS_SUCCEEDED
        after = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=run_id))
        assert after.status == agent_pb2.RUN_STATUS_SUCCEEDED
        assert step(after, "s1").status == agent_pb2.STEP_STATUS_SUCCEEDED
        none_running = await s.stub.ListRuns(
            agent_pb2.ListRunsRequest(status=agent_pb2.RUN_STATUS_RUNNING)
        )
        assert list(none_running.runs) == []


async def test_list_runs_waiting_for_approval(tmp_path: Path) -> None:
    async with stack_with(tmp_path) as s:
        s.llm.reply(when="plan", content=plan(UPDATE))
        waiting = await s.run("Change the phone of ven_001")
        assert waiting.status == agent_pb2.RUN_STATUS_NEEDS_APPROVAL
        listed = await s.stub.ListRuns(
            agent_pb2.ListRunsRequest(status=agent_pb2.RUN_STATUS_NEEDS_APPROVAL)
        )
        assert [r.run_id for r in listed.runs] == [waiting.run_id]
        assert listed.runs[0].pending_call.tool == "LedgerService_UpdateVendor"


async def test_list_runs_needs_exactly_one_filter(tmp_path: Path) -> None:
    async with stack_with(tmp_path) as s:
        for request in (
            agent_pb2.ListRunsRequest(),
            agent_pb2.ListRunsRequest(with_feedback=True, status=agent_pb2.RUN_STATUS_FAILED),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await s.stub.ListRuns(request)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "with_feedback, status" in (info.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await s.stub.ListRuns(agent_pb2.ListRunsRequest(status=99))  # type: ignore[arg-type]
        assert "status:" in (info.value.details() or "")


async def test_cli_runs_by_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with stack_with(tmp_path) as s:
        s.llm.reply(when="plan", content=plan(UPDATE))
        waiting = await s.run("Change the phone of ven_001")
        target = ["--target", s.daemon.address]
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, ["runs", "--status", "needs_approval", *target])
        out = capsys.readouterr().out
        assert code == 0
        assert waiting.run_id in out and "pending s2 LedgerService_UpdateVendor" in out
        code = await asyncio.to_thread(cli.main, ["runs", "--status", "waiting", *target])
        err = capsys.readouterr().err
        assert code == 2 and "--status waiting: unknown; use one of running," in err


async def test_every_tool_call_carries_the_steps_idempotency_key(tmp_path: Path) -> None:
    async with stack_with(tmp_path) as s:
        second = {**GET_VENDOR, "id": "s2", "arguments": {"vendorId": "ven_002"}}
        s.llm.reply(when="plan", content=plan(GET_VENDOR, second))
        s.llm.reply(when="answer", content=answer("two vendors"))
        response = await s.run("Get ven_001 and ven_002")
        assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
        keys = sorted(m["x-agentd-idempotency-key"] for m in s.ledger.seen_metadata)
        expected = sorted(
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"agentd:run/{response.run_id}/step/{sid}"))
            for sid in ("s1", "s2")
        )
        assert keys == expected
