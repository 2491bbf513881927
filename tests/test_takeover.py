"""Durable runs across processes: a run stopped on replica A is approved on replica B; a
replica killed with -9 mid-run has its run finished by another (PostgreSQL), or by itself
restarted (SQLite). Real ``agentd serve`` processes; the upstream counts every call."""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from agentd.v1 import agent_pb2, agent_pb2_grpc
from tests.support.outbox import Outbox, serve_outbox
from tests.support.plans import answer, plan
from tests.support.scripted_llm import ScriptedLLM
from tests.test_agent import step
from tests.test_approvals import FORWARD, SEND, TIGHTER, UPSTREAM_TOKEN, outbox_upstream
from tests.test_process import DaemonProcess
from tests.test_store import postgres, postgres_url

__all__ = ["postgres", "postgres_url"]  # the module-scoped PostgreSQL fixtures, used here too

# s2 and s3 are held in flight by the upstream until the test releases them; s4 needs both.
FOUR_STEPS = (
    {"id": "s1", "tool": "OutboxService_Lookup", "arguments": {"key": "a"}},
    {
        "id": "s2",
        "tool": "OutboxService_Lookup",
        "arguments": {"key": "b", "hold": True},
        "depends_on": ["s1"],
    },
    {
        "id": "s3",
        "tool": "OutboxService_Send",
        "arguments": {"to": "ops", "text": "hello", "hold": True},
        "depends_on": ["s1"],
    },
    {
        "id": "s4",
        "tool": "OutboxService_Lookup",
        "arguments": {"key": "c"},
        "depends_on": ["s2", "s3"],
    },
)


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[ScriptedLLM, Outbox]]:
    llm = ScriptedLLM()
    await llm.start()
    outbox = await serve_outbox()
    yield llm, outbox
    await outbox.stop()
    await llm.stop()


def config(
    tmp_path: Path,
    llm: ScriptedLLM,
    outbox: Outbox,
    url: str,
    side_effects: str,
    more: str = "",
    tables: str = "",
) -> Path:
    """One config for every replica: the outbox only, short leases (a dead replica's run is
    taken over within about two seconds), PostgreSQL at ``url`` or SQLite; ``more``: lines of
    the outbox's upstream table, ``tables``: more tables after it."""
    path = tmp_path / "agentd.toml"
    path.write_text(
        f"""
[server]
listen = "127.0.0.1:0"

[llm]
base_url = "{llm.base_url}"
model = "scripted-model"
tool_call_mode = "structured"
max_retries = 0

[storage]
path = "{tmp_path / "runs.db"}"
url = "{url}"
lease_s = 1.5
takeover_s = 0.3
{outbox_upstream(outbox, side_effects, more)}
{tables}
"""
    )
    return path


async def started(path: Path) -> DaemonProcess:
    daemon = DaemonProcess(path)
    await daemon.start()
    return daemon


async def stop(*daemons: DaemonProcess) -> None:
    for daemon in daemons:
        if daemon.proc is not None and daemon.proc.returncode is None:
            daemon.proc.kill()
            await daemon.proc.wait()


async def wait_status(
    stub: agent_pb2_grpc.AgentServiceStub, run_id: str, status: int, timeout_s: float = 30
) -> agent_pb2.RunResponse:
    record = agent_pb2.RunResponse()
    for _ in range(int(timeout_s / 0.1)):
        record = await stub.GetRun(agent_pb2.GetRunRequest(run_id=run_id), timeout=5)
        if record.status == status:
            return record
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} is {agent_pb2.RunStatus.Name(record.status)}")


async def approve_all(stub: Any, run_id: str, **fields: Any) -> agent_pb2.RunResponse:
    waiting = await stub.GetRun(agent_pb2.GetRunRequest(run_id=run_id), timeout=5)
    decisions = [
        agent_pb2.CallDecision(step_id=p.step_id, approve=True) for p in waiting.pending_calls
    ]
    request = agent_pb2.ApproveRunRequest(
        run_id=run_id, request_id=uuid.uuid4().hex, decisions=decisions
    )
    return await stub.ApproveRun(request, timeout=30)


async def test_stopped_on_one_replica_approved_on_another(
    tmp_path: Path, upstreams: tuple[ScriptedLLM, Outbox], postgres_url: str
) -> None:
    llm, outbox = upstreams
    path = config(tmp_path, llm, outbox, postgres_url, "approve")
    a, b = await started(path), await started(path)
    try:
        async with (
            grpc.aio.insecure_channel(a.address) as to_a,
            grpc.aio.insecure_channel(b.address) as to_b,
        ):
            llm.reply(when="plan", content=plan(SEND))
            waiting = await a.stub(to_a).Run(agent_pb2.RunRequest(task="Tell ops"), timeout=30)
            assert waiting.status == agent_pb2.RUN_STATUS_NEEDS_APPROVAL, waiting.error
            llm.reply(when="answer", content=answer("sent"))
            done = await approve_all(b.stub(to_b), waiting.run_id)
            assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
            assert outbox.count("Send") == 1
            record = await a.stub(to_a).GetRun(agent_pb2.GetRunRequest(run_id=waiting.run_id))
            assert record.resumes == 1 and len(record.approvals) == 1
            assert record.status == agent_pb2.RUN_STATUS_SUCCEEDED
    finally:
        await stop(a, b)


async def kill_mid_run(llm: ScriptedLLM, outbox: Outbox, victim: DaemonProcess) -> str:
    """Start the four-step run on ``victim``; kill -9 it while s2 and s3 are in flight."""
    llm.reply(when="plan", content=plan(*FOUR_STEPS))
    llm.reply(when="answer", content=answer("done after the takeover"))
    channel = grpc.aio.insecure_channel(victim.address)
    call = victim.stub(channel).RunStream(
        agent_pb2.RunRequest(task="Look up and send, and hold the calls")
    )
    run_id = ""
    async for event in call:
        run_id = event.run_id
        break
    for _ in range(600):  # bounded wait; ends as soon as both calls arrived
        if outbox.count("Lookup", "b") and outbox.count("Send"):
            break
        await asyncio.sleep(0.05)
    assert outbox.count("Lookup", "b") == 1 and outbox.count("Send") == 1
    await asyncio.sleep(0.3)  # the journal's snapshot of s2 in flight, too
    assert victim.proc is not None
    victim.proc.kill()
    await victim.proc.wait()
    with pytest.raises(grpc.aio.AioRpcError) as info:  # the caller of the dead replica
        async for _ in call:
            pass
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    await channel.close()
    outbox.release()  # the calls the dead replica made may finish now (to nobody)
    return run_id


async def check_takeover(
    stub: agent_pb2_grpc.AgentServiceStub, run_id: str, outbox: Outbox
) -> None:
    waiting = await wait_status(stub, run_id, agent_pb2.RUN_STATUS_NEEDS_APPROVAL)
    # s1 ended before the kill: not run again. s2 (no side effects) was in flight: retried.
    # s3 (side effects unknown) was in flight: not re-run; the run asks a person.
    assert outbox.count("Lookup", "a") == 1
    assert outbox.count("Lookup", "b") == 2
    assert outbox.count("Send") == 1
    assert outbox.count("Lookup", "c") == 0
    (pending,) = waiting.pending_calls
    assert pending.step_id == "s3" and "outcome unknown" in pending.reason
    assert waiting.resumes == 1
    done = await approve_all(stub, run_id)
    assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
    assert outbox.count("Send") == 2 and outbox.count("Lookup", "c") == 1
    # The same idempotency key on the first call and the approved repeat: an upstream that
    # deduplicates would apply it once.
    keys = [k for m, k in outbox.keys if m == "Send"]
    assert len(set(keys)) == 1 and keys[0]
    assert json_format.MessageToDict(done.steps[-1].result)["value"] == "value of c"


async def test_kill_9_another_replica_takes_over(
    tmp_path: Path, upstreams: tuple[ScriptedLLM, Outbox], postgres_url: str
) -> None:
    llm, outbox = upstreams
    path = config(tmp_path, llm, outbox, postgres_url, "allow")
    a, b = await started(path), await started(path)
    try:
        run_id = await kill_mid_run(llm, outbox, a)
        async with grpc.aio.insecure_channel(b.address) as to_b:
            await check_takeover(b.stub(to_b), run_id, outbox)
    finally:
        await stop(a, b)


async def test_kill_9_sqlite_the_restarted_process_takes_over(
    tmp_path: Path, upstreams: tuple[ScriptedLLM, Outbox]
) -> None:
    llm, outbox = upstreams
    path = config(tmp_path, llm, outbox, "", "allow")
    first = await started(path)
    try:
        run_id = await kill_mid_run(llm, outbox, first)
        again = await started(path)
        async with grpc.aio.insecure_channel(again.address) as channel:
            await check_takeover(again.stub(channel), run_id, outbox)
    finally:
        await stop(first)
        await stop(again)


# s1 is held in flight by the upstream; with one call at a time, s2 waits for it, unstarted.
TWO_SENDS = (
    {"id": "s1", "tool": "OutboxService_Send", "arguments": {"to": "first", "hold": True}},
    {"id": "s2", "tool": "OutboxService_Send", "arguments": {"to": "second"}},
)


def tamper(db: Path, run_id: str, step_id: str, **arguments: str) -> None:
    """Change the stored approved arguments of ``step_id``, leaving its hash as it was."""
    with sqlite3.connect(db) as conn:
        (blob,) = conn.execute("SELECT record FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        record = agent_pb2.RunResponse.FromString(blob)
        for approval in record.approvals:
            if approval.step_id == step_id:
                approval.arguments.update(arguments)
        conn.execute(
            "UPDATE runs SET record = ? WHERE run_id = ?", (record.SerializeToString(), run_id)
        )


@pytest.mark.parametrize(
    "variant", ["as-approved", "no-seal-key", "tampered", "denied-now", "removed-now"]
)
async def test_a_takeover_after_an_approval_applies_it_without_asking_again(
    tmp_path: Path,
    upstreams: tuple[ScriptedLLM, Outbox],
    monkeypatch: pytest.MonkeyPatch,
    variant: str,
) -> None:
    llm, outbox = upstreams
    monkeypatch.setenv("TEST_SEAL_KEY", base64.b64encode(os.urandom(32)).decode())
    tables = "[limits]\nmax_parallel_steps = 1\n"
    if variant != "no-seal-key":
        tables += '[approvals]\nseal_key_env = "TEST_SEAL_KEY"\n'
    path = config(tmp_path, llm, outbox, "", "approve", FORWARD, tables)
    first = await started(path)
    again: DaemonProcess | None = None
    try:
        async with grpc.aio.insecure_channel(first.address) as channel:
            stub = first.stub(channel)
            llm.reply(when="plan", content=plan(*TWO_SENDS))
            owner = ((UPSTREAM_TOKEN, "owner-secret"),)
            waiting = await stub.Run(agent_pb2.RunRequest(task="Send both"), metadata=owner)
            assert [p.step_id for p in waiting.pending_calls] == ["s1", "s2"], waiting.error
            decisions = [agent_pb2.CallDecision(step_id=i, approve=True) for i in ("s1", "s2")]
            request = agent_pb2.ApproveRunRequest(
                run_id=waiting.run_id, request_id=uuid.uuid4().hex, decisions=decisions
            )
            approving = asyncio.ensure_future(stub.ApproveRun(request, metadata=owner, timeout=30))
            for _ in range(600):  # bounded; ends as soon as s1 is in flight
                if outbox.count("Send", "first"):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # the journal's snapshot of s1 in flight
            assert first.proc is not None
            first.proc.kill()
            await first.proc.wait()
            with pytest.raises(grpc.aio.AioRpcError):
                await approving
        outbox.release()
        assert outbox.count("Send", "second") == 0  # decided, never started
        if variant == "tampered":
            tamper(tmp_path / "runs.db", waiting.run_id, "s2", to="evil")
        if variant in ("denied-now", "removed-now"):  # the operator tightened the config
            tighter = TIGHTER["policy" if variant == "denied-now" else "allowlist"]
            path = config(tmp_path, llm, outbox, "", "approve", f"{FORWARD}\n{tighter}", tables)
        llm.reply(when="answer", content=answer("both sent"))
        again = await started(path)
        async with grpc.aio.insecure_channel(again.address) as channel:
            stub = again.stub(channel)
            taken = await wait_status(stub, waiting.run_id, agent_pb2.RUN_STATUS_NEEDS_APPROVAL)
            # s1 was in flight: its outcome is unknown, so a person decides again. s2 was
            # decided and is never asked for again: it ran as approved, or was refused.
            (pending,) = taken.pending_calls
            assert pending.step_id == "s1" and "outcome unknown" in pending.reason
            s2 = step(taken, "s2")
            assert outbox.count("Send", "evil") == 0
            if variant in ("as-approved", "no-seal-key"):
                assert s2.status == agent_pb2.STEP_STATUS_SUCCEEDED, s2.error
                # Nobody attended the takeover: the owner's sealed credential, or none.
                expected = "" if variant == "no-seal-key" else "owner-secret"
                assert outbox.seen(UPSTREAM_TOKEN)[-1] == ("Send", "second", expected)
                done = await approve_all(stub, waiting.run_id)
                assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
                assert outbox.count("Send", "first") == 2 and outbox.count("Send", "second") == 1
            elif variant == "tampered":
                assert s2.status == agent_pb2.STEP_STATUS_FAILED
                assert s2.error.code == "ARGUMENTS_CHANGED"
                assert outbox.count("Send", "second") == 0
            else:
                assert s2.status == agent_pb2.STEP_STATUS_DENIED
                assert s2.error.code == "PERMISSION_DENIED"
                assert outbox.count("Send", "second") == 0
    finally:
        await stop(first)
        if again is not None:
            await stop(again)
