"""ApproveRun: approve (as is or edited) or reject a pending call and resume the run from its
record; a decision is taken once. Real daemon, real upstreams counting their calls, SQLite.

The replica tests (two daemons as processes on one PostgreSQL, kill -9) are in
tests/test_takeover.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from agentd import cli
from agentd.api.server import Daemon
from agentd.config import load_config
from agentd.runs.sealing import Sealer
from agentd.v1 import agent_pb2, agent_pb2_grpc
from tests.support.outbox import Outbox, serve_outbox
from tests.support.plans import answer, plan
from tests.support.scripted_llm import ScriptedLLM
from tests.test_agent import SECRET, Stack, start_stack, step, user_token, write_config

SEND = {"id": "s1", "tool": "OutboxService_Send", "arguments": {"to": "ops", "text": "hello"}}
LOOKUP = {"id": "s2", "tool": "OutboxService_Lookup", "arguments": {"key": "after"}}


def outbox_upstream(outbox: Outbox, side_effects: str = "approve", more: str = "") -> str:
    return f"""
[[upstreams]]
name = "outbox"
target = "{outbox.address}"
allow = ["tests.outbox.v1.OutboxService/*"]
side_effects = "{side_effects}"
{more}
"""


@pytest.fixture
async def outbox() -> AsyncIterator[Outbox]:
    server = await serve_outbox()
    yield server
    await server.stop()


async def stack_with_outbox(
    tmp_path: Path, outbox: Outbox, extra: str = "", more: str = "", **kwargs: Any
) -> AsyncIterator[Stack]:
    """The stack and the outbox; ``more``: lines added to the outbox's upstream table."""
    upstream = outbox_upstream(outbox, more=more)
    async for s in start_stack(tmp_path, extra=extra + upstream, **kwargs):
        yield s


def decision(step_id: str = "", approve: bool = True, **fields: Any) -> agent_pb2.CallDecision:
    item = agent_pb2.CallDecision(step_id=step_id, approve=approve, reason=fields.get("reason", ""))
    if "arguments" in fields:
        item.arguments.update(fields["arguments"])
    return item


async def approve(
    s: Stack, run_id: str, *decisions: agent_pb2.CallDecision, request_id: str = "", **kw: Any
) -> agent_pb2.RunResponse:
    request = agent_pb2.ApproveRunRequest(
        run_id=run_id, request_id=request_id or uuid.uuid4().hex, decisions=decisions
    )
    metadata = kw.get("metadata", (("authorization", SECRET),))
    return await s.stub.ApproveRun(request, metadata=metadata, timeout=kw.get("timeout", 30))


async def waiting_run(s: Stack, llm: ScriptedLLM, *steps: dict[str, Any]) -> agent_pb2.RunResponse:
    llm.reply(when="plan", content=plan(*(steps or (SEND,))))
    waiting = await s.run("Tell ops hello")
    assert waiting.status == agent_pb2.RUN_STATUS_NEEDS_APPROVAL, waiting.error
    return waiting


async def test_approve_with_edited_arguments_resumes_and_records_both(
    tmp_path: Path, outbox: Outbox
) -> None:
    async for s in stack_with_outbox(tmp_path, outbox):
        waiting = await waiting_run(s, s.llm, SEND, {**LOOKUP, "depends_on": ["s1"]})
        assert [p.step_id for p in waiting.pending_calls] == ["s1"]
        assert outbox.count("Send") == 0
        s.llm.reply(when="answer", content=answer("sent to oncall"))
        edited = {"to": "oncall", "text": "hello"}
        done = await approve(s, waiting.run_id, decision("s1", arguments=edited))
        assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
        assert done.output == "sent to oncall"
        # Exactly once, with the edit; the step that waited on it ran after it.
        assert outbox.calls == [("Send", "oncall"), ("Lookup", "after")]
        record = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=waiting.run_id))
        assert record.resumes == 1
        (approval,) = record.approvals
        assert approval.approved and approval.edited
        assert json_format.MessageToDict(approval.original_arguments) == SEND["arguments"]
        assert json_format.MessageToDict(approval.arguments) == edited
        assert approval.principal == "anonymous" and len(approval.arguments_sha256) == 64
        assert json_format.MessageToDict(step(record, "s1").arguments) == edited
        assert step(record, "s1").status == agent_pb2.STEP_STATUS_SUCCEEDED
        # The planner was asked once: the resume reused the stored plan.
        assert sum(1 for r in s.llm.requests if "plan" in json.dumps(r)[:4000]) >= 1
        assert record.plan.revision == 0


async def test_reject_sends_the_reason_to_the_model_and_never_calls(
    tmp_path: Path, outbox: Outbox
) -> None:
    async for s in stack_with_outbox(tmp_path, outbox):
        waiting = await waiting_run(s, s.llm)
        s.llm.reply(when="plan", content=plan(answer="not sent"))
        s.llm.reply(when="answer", content=answer("I did not send it: ops is on holiday"))
        done = await approve(s, waiting.run_id, decision(approve=False, reason="ops is on holiday"))
        # The send was asked for and did not happen: the run says so, it did not succeed.
        assert done.status == agent_pb2.RUN_STATUS_FAILED
        not_done = "OutboxService_Send (step s1) was rejected by anonymous: ops is on holiday"
        assert done.output == f"Not done: {not_done}."
        assert done.error == f"the requested side effect did not happen: {not_done}"
        assert outbox.count("Send") == 0
        rejected = step(done, "s1")
        assert rejected.status == agent_pb2.STEP_STATUS_FAILED
        assert rejected.error.code == "REJECTED"
        assert "ops is on holiday" in rejected.error.message
        assert "ops is on holiday" in json.dumps(s.llm.requests[-1])  # the model saw why
        assert not done.approvals[0].approved and "holiday" in done.approvals[0].reason


async def test_repeat_and_concurrent_decisions_take_effect_once(
    tmp_path: Path, outbox: Outbox
) -> None:
    async for s in stack_with_outbox(tmp_path, outbox):
        waiting = await waiting_run(s, s.llm)
        s.llm.reply(when="answer", content=answer("sent"), times=3)
        first = await approve(s, waiting.run_id, decision(), request_id="req-1")
        assert first.status == agent_pb2.RUN_STATUS_SUCCEEDED
        again = await approve(s, waiting.run_id, decision(), request_id="req-1")
        assert again.status == agent_pb2.RUN_STATUS_SUCCEEDED and again.run_id == first.run_id
        assert outbox.count("Send") == 1

        # Two different requests at once: exactly one wins, the other names the run's state.
        second = await waiting_run(s, s.llm)
        results = await asyncio.gather(
            approve(s, second.run_id, decision(), request_id="a"),
            approve(s, second.run_id, decision(approve=False, reason="no"), request_id="b"),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        wins = [r for r in results if isinstance(r, agent_pb2.RunResponse)]
        assert len(wins) == 1 and len(errors) == 1, results
        assert errors[0].code() in (grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION)
        assert "RUN_STATUS_" in (errors[0].details() or "")
        assert outbox.count("Send") in (1, 2)  # 2 only if the approval won
        assert outbox.count("Send") == 1 + (wins[0].approvals[0].approved)


async def test_a_run_not_waiting_and_bad_decisions_are_refused(
    tmp_path: Path, outbox: Outbox
) -> None:
    async for s in stack_with_outbox(tmp_path, outbox):
        s.llm.reply(when="plan", content=plan(answer="nothing to do"))
        done = await s.run("Say hi")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await approve(s, done.run_id, decision("s1"))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "RUN_STATUS_SUCCEEDED, not waiting" in (info.value.details() or "")

        waiting = await waiting_run(s, s.llm)
        bad = [
            (decision("s9"), "decisions[0].step_id"),
            (decision("s1", arguments={"to": 5}), "decisions[0].arguments"),
            (decision("s1", approve=False, arguments={"to": "x"}), "decisions[0].arguments"),
        ]
        for item, field in bad:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await approve(s, waiting.run_id, item)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in (info.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await approve(s, waiting.run_id)  # no decision at all
        assert "no decision for pending call(s) s1" in (info.value.details() or "")
        assert outbox.count("Send") == 0
        still = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=waiting.run_id))
        assert still.status == agent_pb2.RUN_STATUS_NEEDS_APPROVAL  # nothing was decided


async def test_someone_elses_run_cannot_be_approved(tmp_path: Path, outbox: Outbox) -> None:
    async for s in stack_with_outbox(tmp_path, outbox, users=("alice", "bob")):
        s.llm.reply(when="plan", content=plan(SEND))
        waiting = await s.run("Tell ops hello", as_user="alice")
        assert waiting.status == agent_pb2.RUN_STATUS_NEEDS_APPROVAL
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await approve(
                s, waiting.run_id, decision(), metadata=(("authorization", user_token("bob")),)
            )
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert outbox.count("Send") == 0


async def test_an_expired_approval_is_refused_and_the_run_ends_expired(
    tmp_path: Path, outbox: Outbox
) -> None:
    async for s in stack_with_outbox(tmp_path, outbox, extra="\n[approvals]\nttl_s = 0.3\n"):
        waiting = await waiting_run(s, s.llm)
        await asyncio.sleep(0.5)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await approve(s, waiting.run_id, decision())
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert outbox.count("Send") == 0
        record = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=waiting.run_id))
        assert record.status == agent_pb2.RUN_STATUS_EXPIRED


async def test_expiry_as_rejection_resumes_the_run(tmp_path: Path, outbox: Outbox) -> None:
    extra = '\n[approvals]\nttl_s = 0.3\non_expiry = "reject"\n'
    env = {"AGENTD_STORAGE_TAKEOVER_S": "0.2"}  # the supervisor expires it, nobody asks
    async for s in stack_with_outbox(tmp_path, outbox, extra=extra, env=env):
        waiting = await waiting_run(s, s.llm)
        s.llm.reply(when="plan", content=plan(answer="not sent"))
        s.llm.reply(when="answer", content=answer("nobody approved, so nothing was sent"))
        for _ in range(300):  # the expiry sweep resumes it; ends as soon as it is done
            record = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=waiting.run_id))
            if record.status == agent_pb2.RUN_STATUS_FAILED:
                break
            await asyncio.sleep(0.1)
        assert record.status == agent_pb2.RUN_STATUS_FAILED  # nothing was sent
        assert "Send (step s1) was rejected by agentd: approval expired" in record.output
        assert step(record, "s1").error.code == "REJECTED"
        assert "approval expired" in step(record, "s1").error.message
        assert outbox.count("Send") == 0


async def test_cli_approve_and_reject(
    tmp_path: Path, outbox: Outbox, capsys: pytest.CaptureFixture[str]
) -> None:
    async for s in stack_with_outbox(tmp_path, outbox):
        waiting = await waiting_run(s, s.llm)
        target = ["--target", s.daemon.address, "-H", f"authorization: {SECRET}"]
        listed = await asyncio.to_thread(cli.main, ["runs", "--status", "needs_approval", *target])
        assert listed == 0
        assert f"{waiting.run_id}" in capsys.readouterr().out
        s.llm.reply(when="answer", content=answer("sent"))
        edit = json.dumps({"to": "cli", "text": "hi"})
        code = await asyncio.to_thread(
            cli.main, ["approve", waiting.run_id, "--call", "s1", "--arguments", edit, *target]
        )
        assert code == 0
        assert "status succeeded" in capsys.readouterr().out
        assert outbox.calls == [("Send", "cli")]

        other = await waiting_run(s, s.llm)
        s.llm.reply(when="plan", content=plan(answer="not sent"))
        s.llm.reply(when="answer", content=answer("not sent"))
        code = await asyncio.to_thread(
            cli.main, ["reject", other.run_id, "--reason", "not today", *target]
        )
        assert code == 0
        assert outbox.count("Send") == 1
        bad = await asyncio.to_thread(
            cli.main, ["approve", other.run_id, "--arguments", "{nope", *target]
        )
        assert bad != 0
        assert "--arguments: not valid JSON" in capsys.readouterr().err


async def test_only_safe_methods_are_retried_on_unavailable(tmp_path: Path, outbox: Outbox) -> None:
    async for s in start_stack(tmp_path, extra=outbox_upstream(outbox, "allow")):
        flaky = (
            {"id": "s1", "tool": "OutboxService_Lookup", "arguments": {"key": "flaky"}},
            {"id": "s2", "tool": "OutboxService_Send", "arguments": {"to": "flaky"}},
        )
        s.llm.reply(when="plan", content=plan(*flaky))
        s.llm.reply(when="answer", content=answer("looked up; the send failed"))
        done = await s.run("Look up flaky and send to flaky")
        # NO_SIDE_EFFECTS: retried by the channel's retry policy, and it succeeded.
        assert outbox.count("Lookup", "flaky") == 2
        assert step(done, "s1").status == agent_pb2.STEP_STATUS_SUCCEEDED
        # Unknown side effects: never retried; the model sees the failure.
        assert outbox.count("Send", "flaky") == 1
        assert step(done, "s2").error.code == "UNAVAILABLE"


# --- an approver decides, never lends (issue 23) ---------------------------------------------

UPSTREAM_TOKEN = "x-upstream-token"  # the credential the outbox gets, forwarded from callers
FORWARD = f'forward_metadata = ["{UPSTREAM_TOKEN}"]'
ALICE_SECRET = "alice-upstream-secret-4f1e"
ROOT_SECRET = "root-upstream-secret-9c2a"
SEALED = '\n[approvals]\nseal_key_env = "TEST_SEAL_KEY"\n'
HELD = {"id": "s1", "tool": "OutboxService_Lookup", "arguments": {"key": "held", "hold": True}}


def seal_key() -> dict[str, str]:
    return {"TEST_SEAL_KEY": base64.b64encode(os.urandom(32)).decode()}


def as_user(name: str, upstream_secret: str = "") -> tuple[tuple[str, str], ...]:
    extra = ((UPSTREAM_TOKEN, upstream_secret),) if upstream_secret else ()
    return (("authorization", user_token(name)), *extra)


def stored_bytes(tmp_path: Path) -> bytes:
    """Every byte of the SQLite store (the database and its write-ahead log)."""
    return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("runs.db*")))


def stored_request(tmp_path: Path, run_id: str) -> dict[str, Any]:
    with sqlite3.connect(tmp_path / "runs.db") as db:
        (text,) = db.execute("SELECT request FROM requests WHERE run_id = ?", (run_id,)).fetchone()
    return dict(json.loads(text))


@pytest.mark.parametrize("sealed", [True, False], ids=["seal-key", "no-seal-key"])
async def test_an_admins_approval_resumes_with_the_owners_credentials_never_the_admins(
    tmp_path: Path, outbox: Outbox, sealed: bool
) -> None:
    users = ("alice", "root:admin")
    extra, env = (SEALED, seal_key()) if sealed else ("", {})
    async for s in stack_with_outbox(
        tmp_path, outbox, extra=extra, more=FORWARD, users=users, daemon_env=env
    ):
        # s2, which nobody approves, runs after s1 in the resumed part of alice's run.
        s.llm.reply(when="plan", content=plan(SEND, {**LOOKUP, "depends_on": ["s1"]}))
        waiting = await s.stub.Run(
            agent_pb2.RunRequest(task="Tell ops hello"),
            metadata=as_user("alice", ALICE_SECRET),
            timeout=30,
        )
        assert waiting.status == agent_pb2.RUN_STATUS_NEEDS_APPROVAL, waiting.error
        # While it waits, alice's credential is in the store only sealed, never in clear.
        assert ("sealed_credentials" in stored_request(tmp_path, waiting.run_id)) == sealed
        assert ALICE_SECRET.encode() not in stored_bytes(tmp_path)
        s.llm.reply(when="answer", content=answer("sent"))
        done = await approve(
            s, waiting.run_id, decision("s1"), metadata=as_user("root", ROOT_SECRET)
        )
        assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
        assert done.approvals[0].principal == "root"
        owner = ALICE_SECRET if sealed else ""  # alice's, or none: never root's
        assert outbox.seen(UPSTREAM_TOKEN) == [("Send", "ops", owner), ("Lookup", "after", owner)]
        # The run ended: its sealed credentials are gone from the store.
        assert "sealed_credentials" not in stored_request(tmp_path, waiting.run_id)
        assert ALICE_SECRET.encode() not in stored_bytes(tmp_path)


async def test_the_owner_approving_resumes_with_their_own_current_credentials(
    tmp_path: Path, outbox: Outbox
) -> None:
    async for s in stack_with_outbox(tmp_path, outbox, more=FORWARD, users=("alice",)):
        s.llm.reply(when="plan", content=plan(SEND))
        waiting = await s.stub.Run(
            agent_pb2.RunRequest(task="Tell ops hello"), metadata=as_user("alice", "old")
        )
        s.llm.reply(when="answer", content=answer("sent"))
        done = await approve(s, waiting.run_id, decision(), metadata=as_user("alice", "fresh"))
        assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
        assert outbox.seen(UPSTREAM_TOKEN) == [("Send", "ops", "fresh")]


async def restart(s: Stack, tmp_path: Path, upstream: str) -> grpc.aio.Channel:
    """Stop the stack's daemon and start another on the same store with ``upstream`` as the
    outbox's table: an operator changing the config. The caller closes the channel."""
    await s.daemon.stop(grace=0)
    path = write_config(tmp_path, s.llm, s.ledger.address, s.calculator.address, upstream)
    s.daemon = Daemon(load_config(path, env={}), env={"OPENAI_API_KEY": "sk-test-key"})
    await s.daemon.start()
    channel = grpc.aio.insecure_channel(s.daemon.address)
    s.stub = agent_pb2_grpc.AgentServiceStub(channel)
    return channel


TIGHTER = {
    "policy": 'methods = { "tests.outbox.v1.OutboxService/Send" = "deny" }',
    "allowlist": 'deny = ["tests.outbox.v1.OutboxService/Send"]',
}


@pytest.mark.parametrize("change", sorted(TIGHTER))
async def test_an_approval_is_refused_when_the_tool_is_now_denied(
    tmp_path: Path, outbox: Outbox, change: str
) -> None:
    async for s in stack_with_outbox(tmp_path, outbox):
        waiting = await waiting_run(s, s.llm)
        channel = await restart(s, tmp_path, outbox_upstream(outbox, more=TIGHTER[change]))
        try:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await approve(s, waiting.run_id, decision("s1"))
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            details = info.value.details() or ""
            assert "decisions[0]: tool OutboxService_Send" in details
            assert ("denied by policy" if change == "policy" else "no longer allowed") in details
            still = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=waiting.run_id))
            assert still.status == agent_pb2.RUN_STATUS_NEEDS_APPROVAL and not still.approvals
            # Rejecting it stays possible (it calls nothing).
            s.llm.reply(when="plan", content=plan(answer="not sent"))
            s.llm.reply(when="answer", content=answer("not sent: the policy forbids it"))
            done = await approve(s, waiting.run_id, decision(approve=False, reason="policy"))
            assert done.status == agent_pb2.RUN_STATUS_FAILED  # the send did not happen
            # Denied before the decision applies when the tool left the allowlist.
            said = "was rejected by anonymous: policy" if change == "policy" else "was denied"
            assert said in done.error
            assert outbox.count("Send") == 0
        finally:
            await channel.close()


async def hold_a_run(s: Stack, outbox: Outbox, **fields: Any) -> asyncio.Future[Any]:
    """A run in progress until ``outbox.release()``: its Lookup is held by the upstream."""
    s.llm.reply(when="plan", content=plan(HELD))
    s.llm.reply(when="answer", content=answer("looked up"))
    busy = asyncio.ensure_future(s.run("Look up held, and hold the call", **fields))
    for _ in range(300):  # ends as soon as the call arrived
        if outbox.count("Lookup", "held"):
            return busy
        await asyncio.sleep(0.05)
    raise AssertionError("the held run never called the outbox")


async def test_an_approval_without_a_free_slot_is_refused_and_decides_nothing(
    tmp_path: Path, outbox: Outbox
) -> None:
    env = {"AGENTD_SERVER_MAX_CONCURRENT_RUNS": "1"}
    async for s in stack_with_outbox(tmp_path, outbox, env=env):
        waiting = await waiting_run(s, s.llm)
        busy = await hold_a_run(s, outbox)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await approve(s, waiting.run_id, decision("s1"), timeout=5)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "server.max_concurrent_runs" in (info.value.details() or "")
        still = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=waiting.run_id))
        assert still.status == agent_pb2.RUN_STATUS_NEEDS_APPROVAL and not still.approvals
        assert outbox.count("Send") == 0
        outbox.release()
        assert (await busy).status == agent_pb2.RUN_STATUS_SUCCEEDED
        s.llm.reply(when="answer", content=answer("sent"))
        done = await approve(s, waiting.run_id, decision("s1"))  # a slot is free again
        assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
        assert outbox.count("Send") == 1


async def test_an_approval_counts_against_the_owners_run_limit(
    tmp_path: Path, outbox: Outbox
) -> None:
    env = {"AGENTD_SERVER_MAX_RUNS_PER_PRINCIPAL": "1"}
    users = ("alice", "root:admin")
    async for s in stack_with_outbox(tmp_path, outbox, env=env, users=users):
        s.llm.reply(when="plan", content=plan(SEND))
        waiting = await s.run("Tell ops hello", as_user="alice")
        assert waiting.status == agent_pb2.RUN_STATUS_NEEDS_APPROVAL, waiting.error
        busy = await hold_a_run(s, outbox, as_user="alice")  # alice is at her limit
        for approver in ("root", "alice"):  # the owner is counted, whoever approves
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await approve(s, waiting.run_id, decision(), metadata=as_user(approver))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "server.max_runs_per_principal: 'alice'" in (info.value.details() or "")
        still = await s.stub.GetRun(
            agent_pb2.GetRunRequest(run_id=waiting.run_id), metadata=as_user("alice")
        )
        assert still.status == agent_pb2.RUN_STATUS_NEEDS_APPROVAL and not still.approvals
        assert outbox.count("Send") == 0
        outbox.release()
        await busy
        s.llm.reply(when="answer", content=answer("sent"))
        done = await approve(s, waiting.run_id, decision(), metadata=as_user("root"))
        assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED, done.error
        assert outbox.count("Send") == 1


@pytest.mark.parametrize("on_expiry", ["expire", "reject"])
async def test_an_approval_the_sweep_expired_is_refused_as_expired(
    tmp_path: Path, outbox: Outbox, on_expiry: str
) -> None:
    extra = f'\n[approvals]\nttl_s = 0.3\non_expiry = "{on_expiry}"\n'
    env = {"AGENTD_STORAGE_TAKEOVER_S": "0.2"}  # the supervisor expires it, nobody asks
    async for s in stack_with_outbox(tmp_path, outbox, extra=extra, env=env):
        waiting = await waiting_run(s, s.llm)
        s.llm.reply(when="plan", content=plan(answer="not sent"))
        s.llm.reply(when="answer", content=answer("nobody approved"))
        ended = {
            "expire": agent_pb2.RUN_STATUS_EXPIRED,
            "reject": agent_pb2.RUN_STATUS_FAILED,  # rejected: the send did not happen
        }[on_expiry]
        for _ in range(300):  # ends as soon as the sweep has decided it
            record = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=waiting.run_id))
            if record.status == ended:
                break
            await asyncio.sleep(0.1)
        assert record.status == ended, record.error
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await approve(s, waiting.run_id, decision())
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "expired after 0.3 s (approvals.ttl_s)" in (info.value.details() or "")
        assert outbox.count("Send") == 0


def test_sealed_credentials_open_only_for_their_run_key_and_lifetime() -> None:
    key = os.urandom(32)
    sealer = Sealer(key)
    metadata = {"outbox": [(UPSTREAM_TOKEN, ALICE_SECRET)]}
    sealed = sealer.seal("run-1", metadata, expires_at=time.time() + 60)
    assert ALICE_SECRET not in json.dumps(sealed)
    assert sealer.open("run-1", sealed) == metadata
    assert Sealer(key).open("run-1", json.loads(json.dumps(sealed))) == metadata  # a replica
    assert sealer.open("run-2", sealed) is None  # bound to its run
    assert Sealer(os.urandom(32)).open("run-1", sealed) is None  # another key
    assert sealer.open("run-1", sealed, now=time.time() + 61) is None  # past its lifetime
    assert sealer.open("run-1", {**sealed, "exp": sealed["exp"] + 3600}) is None  # extended
    blob = bytearray(base64.b64decode(sealed["blob"]))
    blob[-1] ^= 1
    assert sealer.open("run-1", {**sealed, "blob": base64.b64encode(blob).decode()}) is None


@pytest.mark.parametrize(
    ("value", "named"),
    [(None, "TEST_SEAL_KEY is not set"), ("c2hvcnQ=", "holds 5 bytes"), ("*", "not base64")],
)
async def test_a_bad_seal_key_stops_the_start_naming_the_key(
    tmp_path: Path, value: str | None, named: str
) -> None:
    llm = ScriptedLLM()
    path = write_config(tmp_path, llm, "127.0.0.1:1", "127.0.0.1:1", SEALED)
    env = {} if value is None else {"TEST_SEAL_KEY": value}
    daemon = Daemon(load_config(path, env={}), env=env)
    with pytest.raises(ValueError, match=r"approvals\.seal_key_env") as info:
        await daemon.start()
    assert named in str(info.value)
