"""Issue 23 items 2, 7, 9, 10: nothing a caller (or an upstream's descriptors) sends can make
the daemon fetch anything, stall its event loop, store an unreadable run, or fail late.

Every bad field gets INVALID_ARGUMENT naming it, before any model call, with at most a short
prefix of the bad value in the message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from referencing.exceptions import Unresolvable

from agentd.api import bounds
from agentd.llm.schemas import validator
from agentd.loop.plan import bounded
from agentd.v1 import agent_pb2
from tests.support.plans import answer, plan
from tests.test_agent import Stack, start_stack
from tests.test_identity import agentd_cli
from toolgen._tool import _compile


class Sink:
    """An HTTP server on loopback that counts every connection: a $ref target."""

    def __init__(self) -> None:
        self.hits = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.hits += 1
            await reader.read(1024)
            writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{}")
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in start_stack(tmp_path):
        yield s


def answers_everything(s: Stack, reply: Any = "fine") -> None:
    s.llm.reply(when="plan", content=plan(answer="fine"), times=None)
    s.llm.reply(when="answer", content=answer(reply), times=None)


async def refused(call: Any, request: Any, field: str) -> str:
    """The call's INVALID_ARGUMENT details, which must start with ``field``."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    details = info.value.details() or ""
    assert details.startswith(field), details
    assert len(details) <= 400, len(details)  # never echoes a long bad value
    return details


# --- item 2: no schema makes the daemon fetch anything ---------------------------------------


def remote_schemas(url: str, tmp: Path) -> list[dict[str, Any]]:
    secret = tmp / "secret.json"
    secret.write_text('{"type": "string"}')
    return [
        {"type": "object", "properties": {"a": {"$ref": f"{url}/s.json"}}},
        {"$ref": f"{url}/root.json"},
        {"type": "object", "properties": {"a": {"$ref": secret.as_uri()}}},
        {"$id": f"{url}/base/", "type": "object", "properties": {"a": {"$ref": "other.json"}}},
        {"type": "object", "properties": {"a": {"$id": f"{url}/x/", "$ref": "y.json"}}},
        {"$dynamicRef": f"{url}/dyn.json"},
        {"type": "object", "properties": {"a": {"$ref": "//127.0.0.1:9/x.json"}}},
        {"type": "object", "$defs": {"d": {"$ref": f"{url}/d.json"}}, "$ref": "#/$defs/d"},
        {"allOf": [{"$ref": f"{url}/all.json"}]},
    ]


async def test_remote_refs_in_response_schema_are_refused_and_never_fetched(
    stack: Stack, sink: Sink, tmp_path: Path
) -> None:
    s = stack
    answers_everything(s, reply={"a": "x"})
    for schema in remote_schemas(sink.url, tmp_path):
        request = agent_pb2.RunRequest(task="t", response_schema=json.dumps(schema))
        await refused(s.stub.Run, request, "response_schema")
    assert sink.hits == 0
    assert s.llm.requests == []  # refused before any (paid) model call
    response = await s.run("still serving")
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED


async def test_validators_never_retrieve(sink: Sink, tmp_path: Path) -> None:
    """Every validator (agentd's and toolgen's, for tool and model schemas alike) resolves
    only what is inside its schema: a remote or file $ref is unresolvable, never fetched."""
    for schema in remote_schemas(sink.url, tmp_path):
        for check in (validator(schema).is_valid, _compile(schema).is_valid):
            with pytest.raises(Unresolvable):
                await asyncio.to_thread(check, {"a": "x"})
    assert sink.hits == 0


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        {"type": "object", "properties": {"a": {"$ref": "#"}}},
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        {
            "type": "object",
            "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
            "properties": {"head": {"$ref": "#/$defs/node"}},
        },
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
        {"type": "object", "properties": {"a": {"$ref": "#/properties/b"}, "b": {}}},
        {"type": "object", "properties": {"a": {"$ref": "#anchor"}}},
        {"type": "object", "properties": {"a": {"$ref": 5}}},
    ],
    ids=["root", "nested-root", "cycle", "recursive", "missing", "not-defs", "anchor", "not-str"],
)
async def test_refs_that_cannot_be_held_are_refused_before_a_model_call(
    stack: Stack, schema: dict[str, Any]
) -> None:
    s = stack
    answers_everything(s)
    request = agent_pb2.RunRequest(task="t", response_schema=json.dumps(schema))
    details = await refused(s.stub.Run, request, "response_schema")
    assert "$ref" in details
    assert s.llm.requests == []


async def test_local_defs_refs_still_work(stack: Stack) -> None:
    s = stack
    schema = {
        "type": "object",
        "$defs": {"city": {"type": "string", "maxLength": 40}},
        "properties": {"from": {"$ref": "#/$defs/city"}, "to": {"$ref": "#/$defs/city"}},
        "required": ["from", "to"],
    }
    answers_everything(s, reply={"from": "Paris", "to": "Rome"})
    response = await s.run("t", response_schema=json.dumps(schema))
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    assert json.loads(response.output) == {"from": "Paris", "to": "Rome"}


# --- item 7: patterns run in linear time; lengths stay bounded --------------------------------


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"type": "string", "pattern": r"^(a)\1$"}, "/pattern"),
        ({"type": "object", "properties": {"x": {"type": "string", "pattern": "(?=a)a"}}}, "/x"),
        ({"type": "object", "patternProperties": {r"(?<!b)a": {}}}, "patternProperties"),
    ],
    ids=["backreference", "lookahead", "patternProperties-lookbehind"],
)
async def test_patterns_outside_linear_time_regexes_are_refused(
    stack: Stack, schema: dict[str, Any], where: str
) -> None:
    s = stack
    answers_everything(s)
    request = agent_pb2.RunRequest(task="t", response_schema=json.dumps(schema))
    details = await refused(s.stub.Run, request, "response_schema")
    assert where in details, details
    assert s.llm.requests == []


CATASTROPHIC = {"type": "string", "pattern": "^(a+)+$"}


def test_catastrophic_patterns_match_in_linear_time() -> None:
    """``^(a+)+$`` on a long near-miss: exponential for a backtracking engine (this test
    would never end), immediate for RE2. Both validators, pattern and patternProperties."""
    near_miss = "a" * 5000 + "!"
    assert validator(CATASTROPHIC).is_valid("a" * 5000)
    assert not validator(CATASTROPHIC).is_valid(near_miss)
    assert not _compile(CATASTROPHIC).is_valid(near_miss)
    assert list(validator(CATASTROPHIC).iter_errors(near_miss))
    by_key = {"type": "object", "patternProperties": {"^(a+)+$": {"type": "integer"}}}
    assert not validator(by_key).is_valid({near_miss[:-1]: "x"})
    assert validator(by_key).is_valid({near_miss: "x"})


async def test_a_catastrophic_pattern_does_not_stall_other_runs(stack: Stack) -> None:
    s = stack
    s.llm.reply(when="plan", content=plan(answer="fine"), times=None)
    s.llm.reply(when="answer", content=answer("a" * 60 + "!"), times=None)
    request = agent_pb2.RunRequest(task="t", response_schema=json.dumps(CATASTROPHIC))
    response = await s.stub.Run(request, timeout=30)
    assert response.status == agent_pb2.RUN_STATUS_FAILED  # the answer never matched
    assert "responder" in response.error


def test_bounded_keeps_the_length_cap_with_a_pattern() -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^a+$"}}}
    out = bounded(schema, 300)
    assert out["properties"]["code"]["maxLength"] == 300
    tighter = {"type": "string", "pattern": "^a+$", "maxLength": 10}
    assert bounded(tighter, 300)["maxLength"] == 10
    looser = {"type": "string", "maxLength": 10**9}
    assert bounded(looser, 300)["maxLength"] == 300


# --- item 9: feedback cannot make a run unreadable -------------------------------------------


async def test_feedback_labels_and_entries_are_bounded(stack: Stack) -> None:
    s = stack
    answers_everything(s)
    run = await s.run("rate me")
    feedback = s.stub.SubmitFeedback
    big = agent_pb2.SubmitFeedbackRequest(run_id=run.run_id, rating=1, labels=["x" * 6_000_000])
    await refused(feedback, big, "labels[0]")
    many = agent_pb2.SubmitFeedbackRequest(run_id=run.run_id, rating=1, labels=["ok"] * 33)
    await refused(feedback, many, "labels")
    long_comment = agent_pb2.SubmitFeedbackRequest(run_id=run.run_id, rating=1, comment="c" * 10**6)
    await refused(feedback, long_comment, "comment")
    most = bounds.MAX_FEEDBACK_PER_RUN
    for _ in range(most):
        await feedback(agent_pb2.SubmitFeedbackRequest(run_id=run.run_id, rating=1), timeout=30)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await feedback(agent_pb2.SubmitFeedbackRequest(run_id=run.run_id, rating=1), timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert info.value.details().startswith("run_id")
    stored = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=run.run_id), timeout=30)
    assert len(stored.feedback) == most
    listed = await s.stub.ListRuns(agent_pb2.ListRunsRequest(with_feedback=True), timeout=30)
    assert [r.run_id for r in listed.runs] == [run.run_id]


async def test_concurrent_feedback_cannot_pass_the_cap(stack: Stack) -> None:
    """The cap is kept by the store, not by a read before the write: 30 ratings at once on a
    fresh run store 20, and the other 10 get RESOURCE_EXHAUSTED."""
    answers_everything(stack)
    run = await stack.run("rate me at once")
    request = agent_pb2.SubmitFeedbackRequest(run_id=run.run_id, rating=1)
    outcomes = await asyncio.gather(
        *(stack.stub.SubmitFeedback(request, timeout=30) for _ in range(30)),
        return_exceptions=True,
    )
    refused_ = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert {o.code() for o in refused_} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert len(refused_) == 30 - bounds.MAX_FEEDBACK_PER_RUN
    stored = await stack.stub.GetRun(agent_pb2.GetRunRequest(run_id=run.run_id), timeout=30)
    assert len(stored.feedback) == bounds.MAX_FEEDBACK_PER_RUN


async def test_listing_runs_pages_within_the_message_size(tmp_path: Path) -> None:
    """Records are bounded one by one, but a listing of many is not: 1,000 runs in one
    ListRunsResponse overflow server.max_message_bytes, and one principal's big runs would
    break an admin's listing and the feedback export. A page holds what fits (and at most
    ``limit``); next_page_token asks for the rest, each run once, oldest first."""
    most = 256 * 1024
    env = {"AGENTD_SERVER_MAX_MESSAGE_BYTES": str(most)}
    async for s in start_stack(tmp_path, env=env):
        answers_everything(s)
        ids = [(await s.run(f"run {i}: " + "x" * 30_000)).run_id for i in range(20)]
        succeeded = agent_pb2.RUN_STATUS_SUCCEEDED
        seen: list[str] = []
        token, pages = "", 0
        while True:
            page = await s.stub.ListRuns(
                agent_pb2.ListRunsRequest(status=succeeded, page_token=token), timeout=30
            )
            assert 0 < page.ByteSize() <= most
            seen += [r.run_id for r in page.runs]
            pages += 1
            token = page.next_page_token
            if not token:
                break
        assert seen == ids and pages > 2
        first = await s.stub.ListRuns(agent_pb2.ListRunsRequest(status=succeeded, limit=3))
        assert [r.run_id for r in first.runs] == ids[:3] and first.next_page_token
        rest = await s.stub.ListRuns(
            agent_pb2.ListRunsRequest(status=succeeded, limit=3, page_token=first.next_page_token)
        )
        assert [r.run_id for r in rest.runs] == ids[3:6]
        bad = agent_pb2.ListRunsRequest(status=succeeded, page_token="z" * 5_000)
        await refused(s.stub.ListRuns, bad, "page_token")
        # The CLI follows the pages: every run, once.
        address = s.daemon.address
        code, out, err = await agentd_cli("runs", "--status", "succeeded", "--target", address)
        assert code == 0, err
        assert [line.split()[0] for line in out.splitlines()] == ids
        code, out, err = await agentd_cli("runs", "--status", "succeeded", "--limit", "7",
                                          "--target", address)  # fmt: skip
        assert [line.split()[0] for line in out.splitlines()] == ids[:7]


# --- item 10: every field bounded, refused by name, early --------------------------------------


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def nested_schema(depth: int) -> str:
    return '{"type":"object","properties":{"a":' * (depth - 1) + "{}" + "}}" * (depth - 1)


async def test_oversized_and_overdeep_run_requests_are_refused_by_field(stack: Stack) -> None:
    s = stack
    answers_everything(s)
    cases: list[tuple[agent_pb2.RunRequest, str]] = []
    for depth in (bounds.MAX_DEPTH + 1, 40, 90):
        request = agent_pb2.RunRequest(task="t")
        request.context.update(nested(depth))
        cases.append((request, "context"))
    for depth in (bounds.MAX_DEPTH + 1, 200, 3000):
        cases.append((agent_pb2.RunRequest(task="t", response_schema=nested_schema(depth)), "resp"))
    cases += [
        (agent_pb2.RunRequest(task="t", conversation_id="c" * 4_000_000), "conversation_id"),
        (agent_pb2.RunRequest(task="t", user_id="u" * 100_000), "user_id"),
        (agent_pb2.RunRequest(task="t", tools=["Ledger*"] * 10_000), "tools"),
        (agent_pb2.RunRequest(task="t", tools=["L" * 100_000]), "tools[0]"),
        (agent_pb2.RunRequest(task="t", mode=77), "mode"),
    ]
    for request, field in cases:
        await refused(s.stub.Run, request, field)
    # RunStream parses the same way.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await s.stub.RunStream(cases[0][0], timeout=30).read()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (info.value.details() or "").startswith("context")
    assert s.llm.requests == []
    # Just inside the bounds is accepted.
    ok = agent_pb2.RunRequest(task="t", response_schema=nested_schema(bounds.MAX_DEPTH - 2))
    ok.context.update(nested(bounds.MAX_DEPTH - 2))
    response = await s.stub.Run(ok, timeout=30)
    assert response.status in (agent_pb2.RUN_STATUS_SUCCEEDED, agent_pb2.RUN_STATUS_FAILED)


async def test_huge_run_ids_are_refused_without_echo(stack: Stack) -> None:
    s = stack
    huge = "r" * 100_000
    await refused(s.stub.GetRun, agent_pb2.GetRunRequest(run_id=huge), "run_id")
    await refused(
        s.stub.SubmitFeedback, agent_pb2.SubmitFeedbackRequest(run_id=huge, rating=1), "run_id"
    )
    await refused(s.stub.ApproveRun, agent_pb2.ApproveRunRequest(run_id=huge), "run_id")
    # A short unknown id is still NOT_FOUND (ownership is not revealed), and echoed.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await s.stub.GetRun(agent_pb2.GetRunRequest(run_id="nope"), timeout=30)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_approve_run_fields_are_bounded(stack: Stack) -> None:
    s = stack
    answers_everything(s)
    run = await s.run("t")
    approve = s.stub.ApproveRun
    cases = [
        (agent_pb2.ApproveRunRequest(run_id=run.run_id, request_id="q" * 100_000), "request_id"),
        (
            agent_pb2.ApproveRunRequest(
                run_id=run.run_id, decisions=[agent_pb2.CallDecision()] * 1000
            ),
            "decisions",
        ),
        (
            agent_pb2.ApproveRunRequest(
                run_id=run.run_id, decisions=[agent_pb2.CallDecision(step_id="s" * 10_000)]
            ),
            "decisions[0].step_id",
        ),
        (
            agent_pb2.ApproveRunRequest(
                run_id=run.run_id, decisions=[agent_pb2.CallDecision(reason="r" * 100_000)]
            ),
            "decisions[0].reason",
        ),
    ]
    for request, field in cases:
        await refused(approve, request, field)
    # Past the depth bound, and past protobuf's own decoding depth (about 33 levels: three
    # message levels a JSON level): INVALID_ARGUMENT naming the field either way.
    for depth in (bounds.MAX_DEPTH + 1, 60):
        deep = agent_pb2.ApproveRunRequest(run_id=run.run_id)
        deep.decisions.add(approve=True).arguments.update(nested(depth))
        assert ".arguments: nested " in await refused(approve, deep, "decisions[")


def test_every_request_field_has_a_bound() -> None:
    """Walks the request messages of AgentService: a field without a row in the bounds table
    (a new field added to the proto) fails here until its bound is written down."""
    service = agent_pb2.DESCRIPTOR.services_by_name["AgentService"]
    missing = [
        path
        for method in service.methods
        for path in bounds.field_paths(method.input_type)
        if path not in bounds.BOUNDS
    ]
    assert missing == []
    for path, bound in bounds.BOUNDS.items():
        assert bound.reason, path


def test_docs_request_bounds_is_the_table() -> None:
    """The README points at docs/request-bounds.md for every field's bound: it must be the
    table the checks read."""
    doc = Path(__file__).resolve().parent.parent / "docs" / "request-bounds.md"
    assert doc.read_text() == bounds.reference(), (
        "docs/request-bounds.md is stale: rewrite it with"
        " python -c 'from agentd.api import bounds; print(bounds.reference(), end=\"\")'"
        " > docs/request-bounds.md"
    )
