"""Errors carry structure (google.rpc details read by a real client) and every call is audited
once, refusals included; the run domain (agentd/runs/) works without any gRPC edge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from agentd.api import errors
from agentd.runs import errors as domain
from agentd.runs.spec import Principal, RunSpec
from agentd.v1 import agent_pb2
from tests.test_agent import Stack, plan, stack, start_stack

ROOT = Path(__file__).resolve().parent.parent
__all__ = ["stack"]  # test_agent's fixture, used here too


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Stack]:
    """One run per minute per principal, bearer auth on (users alice and bob)."""
    env = {"AGENTD_SERVER_RUNS_PER_MINUTE": "1"}
    async for s in start_stack(tmp_path, env=env, users=("alice", "bob")):
        yield s


def details(exc: grpc.aio.AioRpcError) -> dict[str, Any]:
    """The google.rpc details of a failed call, by type name, as a client reads them."""
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None, f"no google.rpc.Status on {exc.code()}: {exc.details()}"
    assert status.message == exc.details()  # the message a person reads, unchanged
    assert status.code == exc.code().value[0]
    found: dict[str, Any] = {}
    for item in status.details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.ResourceInfo,
            error_details_pb2.RetryInfo,
        ):
            if item.Is(kind.DESCRIPTOR):
                message = kind()
                item.Unpack(message)
                found[kind.DESCRIPTOR.name] = message
    info = found["ErrorInfo"]
    assert info.domain == "agentd"
    assert info.reason in {e.reason for e in errors.TABLE}
    return found


async def failed(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_a_client_reads_the_details_of_each_kind_of_error(limited: Stack) -> None:
    s = limited
    alice = (("authorization", "Bearer tok-alice-0123456789abcdef"),)
    stub = s.stub

    # INVALID_ARGUMENT: ErrorInfo FIELD_INVALID and a BadRequest naming the field.
    exc = await failed(stub.Run(agent_pb2.RunRequest(task="  "), metadata=alice))
    assert (exc.code(), exc.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "task: required (what the agent should do)",
    )
    got = details(exc)
    assert got["ErrorInfo"].reason == "FIELD_INVALID"
    assert got["ErrorInfo"].metadata["field"] == "task"
    (violation,) = got["BadRequest"].field_violations
    assert (violation.field, violation.description) == ("task", exc.details())
    request = agent_pb2.ApproveRunRequest(
        run_id="r", decisions=[agent_pb2.CallDecision(reason="x" * 100_000)]
    )
    exc = await failed(stub.ApproveRun(request, metadata=alice))
    assert details(exc)["BadRequest"].field_violations[0].field == "decisions[0].reason"

    # NOT_FOUND: RUN_NOT_FOUND and the run asked for.
    exc = await failed(stub.GetRun(agent_pb2.GetRunRequest(run_id="nope"), metadata=alice))
    assert (exc.code(), exc.details()) == (grpc.StatusCode.NOT_FOUND, "run_id: no run 'nope'")
    got = details(exc)
    assert got["ErrorInfo"].reason == "RUN_NOT_FOUND"
    assert got["ResourceInfo"].resource_name == "nope"

    # A run, then RESOURCE_EXHAUSTED with RetryInfo: alice's one run per minute is used.
    s.llm.reply(when="plan", content=plan(answer="hello"), times=None)
    done = await stub.Run(agent_pb2.RunRequest(task="Say hello"), metadata=alice, timeout=30)
    assert done.status == agent_pb2.RUN_STATUS_SUCCEEDED
    exc = await failed(stub.Run(agent_pb2.RunRequest(task="Again"), metadata=alice))
    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert exc.details().startswith("server.runs_per_minute: 'alice' started 1 runs")
    got = details(exc)
    assert got["ErrorInfo"].reason == "RATE_LIMITED"
    assert 0 < got["RetryInfo"].retry_delay.ToTimedelta().total_seconds() <= 60

    # FAILED_PRECONDITION: the run is not waiting for a decision.
    approve = agent_pb2.ApproveRunRequest(run_id=done.run_id)
    exc = await failed(stub.ApproveRun(approve, metadata=alice))
    assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details(exc)["ErrorInfo"].reason == "RUN_NOT_WAITING"
    assert details(exc)["ErrorInfo"].metadata["run_id"] == done.run_id

    # PERMISSION_DENIED: bob may not act for alice.
    bob = (("authorization", "Bearer tok-bob-0123456789abcdef"),)
    exc = await failed(stub.Run(agent_pb2.RunRequest(task="x", user_id="alice"), metadata=bob))
    assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
    assert details(exc)["ErrorInfo"].reason == "ACTING_FOR_ANOTHER_USER"

    # UNAUTHENTICATED, refused before any handler, carries its ErrorInfo too.
    exc = await failed(stub.ListTools(agent_pb2.ListToolsRequest()))
    assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
    assert details(exc)["ErrorInfo"].reason == "UNAUTHENTICATED"

    # An undecodable request: INVALID_ARGUMENT naming it, with the same details.
    async with grpc.aio.insecure_channel(s.daemon.address) as channel:
        raw = channel.unary_unary("/agentd.v1.AgentService/GetRun")
        exc = await failed(raw(b"\xff\xff\xff", metadata=alice))
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details(exc)["ErrorInfo"].reason == "FIELD_INVALID"


async def test_every_call_is_audited_once_refusals_included(limited: Stack) -> None:
    s = limited
    alice = (("authorization", "Bearer tok-alice-0123456789abcdef"),)
    with structlog.testing.capture_logs() as logs:
        listed = await s.stub.ListTools(agent_pb2.ListToolsRequest(), metadata=alice)
        refused = agent_pb2.ListRunsRequest(with_feedback=True, status=agent_pb2.RUN_STATUS_FAILED)
        exc = await failed(s.stub.ListRuns(refused, metadata=alice))
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        await s.stub.ListRuns(agent_pb2.ListRunsRequest(with_feedback=True), metadata=alice)
        await failed(s.stub.GetRun(agent_pb2.GetRunRequest(run_id="nope"), metadata=alice))
        await failed(s.stub.GetRun(agent_pb2.GetRunRequest(run_id="nope")))  # no token
    audit = [(e["method"], e["principal"], e["outcome"]) for e in logs if e["event"] == "audit"]
    assert audit == [
        ("ListTools", "alice", f"OK {len(listed.tools)} tools"),
        ("ListRuns", "alice", "INVALID_ARGUMENT"),
        ("ListRuns", "alice", "OK 0 runs"),
        ("GetRun", "alice", "NOT_FOUND"),
        ("/agentd.v1.AgentService/GetRun", None, "UNAUTHENTICATED"),
    ]


def test_every_error_has_one_reason_and_docs_errors_md_is_current() -> None:
    reasons = [e.reason for e in errors.TABLE]
    assert len(reasons) == len(set(reasons))
    assert all(r.isupper() and " " not in r for r in reasons)
    # Every domain error has its status (the edge maps the whole class, not instances).
    for name in dir(domain):
        kind = getattr(domain, name)
        if (
            isinstance(kind, type)
            and issubclass(kind, domain.RunError)
            and kind is not domain.RunError
        ):
            assert errors.entry(kind("x: y")) is not None, name
    # Each entry's status: ErrorInfo always, RetryInfo exactly where a retry may succeed.
    for e in errors.TABLE:
        exc = e.error("run_id: something")
        status = errors.status(exc, e)
        names = [d.TypeName().rpartition(".")[2] for d in status.details]
        assert names[0] == "ErrorInfo" and ("RetryInfo" in names) == e.retry, e.reason
        assert status.message.startswith("run_id: something")
    text = (ROOT / "docs" / "errors.md").read_text()
    assert text == errors.reference(), "run: python -m agentd.api.errors > docs/errors.md"


async def test_the_run_domain_serves_without_an_edge(stack: Stack) -> None:
    """Runs as any edge calls them: plain Python in, domain errors out, no gRPC."""
    runs = stack.daemon.service.runs
    stack.llm.reply(when="plan", content=plan(answer="hi"))
    alice, bob = Principal("alice"), Principal("bob")
    handle = await runs.start(RunSpec(task="Say hi"), alice, [])
    # Its events as journaled (RunEvent messages, as Runs.watch gives them), numbered from 1.
    events = [(e.sequence, e.WhichOneof("event")) async for e in handle.events()]
    assert [sequence for sequence, _ in events] == list(range(1, len(events) + 1))
    assert {"plan", "answer_delta"} <= {kind for _, kind in events}
    done = await handle.result()
    assert (done.run.status, done.run.output, done.principal) == ("succeeded", "hi", "alice")
    assert (await runs.get(handle.run_id, alice)).run.output == "hi"
    with pytest.raises(domain.RunNotFound) as caught:
        await runs.get(handle.run_id, bob)  # another principal's run is not revealed
    assert caught.value.run_id == handle.run_id
    with pytest.raises(domain.NotWaiting):
        await runs.approve(handle.run_id, alice, [], "", [])
    with pytest.raises(domain.InvalidField) as bad:
        await runs.start(RunSpec(task="x", tools=["Nope*"]), alice, [])
    assert bad.value.field == "tools"
