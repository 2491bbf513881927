"""Fuzzing AgentService with requests built from its own descriptors (issue 23).

Random and oversized RunRequest, ApproveRunRequest, SubmitFeedbackRequest, GetRunRequest and
ListRunsRequest messages, every field generated from its descriptor (strings short, unicode
and huge; integers negative and at their limits; Structs deep and wide; repeated fields long),
sent at one live daemon whose scripted model answers at once. Every answer is OK or a gRPC
status that is not UNKNOWN/INTERNAL and carries a short message; afterwards the daemon still
runs a task, and a run stored before the fuzzing is still readable and listed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf import descriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentd.v1 import agent_pb2
from tests.support.plans import answer, plan
from tests.test_agent import Stack, start_stack

on_the_live_daemon = pytest.mark.asyncio(loop_scope="module")

FD = descriptor.FieldDescriptor
BAD_CODES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
MAX_DETAILS = 1000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Stack, str]]:
    """One daemon for the module, and a run stored (and rated) before any fuzzing."""
    async for s in start_stack(tmp_path_factory.mktemp("fuzz")):
        s.llm.reply(when="plan", content=plan(answer="fine"), times=None)
        s.llm.reply(when="answer", content=answer("fine"), times=None)
        kept = await s.run("a run stored before the fuzzing")
        assert kept.status == agent_pb2.RUN_STATUS_SUCCEEDED
        rating = agent_pb2.SubmitFeedbackRequest(run_id=kept.run_id, rating=1, labels=["kept"])
        await s.stub.SubmitFeedback(rating, timeout=30)
        yield s, kept.run_id


# --- strategies from descriptors -------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=30)


def nested(depth: int, leaf: Any = 1) -> dict[str, Any]:
    value: dict[str, Any] = {"v": leaf}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


json_objects = st.one_of(
    st.dictionaries(
        st.text(max_size=10),
        st.recursive(
            json_scalars,
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
            max_leaves=20,
        ),
        max_size=6,
    ),
    st.integers(1, 70).map(nested),  # deep: around the bound and past protobuf's own limit
    st.integers(0, 400_000).map(lambda n: {"blob": "b" * n}),  # big
    st.integers(0, 5_000).map(lambda n: {f"k{i}": i for i in range(n)}),  # wide
)


def strings(run_ids: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=40),
        st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=200),
        st.integers(0, 1_000_000).map(lambda n: "x" * n),  # huge
        st.sampled_from(run_ids),  # a real run id, so checks past the lookup are reached
        st.sampled_from(
            ['{"$ref": "#"}', '{"type": "string", "pattern": "^(a+)+$"}', "Ledger*", "*"]
        ),
    )


def scalar(field: FD, run_ids: list[str]) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FD.TYPE_STRING:
        return strings(run_ids)
    if kind == FD.TYPE_BOOL:
        return st.booleans()
    if kind == FD.TYPE_ENUM:
        return st.integers(-3, 20)  # proto3 enums are open: unknown values arrive too
    if kind in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return st.sampled_from([-(2**63), -1, 0, 2**63 - 1]) | st.integers(-10, 10**6)
    if kind in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return st.sampled_from([-(2**31), -1, 0, 2**31 - 1]) | st.integers(-10, 2000)
    raise AssertionError(f"no strategy for {field.full_name} (type {kind}): add one")


def message_of(kind: descriptor.Descriptor, run_ids: list[str]) -> st.SearchStrategy[Message]:
    """A message of type ``kind`` with each field unset or drawn from its descriptor."""

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = _classes[kind.full_name]()
        fill(draw, message, kind, run_ids)
        return message

    return build()


def fill(draw: st.DrawFn, message: Any, kind: descriptor.Descriptor, run_ids: list[str]) -> None:
    """Sets fields of ``message`` in place (a copy of a deep Struct would re-parse it)."""
    for field in kind.fields:
        if not draw(st.booleans()):
            continue
        target = getattr(message, field.name)
        sub = field.message_type
        if sub is not None and sub.full_name == "google.protobuf.Struct":
            target.update(draw(json_objects))
        elif sub is not None and field.is_repeated:
            many = draw(st.integers(0, 4) | st.integers(0, 3000))
            for n in range(many):
                item = target.add()
                if n < 4:  # the first few filled, the rest empty
                    fill(draw, item, sub, run_ids)
        elif sub is not None:
            fill(draw, target, sub, run_ids)
        elif field.is_repeated:
            items = draw(
                st.lists(scalar(field, run_ids), max_size=5)
                | st.integers(0, 20_000).map(lambda n: ["Ledger*"] * n)
            )
            target.extend(items)
        else:
            setattr(message, field.name, draw(scalar(field, run_ids)))


_classes: dict[str, Any] = {
    "agentd.v1.RunRequest": agent_pb2.RunRequest,
    "agentd.v1.Limits": agent_pb2.Limits,
    "agentd.v1.ApproveRunRequest": agent_pb2.ApproveRunRequest,
    "agentd.v1.CallDecision": agent_pb2.CallDecision,
    "agentd.v1.SubmitFeedbackRequest": agent_pb2.SubmitFeedbackRequest,
    "agentd.v1.GetRunRequest": agent_pb2.GetRunRequest,
    "agentd.v1.ListRunsRequest": agent_pb2.ListRunsRequest,
    "agentd.v1.WatchRunRequest": agent_pb2.WatchRunRequest,
}


async def answered(call: Any, request: Message) -> None:
    """The call's outcome is OK or a well-formed status; never UNKNOWN/INTERNAL."""
    try:
        answer = call(request, timeout=60)
        if hasattr(answer, "__aiter__"):  # a server stream (WatchRun): read it to its end
            async for _ in answer:
                pass
        else:
            await answer
    except grpc.aio.AioRpcError as exc:
        details = exc.details() or ""
        assert exc.code() not in BAD_CODES, (exc.code(), details[:300])
        assert details, exc.code()
        assert len(details) <= MAX_DETAILS, (exc.code(), details[:300])


def fuzz(method: str, request_type: str) -> Any:
    kind = agent_pb2.DESCRIPTOR.message_types_by_name[request_type]

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    async def test(live: tuple[Stack, str], data: st.DataObject) -> None:
        s, kept = live
        request = data.draw(message_of(kind, [kept, "0" * 32]))
        await answered(getattr(s.stub, method), request)

    return on_the_live_daemon(test)


test_fuzz_run = fuzz("Run", "RunRequest")
test_fuzz_approve_run = fuzz("ApproveRun", "ApproveRunRequest")
test_fuzz_submit_feedback = fuzz("SubmitFeedback", "SubmitFeedbackRequest")
test_fuzz_get_run = fuzz("GetRun", "GetRunRequest")
test_fuzz_list_runs = fuzz("ListRuns", "ListRunsRequest")
test_fuzz_watch_run = fuzz("WatchRun", "WatchRunRequest")


def test_every_request_type_is_fuzzed() -> None:
    service = agent_pb2.DESCRIPTOR.services_by_name["AgentService"]
    fuzzed = {"Run", "ApproveRun", "SubmitFeedback", "GetRun", "ListRuns", "WatchRun"}
    # RunStream takes a RunRequest (as Run); ListTools takes no fields.
    assert {m.name for m in service.methods} - fuzzed == {"RunStream", "ListTools"}


@on_the_live_daemon
async def test_daemon_still_serves_and_lost_nothing(live: tuple[Stack, str]) -> None:
    """Runs last (file order): the stored run survived the fuzzing, and runs still run."""
    s, kept = live
    stored = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=kept), timeout=30)
    assert stored.status == agent_pb2.RUN_STATUS_SUCCEEDED
    assert stored.task == "a run stored before the fuzzing"
    assert any(list(f.labels) == ["kept"] for f in stored.feedback)
    listed = await s.stub.ListRuns(agent_pb2.ListRunsRequest(with_feedback=True), timeout=30)
    assert kept in {r.run_id for r in listed.runs}
    response = await s.run("after the fuzzing")
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED
