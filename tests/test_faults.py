"""Fault injection: upstreams, the model endpoint and callers misbehaving.

Each test names the fault, makes it happen for real (servers stopped, slowed,
replaced; the scripted model answering with errors), and checks that the run ends
with a defined status, nothing is lost, and the daemon keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from google.protobuf import json_format

from agentd.api.identity import ANONYMOUS
from agentd.loop.deadline import MARGIN_S, Deadline
from agentd.loop.state import Plan, PlanStep, RunState, StepRecord
from agentd.runs.journal import request_record
from agentd.store.records import run_message
from agentd.store.sqlite import SqliteRunStore
from agentd.v1 import agent_pb2
from examples.calculator.server import serve as serve_calculator
from examples.ledger.server import serve as serve_ledger
from tests.support.outbox import Outbox
from tests.support.scripted_llm import schema_name
from tests.test_agent import Stack, answer, plan, start_stack, step
from tests.test_approvals import outbox, outbox_upstream, stored_request

__all__ = ["outbox"]  # test_approvals' fixture, used here too

GET_VENDOR = {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_001"}}


@contextlib.asynccontextmanager
async def stack_with(tmp_path: Path, **kwargs: object) -> AsyncIterator[Stack]:
    async for s in start_stack(tmp_path, **kwargs):  # type: ignore[arg-type]
        yield s


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with stack_with(tmp_path, env={"AGENTD_LIMITS_MAX_RESULT_CHARS": "2000"}) as s:
        yield s


def stored_status(s: Stack, run_id: str | None = None) -> list[tuple[str, str]]:
    """(run_id, status) of every stored run, read straight from the SQLite file."""
    with sqlite3.connect(s.daemon.config.storage.path) as db:
        rows = db.execute("SELECT run_id, status FROM runs ORDER BY created_at").fetchall()
    return [(r, st) for r, st in rows if run_id is None or r == run_id]


@contextlib.asynccontextmanager
async def flapping(s: Stack, *, outage_s: float, up_s: float) -> AsyncIterator[None]:
    """Stop and restart the ledger on its port, over and over, while the block runs."""
    port = s.ledger.port
    stop = asyncio.Event()

    async def flap() -> None:
        while not stop.is_set():
            await s.ledger.stop(None)
            await asyncio.sleep(outage_s)  # the outage, on purpose
            s.ledger = await serve_ledger(port, reflection="v1")
            await asyncio.sleep(up_s)

    flapper = asyncio.create_task(flap())
    try:
        yield
    finally:
        stop.set()
        await flapper


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- upstream faults ------------------------------------------------------------------------


async def test_upstream_unavailable_is_an_observation(stack: Stack) -> None:
    s = stack
    await s.ledger.stop(None)
    s.llm.reply(when="plan", content=plan(GET_VENDOR))
    s.llm.reply(when="plan", content=plan(answer="The ledger service is unavailable."))
    response = await s.run("Get vendor ven_001")
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    assert response.output == "The ledger service is unavailable."
    assert step(response, "s1").error.code == "UNAVAILABLE"
    replan = [r for r in s.llm.requests if schema_name(r) == "plan"][1]
    assert "UNAVAILABLE" in json.dumps(replan["messages"])


async def test_upstream_slower_than_the_tool_timeout(tmp_path: Path) -> None:
    env = {"AGENTD_LIMITS_TOOL_TIMEOUT_S": "0.2", "AGENTD_LIMITS_MAX_REPLANS": "0"}
    async with stack_with(tmp_path, latency_s=2.0, env=env) as s:
        s.llm.reply(when="plan", content=plan(GET_VENDOR))
        s.llm.reply(when="answer", content=answer("timed out"))
        response = await s.run("Get vendor ven_001")
        assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
        s1 = step(response, "s1")
        assert s1.status == agent_pb2.STEP_STATUS_FAILED
        assert s1.error.code == "DEADLINE_EXCEEDED"


async def test_upstream_restarted_mid_run(stack: Stack) -> None:
    s = stack
    port = s.ledger.port
    restarted: list[object] = []

    async def second_plan(body: dict[str, object]) -> object:
        # Between the two plans the ledger goes away and comes back on the same port.
        from tests.support.scripted_llm import Reply

        if schema_name(body) != "plan" or restarted:
            return None
        await s.ledger.stop(None)
        s.ledger = await serve_ledger(port, reflection="v1")
        restarted.append(True)
        step2 = {**GET_VENDOR, "id": "s2", "arguments": {"vendorId": "ven_002"}}
        return Reply(content=plan(step2))

    s.llm.reply(when="plan", content=plan(GET_VENDOR))
    s.llm.reply(when="answer", content=answer("need more", missing="vendor 2"))
    s.llm.responder(second_plan)
    s.llm.reply(when="answer", content=answer("both vendors"))
    response = await s.run("Get vendors ven_001 and ven_002")
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    assert restarted
    assert step(response, "s2").status == agent_pb2.STEP_STATUS_SUCCEEDED, step(response, "s2")
    assert s.ledger.calls == ["GetVendor"]  # the new server instance took the second call


async def test_method_removed_between_discovery_and_call(stack: Stack) -> None:
    s = stack
    port = s.ledger.port
    await s.ledger.stop(None)
    # Another service now answers on the ledger's address: GetVendor is gone.
    replacement = await serve_calculator(port, reflection="v1alpha")
    try:
        s.llm.reply(when="plan", content=plan(GET_VENDOR))
        s.llm.reply(when="plan", content=plan(answer="gone"))
        s.llm.reply(when="answer", content=answer("GetVendor no longer exists"))
        response = await s.run("Get vendor ven_001")
    finally:
        await replacement.stop(None)
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    assert step(response, "s1").error.code == "UNIMPLEMENTED"


async def test_result_larger_than_the_budget_is_truncated_with_a_note(stack: Stack) -> None:
    s = stack
    search = {
        "id": "s1",
        "tool": "LedgerService_SearchVendors",
        "arguments": {"query": "e", "limit": 60},
    }
    s.llm.reply(when="plan", content=plan(search))
    s.llm.reply(when="answer", content=answer("many vendors"))
    response = await s.run("List vendors with an e")
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    s1 = step(response, "s1")
    assert s1.result_truncated
    kept = json_format.MessageToDict(s1.result)
    assert 0 < len(kept["vendors"]) < 60
    responder = next(r for r in s.llm.requests if schema_name(r) == "answer")
    # A small model counts the items it sees: it is told how many it does not see.
    said = re.search(r"vendors: (\d+) of (\d+) items shown", json.dumps(responder["messages"]))
    assert said and int(said[1]) == len(kept["vendors"]) < int(said[2])
    assert "a count or total is in the result's own fields" in json.dumps(responder["messages"])


async def test_upstream_down_at_start_is_retried_until_it_answers(tmp_path: Path) -> None:
    from agentd.api.server import Daemon
    from agentd.config import load_config
    from agentd.v1 import agent_pb2_grpc
    from tests.support.scripted_llm import ScriptedLLM
    from tests.test_agent import write_config

    port = free_port()
    llm = ScriptedLLM()
    await llm.start()
    calculator = await serve_calculator(reflection="v1alpha")
    path = write_config(tmp_path, llm, f"127.0.0.1:{port}", calculator.address)
    daemon = Daemon(load_config(path, env={"AGENTD_AGENT_DISCOVERY_RETRY_S": "0.05"}), env={})
    await daemon.start()
    ledger = None
    try:
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            first = await stub.ListTools(agent_pb2.ListToolsRequest())
            assert first.unavailable_upstreams and first.unavailable_upstreams[0].startswith(
                "ledger"
            )
            ledger = await serve_ledger(port, reflection="v1")
            for _ in range(200):  # readiness poll, bounded: the retry period is 50 ms
                tools = await stub.ListTools(agent_pb2.ListToolsRequest())
                if not tools.unavailable_upstreams:
                    break
                await asyncio.sleep(0.05)
            assert not tools.unavailable_upstreams
            assert "LedgerService_GetVendor" in {t.name for t in tools.tools}
    finally:
        await daemon.stop(grace=0)
        if ledger:
            await ledger.stop(None)
        await calculator.stop(None)
        await llm.stop()


# --- model endpoint faults ------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_model_errors_are_retried(tmp_path: Path, status: int) -> None:
    async with stack_with(tmp_path, env={"AGENTD_LLM_MAX_RETRIES": "2"}) as s:
        s.llm.reply(when="plan", status=status, headers={"retry-after": "0"}, content="busy")
        s.llm.reply(when="plan", content=plan(answer="hello"))
        response = await s.run("Say hello")
        assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
        assert response.output == "hello"
        assert [schema_name(r) for r in s.llm.requests] == ["plan", "plan"]


async def test_model_timeout_fails_the_run_with_a_clear_error(tmp_path: Path) -> None:
    env = {"AGENTD_LLM_TIMEOUT_S": "0.3"}
    async with stack_with(tmp_path, env=env) as s:
        s.llm.reply(when="plan", content=plan(answer="late"), delay_s=3.0)
        response = await s.run("Say hello")
        assert response.status == agent_pb2.RUN_STATUS_FAILED
        assert "planner" in response.error and "time" in response.error.lower()
        assert stored_status(s, response.run_id) == [(response.run_id, "RUN_STATUS_FAILED")]


async def test_model_endpoint_down(stack: Stack) -> None:
    s = stack
    await s.llm.stop()
    response = await s.run("Say hello")
    assert response.status == agent_pb2.RUN_STATUS_FAILED
    assert "planner" in response.error


@pytest.mark.parametrize(
    "bad",
    [
        {"finish_reason": "length", "content": '{"steps": ['},
        {"content": "{not json"},
        {"content": {"steps": "not a list", "answer": None, "rationale": ""}},
        {
            "raw_body": '{"id": "x", "object": "chat.completion", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}}'
        },
        {
            "content": plan(
                {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": 7}}
            )
        },
    ],
    ids=["length", "invalid-json", "off-schema", "empty-choices", "bad-arguments"],
)
async def test_bad_model_replies_go_back_to_the_model(stack: Stack, bad: dict[str, object]) -> None:
    s = stack
    s.llm.reply(when="plan", **bad)  # type: ignore[arg-type]
    s.llm.reply(when="plan", content=plan(GET_VENDOR))
    s.llm.reply(when="answer", content=answer("ok"))
    response = await s.run("Get vendor ven_001")
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    planner_calls = [c for c in response.model_calls if c.role == "planner"]
    assert len(planner_calls) == 2 and planner_calls[0].error and not planner_calls[1].error
    repair = [r for r in s.llm.requests if schema_name(r) == "plan"][1]
    assert "unusable" in repair["messages"][-1]["content"]


async def test_arguments_invalid_again_and_again_fail_the_run(stack: Stack) -> None:
    s = stack
    bad = plan({"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": 7}})
    s.llm.reply(when="plan", content=bad, times=None)
    response = await s.run("Get vendor ven_001")
    assert response.status == agent_pb2.RUN_STATUS_FAILED
    assert "no valid plan in 3 attempts" in response.error
    assert s.ledger.calls == []


async def test_model_that_never_stops_asking_for_tools(stack: Stack) -> None:
    s = stack
    call = {"call": {"tool": "CalculatorService_Evaluate", "arguments": {"expression": "1 1 +"}}}
    s.llm.reply(when="react_step", content=call, times=None)
    limits = agent_pb2.Limits(max_model_calls=5)
    response = await s.run("Loop forever", mode=agent_pb2.LOOP_MODE_REACT, limits=limits)
    assert response.status == agent_pb2.RUN_STATUS_LIMITS_EXCEEDED
    assert len(response.model_calls) == 5
    assert len(s.calculator.calls) == 5


# --- caller faults --------------------------------------------------------------------------


async def test_cancelled_run_is_stored_as_cancelled(tmp_path: Path) -> None:
    async with stack_with(tmp_path, latency_s=5.0) as s:
        s.llm.reply(when="plan", content=plan(GET_VENDOR))
        request = agent_pb2.RunRequest(task="Get vendor ven_001")
        call = s.stub.RunStream(request, timeout=30)
        run_id = ""
        async for event in call:
            run_id = event.run_id
            if event.WhichOneof("event") == "step_started":
                call.cancel()
                break
        for _ in range(1500):  # until the daemon stored the cancelled run (not RUNNING)
            if [st for _, st in stored_status(s, run_id)] not in ([], ["RUN_STATUS_RUNNING"]):
                break
            await asyncio.sleep(0.02)
        stored = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=run_id))
        assert stored.status == agent_pb2.RUN_STATUS_CANCELLED
        assert step(stored, "s1").status != agent_pb2.STEP_STATUS_SUCCEEDED


async def test_deadline_shorter_than_one_model_call(stack: Stack) -> None:
    s = stack
    s.llm.reply(when="plan", content=plan(answer="late"), delay_s=3.0)
    # The run ends itself a margin before the caller's deadline and answers DEADLINE_EXCEEDED;
    # on a loaded machine that answer may come late, and gRPC says DEADLINE_EXCEEDED instead.
    try:
        response = await s.stub.Run(agent_pb2.RunRequest(task="Say hello"), timeout=0.5)
        assert response.status == agent_pb2.RUN_STATUS_DEADLINE_EXCEEDED
        assert response.error == "the caller's deadline passed"
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Stored RUNNING from its start; wait for its final record (tens of ms on a quiet machine,
    # seconds on a loaded one: the loop ends as soon as it is there).
    for _ in range(1500):
        if [st for _, st in stored_status(s)] not in ([], ["RUN_STATUS_RUNNING"]):
            break
        await asyncio.sleep(0.02)
    assert [status for _, status in stored_status(s)] == ["RUN_STATUS_DEADLINE_EXCEEDED"]
    assert len(s.llm.requests) == 1  # asked once, never again
    # The daemon keeps serving.
    assert (await s.stub.ListTools(agent_pb2.ListToolsRequest())).tools


def test_one_deadline_per_run_ends_the_loop_a_margin_before_the_callers() -> None:
    callers = Deadline.start(run_timeout_s=120, caller_remaining_s=2.0)
    assert callers.caller and callers.margin_s == MARGIN_S
    assert 2.0 - MARGIN_S - 0.05 < callers.remaining() <= 2.0 - MARGIN_S
    assert abs((callers.at - time.time()) - 2.0) < 0.05  # the caller's, on the wall clock
    assert callers.call_timeout(10.0) <= 2.0 - MARGIN_S  # an upstream call gets what is left
    assert Deadline.start(120, 0.05).margin_s == 0.025  # a short deadline keeps half
    assert Deadline.start(120, -1.0).expired()  # already passed when the run starts
    own = Deadline.start(run_timeout_s=5, caller_remaining_s=None)
    assert not own.caller and own.margin_s == 0 and 4.9 < own.remaining() <= 5
    assert own.ending(cancelled=True, run_timeout_s=5) == (
        "cancelled",
        "the caller cancelled the run",
    )
    # Stored with the run and read back by a replica taking it over: the same instant.
    passed = Deadline.stored(time.time() - 1, True, run_timeout_s=120)
    assert passed.expired() and passed.ending(cancelled=True, run_timeout_s=120) == (
        "deadline_exceeded",
        "the caller's deadline passed",
    )
    ahead = Deadline.stored(time.time() + 30, True, run_timeout_s=120)
    assert 29 < ahead.remaining() <= 30
    assert Deadline.stored(time.time() + 300, True, run_timeout_s=120).remaining() <= 120


@pytest.mark.parametrize("method", ["Run", "RunStream"])
async def test_a_cancellation_inside_the_end_of_a_run_cannot_skip_it(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """gRPC cancels the handler just as the loop returns (the run's own timer won the race),
    and keeps cancelling it while the run's end is in progress: the final record, the alert
    and the "run finished" line still happen, and the cancellation surfaces as itself."""
    s = stack
    s.llm.reply(when="plan", status=500, content="the planner is down")  # a failed run: alert
    service = s.daemon.service.runs
    real_run = service.agent.run
    cancellers: list[asyncio.Task[None]] = []
    calls: list[Any] = []

    async def run_then_cancelled(*args: object, **kwargs: object) -> object:
        result = await real_run(*args, **kwargs)  # type: ignore[arg-type]
        handler = asyncio.current_task()
        assert handler is not None

        async def keep_cancelling() -> None:
            while not handler.done():
                handler.cancel()
                await asyncio.sleep(0.001)

        cancellers.append(asyncio.create_task(keep_cancelling()))
        calls[0].cancel()  # and the caller's side of the call ends (as at its deadline)
        return result

    monkeypatch.setattr(service.agent, "run", run_then_cancelled)
    request = agent_pb2.RunRequest(task="Say hello")
    with structlog.testing.capture_logs() as logs:
        call = (s.stub.Run if method == "Run" else s.stub.RunStream)(request, timeout=30)
        calls.append(call)
        with pytest.raises(asyncio.CancelledError):
            if method == "Run":
                await call
            else:
                _ = [event async for event in call]
        await asyncio.gather(*cancellers)
        for _ in range(1500):  # the handler's end, now in the background
            if "RUN_STATUS_RUNNING" not in dict(stored_status(s)).values() and any(
                e["event"] == "audit" for e in logs
            ):
                break
            await asyncio.sleep(0.02)
    assert [status for _, status in stored_status(s)] == ["RUN_STATUS_FAILED"]
    events = [e["event"] for e in logs]
    assert "run finished" in events
    assert [e["reason"] for e in logs if e["event"] == "alert"] == ["failed_run"]
    audit = [e for e in logs if e["event"] == "audit" and e["method"] == method]
    assert [e["outcome"] for e in audit] == ["CANCELLED"]  # not "BaseExceptionGroup"
    assert (await s.stub.ListTools(agent_pb2.ListToolsRequest())).tools


@pytest.mark.parametrize("method", ["Run", "RunStream"])
async def test_a_deadline_is_audited_and_stored_as_such(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """The deadline ends the run whichever fires first: the loop's timer, or gRPC's
    cancellation (the last run's event loop stalls past the deadline, so both are due at
    once); stored and audited DEADLINE_EXCEEDED, never CANCELLED or BaseExceptionGroup."""
    s = stack
    s.llm.reply(when="plan", content=plan(GET_VENDOR), delay_s=3.0, times=None)
    service = s.daemon.service.runs
    real_run = service.agent.run
    stall_s = [0.0, 0.0, 0.3]

    async def stalled(*args: object, **kwargs: object) -> object:
        time.sleep(stall_s.pop(0))  # blocks the event loop, as a CPU-bound neighbour would
        return await real_run(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(service.agent, "run", stalled)
    request = agent_pb2.RunRequest(task="Get vendor ven_001")
    with structlog.testing.capture_logs() as logs:
        for timeout in (0.3, 0.15, 0.15):
            try:
                if method == "Run":
                    response = await s.stub.Run(request, timeout=timeout)
                else:
                    async for event in s.stub.RunStream(request, timeout=timeout):
                        response = event.final
                assert response.status == agent_pb2.RUN_STATUS_DEADLINE_EXCEEDED
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        for _ in range(1500):  # the runs' ends and their audit lines, in the background
            statuses = [st for _, st in stored_status(s)]
            audited = [e for e in logs if e["event"] == "audit" and e["method"] == method]
            if len(statuses) == 3 and "RUN_STATUS_RUNNING" not in statuses and len(audited) == 3:
                break
            await asyncio.sleep(0.02)
    assert [st for _, st in stored_status(s)] == ["RUN_STATUS_DEADLINE_EXCEEDED"] * 3
    outcomes = [e["outcome"] for e in logs if e["event"] == "audit" and e["method"] == method]
    assert len(outcomes) == 3
    answered = "OK" if method == "RunStream" else "OK RUN_STATUS_DEADLINE_EXCEEDED"
    assert set(outcomes) <= {"DEADLINE_EXCEEDED", answered}, outcomes


async def test_a_run_taken_over_after_its_deadline_ends_without_acting(
    tmp_path: Path, outbox: Outbox
) -> None:
    """A replica died with runs RUNNING; another takes them over once their leases lapse. A
    run whose stored deadline passed ends DEADLINE_EXCEEDED without asking the model or
    calling any upstream (its caller was told DEADLINE_EXCEEDED long ago); one whose deadline
    is still ahead resumes, within it."""
    env = {"AGENTD_STORAGE_TAKEOVER_S": "0.1"}
    extra = outbox_upstream(outbox, "allow")
    async with stack_with(tmp_path, extra=extra, env=env) as s:
        s.llm.reply(when="answer", content=answer("sent"))
        send = PlanStep("s1", "OutboxService_Send", {"to": "ops", "text": "hi"})
        dead = SqliteRunStore(s.daemon.config.storage.path)  # the replica that died
        dead.owner, dead.lease_s = "dead-replica", 0.05
        runs = {}
        now = time.time()
        for name, deadline_at, in_flight in (
            ("past", now - 1, False),
            ("past-in-flight", now - 1, True),
            ("ahead", now + 60, False),
        ):
            run = RunState(name, f"send ({name})", "plan_execute", principal=ANONYMOUS)
            run.plans.append(Plan(revision=0, steps=[send]))
            if in_flight:  # the Send was on its way when the replica died
                run.steps.append(StepRecord("s1", send.tool, "", send.arguments, 0))
            run.deadline_at, run.deadline_caller = deadline_at, True
            # What a replica keeps while a run may resume without its caller: it must not
            # outlive the run ("dropped when it ends"), whichever way the run ends.
            run.sealed_credentials = {"sealed": f"opaque-{name}"}
            tools = {"OutboxService_Send": None}
            await dead.save(run_message(run), request_record(run, tools))
            runs[name] = run
        await dead.close()
        for _ in range(1500):
            if "RUN_STATUS_RUNNING" not in dict(stored_status(s)).values():
                break
            await asyncio.sleep(0.02)
        stored = {r: await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=r)) for r in runs}
    assert stored["past"].status == agent_pb2.RUN_STATUS_DEADLINE_EXCEEDED
    assert stored["past"].error == "the caller's deadline passed"
    assert stored["past-in-flight"].status == agent_pb2.RUN_STATUS_DEADLINE_EXCEEDED
    unknown = step(stored["past-in-flight"], "s1")
    assert unknown.status == agent_pb2.STEP_STATUS_FAILED
    assert unknown.error.code == "DEADLINE_EXCEEDED" and "unknown" in unknown.error.message
    assert stored["ahead"].status == agent_pb2.RUN_STATUS_SUCCEEDED, stored["ahead"].error
    assert outbox.calls == [("Send", "ops")]  # the "ahead" run's only
    assert len(s.llm.requests) == 1  # the "ahead" run's answer; no planner, nothing else
    for name in runs:  # ended, all three: no sealed credentials left in the store
        assert "sealed_credentials" not in stored_request(tmp_path, name), name


async def test_200_concurrent_runs_while_an_upstream_flaps(tmp_path: Path) -> None:
    env = {"AGENTD_SERVER_MAX_CONCURRENT_RUNS": "256", "AGENTD_LIMITS_MAX_REPLANS": "0"}
    async with stack_with(tmp_path, env=env) as s:
        s.llm.reply(when="plan", content=plan(GET_VENDOR), times=None)
        s.llm.reply(when="answer", content=answer("ok"), times=None)
        async with flapping(s, outage_s=0.05, up_s=0.05):
            responses = await asyncio.gather(
                *(s.run(f"run {i}: vendor ven_001") for i in range(200))
            )
        assert len(responses) == 200
        assert {r.status for r in responses} == {agent_pb2.RUN_STATUS_SUCCEEDED}
        codes = {x.error.code for r in responses for x in r.steps if x.error.code}
        assert codes <= {"UNAVAILABLE", "CANCELLED", "INTERNAL"}
        assert len(stored_status(s)) == 200


# --- resource limits ----------------------------------------------------------------------


async def test_too_many_concurrent_runs_get_resource_exhausted(tmp_path: Path) -> None:
    async with stack_with(tmp_path, env={"AGENTD_SERVER_MAX_CONCURRENT_RUNS": "1"}) as s:
        s.llm.reply(when="plan", content=plan(answer="slow"), delay_s=1.0)
        first = asyncio.create_task(s.run("first"))
        await s.llm.wait_for_requests(1)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await s.run("second")
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await first).status == agent_pb2.RUN_STATUS_SUCCEEDED


async def test_a_burst_of_calls_is_served_not_cancelled_by_the_transport(stack: Stack) -> None:
    # gRPC core cancels calls that wait for the application past its pending-request limits
    # (1,000 by default); a burst like the peer_overhead benchmark's got CANCELLED, which a
    # caller reads as its own cancellation. agentd sheds load itself (RESOURCE_EXHAUSTED).
    async def one() -> str:
        try:
            await stack.stub.ListTools(agent_pb2.ListToolsRequest(), timeout=120)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        return "OK"

    outcomes = await asyncio.gather(*(one() for _ in range(3000)))
    assert {code: outcomes.count(code) for code in set(outcomes)} == {"OK": 3000}


async def test_messages_over_the_size_limit_are_refused(stack: Stack) -> None:
    request = agent_pb2.RunRequest(task="t")
    request.context.update({"blob": "z" * (17 * 1024 * 1024)})  # over server.max_message_bytes
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.stub.Run(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await stack.stub.ListTools(agent_pb2.ListToolsRequest())).tools


@pytest.mark.soak
async def test_soak_2000_runs_while_upstreams_flap(tmp_path: Path) -> None:
    """The long variant of the flapping test (run with ``pytest -m soak``)."""
    env = {"AGENTD_SERVER_MAX_CONCURRENT_RUNS": "4096", "AGENTD_LIMITS_MAX_REPLANS": "0"}
    async with stack_with(tmp_path, env=env) as s:
        s.llm.reply(when="plan", content=plan(GET_VENDOR), times=None)
        s.llm.reply(when="answer", content=answer("ok"), times=None)
        async with flapping(s, outage_s=0.1, up_s=0.2):
            for _ in range(4):
                responses = await asyncio.gather(*(s.run(f"run {i}") for i in range(500)))
                assert {r.status for r in responses} == {agent_pb2.RUN_STATUS_SUCCEEDED}
        assert len(stored_status(s)) == 2000


def test_an_observation_puts_the_note_and_plain_fields_before_lists() -> None:
    """Seen on the ledger's dev split: "how many travel expenses in June?" answered 5 (the
    items shown) with ``totalSize: 30`` after them. The count now comes first."""
    from agentd.loop.state import StepRecord

    record = StepRecord("s1", "LedgerService_ListTransactions", "m", {}, 0, status="succeeded")
    record.result = {"transactions": [{"id": "t1"}], "nextPageToken": "p2", "totalSize": 30}
    record.result_truncated, record.truncation = True, "transactions: 1 of 20 items shown"
    seen = record.observation()
    assert list(seen) == ["step", "tool", "status", "note", "result"]
    assert list(seen["result"]) == ["nextPageToken", "totalSize", "transactions"]
    assert seen["result"] == record.result  # the same result, reordered
