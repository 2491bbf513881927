"""WatchRun: a run's events from a cursor, journaled in the store, then live, until the run ends
or waits for approval; owner-only. In process on SQLite here (the run's replica follows its own
feed); across two ``agentd serve`` processes on one PostgreSQL (the other replica follows the
store) in test_a_dropped_watcher_re_attaches_on_the_other_replica_exactly_once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest

from agentd import cli
from agentd.v1 import agent_pb2, agent_pb2_grpc
from tests.support.outbox import Outbox
from tests.support.plans import answer, plan
from tests.test_agent import SECRET, user_token
from tests.test_approvals import approve, decision, outbox, stack_with_outbox, waiting_run
from tests.test_store import postgres, postgres_url
from tests.test_takeover import config, started, stop
from tests.test_takeover import upstreams as takeover_upstreams

__all__ = ["outbox", "postgres", "postgres_url", "takeover_upstreams"]  # fixtures used here

LOOKUP_A = {"id": "s1", "tool": "OutboxService_Lookup", "arguments": {"key": "a"}}
# Held in flight by the upstream until the test releases it.
HELD_B = {
    "id": "s2",
    "tool": "OutboxService_Lookup",
    "arguments": {"key": "b", "hold": True},
    "depends_on": ["s1"],
}
LOOKUP_C = {
    "id": "s3",
    "tool": "OutboxService_Lookup",
    "arguments": {"key": "c"},
    "depends_on": ["s2"],
}
ALICE = (("authorization", user_token("alice")),)


def watch(
    stub: agent_pb2_grpc.AgentServiceStub, run_id: str, after: int = 0, metadata: Any = ()
) -> Any:
    return stub.WatchRun(
        agent_pb2.WatchRunRequest(run_id=run_id, after=after), metadata=metadata, timeout=60
    )


async def collect(call: Any) -> list[agent_pb2.RunEvent]:
    events = []
    while (event := await call.read()) != grpc.aio.EOF:
        events.append(event)
    return events


def key(event: agent_pb2.RunEvent) -> tuple[int, str, bytes]:
    """What must match between two streams of one run: the sequence and the event itself (the
    final event's own time is when it was sent)."""
    kind = event.WhichOneof("event")
    assert kind is not None
    value = getattr(event, kind)
    data = value.encode() if isinstance(value, str) else value.SerializeToString(deterministic=True)
    return event.sequence, kind, data


async def until_held(outbox: Outbox) -> None:
    for _ in range(600):
        if outbox.count("Lookup", "b"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the run never called the held Lookup")


async def read_until(call: Any, kind: str, step_id: str) -> list[agent_pb2.RunEvent]:
    """Events from ``call`` up to the first ``kind`` event of ``step_id``; then the caller
    goes away (the call is cancelled)."""
    seen = []
    while (event := await call.read()) != grpc.aio.EOF:
        seen.append(event)
        if event.WhichOneof("event") == kind and getattr(event, kind).id == step_id:
            break
    call.cancel()
    return seen


def script(llm: Any) -> None:
    llm.reply(when="plan", content=plan(LOOKUP_A, HELD_B, LOOKUP_C))
    llm.reply(when="answer", content=answer("looked up a, b and c"))


async def held_stream(stub: Any, metadata: Any) -> tuple[asyncio.Task[Any], Any]:
    """A RunStream whose run waits at the held Lookup; its task and the run id."""
    call = stub.RunStream(agent_pb2.RunRequest(task="Look up a, b (hold it), c"), metadata=metadata)
    first = await call.read()
    task = asyncio.ensure_future(collect(call))
    return task, first


async def test_re_attach_on_the_same_replica_and_cursor_semantics(
    tmp_path: Path, outbox: Outbox
) -> None:
    async for s in stack_with_outbox(tmp_path, outbox, users=("alice",)):
        script(s.llm)
        streaming, first = await held_stream(s.stub, ALICE)
        run_id = first.run_id
        await until_held(outbox)
        # A watcher attaches from the start and goes away at the held step.
        before = await read_until(watch(s.stub, run_id, 0, ALICE), "step_started", "s2")
        assert [e.sequence for e in before] == list(range(1, len(before) + 1))
        # It re-attaches with its cursor while the run still waits on the upstream.
        rest = asyncio.ensure_future(collect(watch(s.stub, run_id, before[-1].sequence, ALICE)))
        await asyncio.sleep(0.3)
        assert not rest.done()
        outbox.release()
        after = await rest
        owner = [first, *await streaming]
        assert owner[-1].final.status == agent_pb2.RUN_STATUS_SUCCEEDED
        # Missing none, none twice: exactly what the run's own stream carried.
        assert [key(e) for e in before + after] == [key(e) for e in owner]

        # Once it ended, from the store: every cursor gives what follows it, and the end.
        whole = await collect(watch(s.stub, run_id, 0, ALICE))
        assert [key(e) for e in whole] == [key(e) for e in owner]
        last = owner[-1].sequence
        for cursor in (1, 3, last - 1):
            tail = await collect(watch(s.stub, run_id, cursor, ALICE))
            assert [key(e) for e in tail] == [key(e) for e in owner[cursor:]]
        assert await collect(watch(s.stub, run_id, last, ALICE)) == []
        assert await collect(watch(s.stub, run_id, last + 100, ALICE)) == []


async def test_a_watch_ends_when_the_run_waits_and_goes_on_after_the_decision(
    tmp_path: Path, outbox: Outbox
) -> None:
    async for s in stack_with_outbox(tmp_path, outbox):
        waiting = await waiting_run(s, s.llm)
        caller = (("authorization", SECRET),)
        part = await collect(watch(s.stub, waiting.run_id, 0, caller))
        assert part[-1].final.status == agent_pb2.RUN_STATUS_NEEDS_APPROVAL
        assert part[-1].final.pending_calls[0].step_id == "s1"
        assert [e.sequence for e in part] == list(range(1, len(part) + 1))
        end = part[-1].sequence
        # Nothing after the wait until someone decides: the watch ends at once.
        assert await collect(watch(s.stub, waiting.run_id, end, caller)) == []

        s.llm.reply(when="answer", content=answer("sent"))
        done = await approve(s, waiting.run_id, decision("s1"))
        assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED
        resumed = await collect(watch(s.stub, waiting.run_id, end, caller))
        # The resumed part numbers on after the wait's final event and ends with the run.
        assert [e.sequence for e in resumed] == list(range(end + 1, end + 1 + len(resumed)))
        kinds = [e.WhichOneof("event") for e in resumed]
        assert kinds[:2] == ["step_started", "step_finished"] and kinds[-1] == "final"
        assert resumed[-1].final.status == agent_pb2.RUN_STATUS_SUCCEEDED
        assert resumed[-1].final.output == "sent"
        # From 0, the watch ends at the first end (the wait), as a caller attached then saw.
        assert [key(e) for e in await collect(watch(s.stub, waiting.run_id, 0, caller))] == [
            key(e) for e in part
        ]


async def test_only_the_owner_and_admins_watch_and_bad_requests_name_the_field(
    tmp_path: Path, outbox: Outbox
) -> None:
    async for s in stack_with_outbox(tmp_path, outbox, users=("alice", "bob", "root:admin")):
        s.llm.reply(when="plan", content=plan(LOOKUP_A))
        s.llm.reply(when="answer", content=answer("a"))
        run = await s.run("Look up a", as_user="alice")
        assert run.status == agent_pb2.RUN_STATUS_SUCCEEDED, run.error
        bob = (("authorization", user_token("bob")),)
        for run_id in (run.run_id, "no-such-run"):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await collect(watch(s.stub, run_id, 0, bob))
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
            assert "run_id: no run" in (refused.value.details() or "")
        root = (("authorization", user_token("root")),)
        mine = await collect(watch(s.stub, run.run_id, 0, ALICE))
        assert [key(e) for e in await collect(watch(s.stub, run.run_id, 0, root))] == [
            key(e) for e in mine
        ]
        for request, field in (
            (agent_pb2.WatchRunRequest(), "run_id"),
            (agent_pb2.WatchRunRequest(run_id="x" * 129), "run_id"),
            (agent_pb2.WatchRunRequest(run_id=run.run_id, after=-1), "after"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await collect(s.stub.WatchRun(request, metadata=ALICE, timeout=10))
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (bad.value.details() or "").startswith(f"{field}:")
        # Still serving.
        assert len(await collect(watch(s.stub, run.run_id, 0, ALICE))) == len(mine)


async def test_cli_watch_prints_the_events_after_the_cursor(
    tmp_path: Path, outbox: Outbox, capsys: pytest.CaptureFixture[str]
) -> None:
    async for s in stack_with_outbox(tmp_path, outbox):
        s.llm.reply(when="plan", content=plan(LOOKUP_A))
        s.llm.reply(when="answer", content=answer("a is looked up"))
        run = await s.run("Look up a")
        target = ["--target", s.daemon.address, "-H", f"authorization: {SECRET}"]
        code = await asyncio.to_thread(cli.main, ["watch", run.run_id, *target])
        assert code == 0
        out = capsys.readouterr().out
        assert "#1 ● plan" in out and "a is looked up" in out
        code = await asyncio.to_thread(cli.main, ["watch", run.run_id, "--after", "2", *target])
        out = capsys.readouterr().out
        assert code == 0 and "#1 " not in out and "#3 " in out and "a is looked up" in out


async def test_a_dropped_watcher_re_attaches_on_the_other_replica_exactly_once(
    tmp_path: Path, takeover_upstreams: tuple[Any, Outbox], postgres_url: str
) -> None:
    llm, outbox = takeover_upstreams
    path = config(tmp_path, llm, outbox, postgres_url, "allow")
    a, b = await started(path), await started(path)
    try:
        async with (
            grpc.aio.insecure_channel(a.address) as to_a,
            grpc.aio.insecure_channel(b.address) as to_b,
        ):
            stub_a, stub_b = a.stub(to_a), b.stub(to_b)
            script(llm)
            streaming, first = await held_stream(stub_a, ())
            run_id = first.run_id
            await until_held(outbox)
            # Attached on A (which runs it: live from its feed), gone after the held step
            # started: an event A has not stored yet.
            before = await read_until(watch(stub_a, run_id), "step_started", "s2")
            assert [e.sequence for e in before] == list(range(1, len(before) + 1))
            # Back on B, which follows the store, while the run still waits on the upstream.
            rest = asyncio.ensure_future(collect(watch(stub_b, run_id, before[-1].sequence)))
            await asyncio.sleep(0.5)
            assert not rest.done()
            outbox.release()
            after = await rest
            owner = [first, *await streaming]
            assert owner[-1].final.status == agent_pb2.RUN_STATUS_SUCCEEDED, owner[-1].final.error
            assert [key(e) for e in before + after] == [key(e) for e in owner]
            # And the whole of it from either replica afterwards.
            for stub in (stub_a, stub_b):
                assert [key(e) for e in await collect(watch(stub, run_id))] == [
                    key(e) for e in owner
                ]
    finally:
        await stop(a, b)


async def test_a_run_keeps_at_most_max_events_per_run_and_always_its_final_event(
    tmp_path: Path, outbox: Outbox
) -> None:
    """storage.max_events_per_run bounds what a run writes to the event journal: the live
    stream still carries every event, a watcher afterwards sees the first N and the final one
    (a gap in the sequence numbers, as the config reference says)."""
    env = {"AGENTD_STORAGE_MAX_EVENTS_PER_RUN": "3"}
    async for s in stack_with_outbox(tmp_path, outbox, users=("alice",), env=env):
        s.llm.reply(when="plan", content=plan(LOOKUP_A, {**HELD_B, "arguments": {"key": "b"}}))
        s.llm.reply(when="answer", content=answer("looked up a and b"))
        call = s.stub.RunStream(agent_pb2.RunRequest(task="Look up a, b"), metadata=ALICE)
        live = await collect(call)
        assert live[-1].final.status == agent_pb2.RUN_STATUS_SUCCEEDED
        assert len(live) > 4  # plan, two steps' starts and ends, the answer, the end
        kept = await collect(watch(s.stub, live[0].run_id, 0, ALICE))
        assert [key(e) for e in kept] == [key(e) for e in (*live[:3], live[-1])]
        assert kept[-1].sequence == live[-1].sequence  # the gap shows in the numbers
