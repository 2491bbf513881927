"""The daemon as a process: SIGTERM drains in-flight runs; kill -9 loses no acknowledged run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from agentd.v1 import agent_pb2, agent_pb2_grpc
from examples.calculator.server import serve as serve_calculator
from examples.ledger.server import LedgerServer
from examples.ledger.server import serve as serve_ledger
from tests.support.scripted_llm import ScriptedLLM
from tests.test_agent import answer, plan, write_config

GET_VENDOR = {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_001"}}


class DaemonProcess:
    """``python -m agentd serve`` in a child process, with its address read from stdout."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self.address = ""

    async def start(self) -> None:
        env = {**os.environ, "OPENAI_API_KEY": "sk-test", "AGENTD_SERVER_GRACE_S": "10"}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentd", "serve", "--config", str(self.config),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        assert line.startswith(b"agentd listening on "), line
        self.address = line.decode().split()[-1]

    def stub(self, channel: grpc.aio.Channel) -> agent_pb2_grpc.AgentServiceStub:
        return agent_pb2_grpc.AgentServiceStub(channel)

    async def wait(self) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), 30)


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[ScriptedLLM, LedgerServer, str]]:
    llm = ScriptedLLM()
    await llm.start()
    ledger = await serve_ledger(reflection="v1")
    calculator = await serve_calculator(reflection="v1alpha")
    yield llm, ledger, calculator.address
    await ledger.stop(None)
    await calculator.stop(None)
    await llm.stop()


async def test_sigterm_drains_in_flight_runs(
    tmp_path: Path, upstreams: tuple[ScriptedLLM, LedgerServer, str]
) -> None:
    llm, ledger, calculator = upstreams
    llm.reply(when="plan", content=plan(GET_VENDOR), delay_s=1.0)
    llm.reply(when="answer", content=answer("drained"))
    daemon = DaemonProcess(write_config(tmp_path, llm, ledger.address, calculator))
    await daemon.start()
    async with grpc.aio.insecure_channel(daemon.address) as channel:
        run = asyncio.ensure_future(
            daemon.stub(channel).Run(agent_pb2.RunRequest(task="Get ven_001"), timeout=30)
        )
        await llm.wait_for_requests(1)  # the run is in flight, waiting for its plan
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)
        response = await run
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    assert response.output == "drained"
    assert await daemon.wait() == 0
    # Gone: new calls are refused.
    async with grpc.aio.insecure_channel(daemon.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await daemon.stub(channel).ListTools(agent_pb2.ListToolsRequest(), timeout=2)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_kill_9_loses_no_acknowledged_run_and_a_restart_serves_again(
    tmp_path: Path, upstreams: tuple[ScriptedLLM, LedgerServer, str]
) -> None:
    llm, ledger, calculator = upstreams
    llm.reply(when="plan", content=plan(GET_VENDOR), times=5)
    llm.reply(when="answer", content=answer("ok"), times=5)
    llm.reply(when="plan", content=plan(GET_VENDOR), delay_s=30)  # in flight at the kill
    config = write_config(tmp_path, llm, ledger.address, calculator)
    daemon = DaemonProcess(config)
    await daemon.start()
    acknowledged: list[str] = []
    async with grpc.aio.insecure_channel(daemon.address) as channel:
        stub = daemon.stub(channel)
        for i in range(5):
            response = await stub.Run(agent_pb2.RunRequest(task=f"run {i}: ven_001"), timeout=30)
            acknowledged.append(response.run_id)
        in_flight = asyncio.ensure_future(
            stub.Run(agent_pb2.RunRequest(task="doomed: ven_001"), timeout=60)
        )
        await llm.wait_for_requests(11)
        assert daemon.proc is not None
        daemon.proc.kill()
        with pytest.raises(grpc.aio.AioRpcError):
            await in_flight
    assert await daemon.wait() == -signal.SIGKILL

    restarted = DaemonProcess(config)
    await restarted.start()
    try:
        async with grpc.aio.insecure_channel(restarted.address) as channel:
            stub = restarted.stub(channel)
            for run_id in acknowledged:
                stored = await stub.GetRun(agent_pb2.GetRunRequest(run_id=run_id), timeout=10)
                assert stored.status == agent_pb2.RUN_STATUS_SUCCEEDED
                assert stored.output == "ok"
            llm.reply(when="plan", content=plan(answer="alive again"))
            again = await stub.Run(agent_pb2.RunRequest(task="still there?"), timeout=30)
            assert again.output == "alive again"
    finally:
        assert restarted.proc is not None
        restarted.proc.send_signal(signal.SIGTERM)
        await restarted.wait()
