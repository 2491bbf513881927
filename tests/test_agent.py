"""AgentService end to end: real example upstreams, a real daemon, the scripted model over HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from agentd.api.server import Daemon
from agentd.config import load_config
from agentd.v1 import agent_pb2, agent_pb2_grpc
from examples.calculator.server import CalculatorServer
from examples.calculator.server import serve as serve_calculator
from examples.ledger.server import LedgerServer
from examples.ledger.server import serve as serve_ledger
from tests.support.plans import answer, plan
from tests.support.scripted_llm import ScriptedLLM, schema_name

SECRET = "Bearer s3cr3t-caller-token"


@dataclass
class Stack:
    llm: ScriptedLLM
    ledger: LedgerServer
    calculator: CalculatorServer
    daemon: Daemon
    stub: agent_pb2_grpc.AgentServiceStub

    async def run(self, task: str, **fields: Any) -> agent_pb2.RunResponse:
        metadata = fields.pop("metadata", (("authorization", SECRET),))
        if "as_user" in fields:  # authenticate as one of start_stack's ``users``
            metadata = (("authorization", user_token(fields.pop("as_user"))), *metadata[1:])
        request = agent_pb2.RunRequest(task=task, **fields)
        return await self.stub.Run(request, metadata=metadata, timeout=30)

    async def stream(self, task: str, **fields: Any) -> list[agent_pb2.RunEvent]:
        request = agent_pb2.RunRequest(task=task, **fields)
        call = self.stub.RunStream(request, metadata=(("authorization", SECRET),), timeout=30)
        return [event async for event in call]


def user_token(name: str) -> str:
    """The bearer token start_stack(users=...) gives user ``name``."""
    return f"Bearer tok-{name}-0123456789abcdef"  # 16+ characters


def tokens_table(tmp_path: Path, users: Sequence[str]) -> str:
    """A [server.auth] table with a tokens file: the caller SECRET plus ``name[:roles]`` users."""
    lines = [f"{SECRET.split()[1]} caller"]
    for user in users:
        name, _, roles = user.partition(":")
        lines.append(f"{user_token(name).split()[1]} {name} {roles}".rstrip())
    path = tmp_path / "tokens.txt"
    path.write_text("\n".join(lines) + "\n")
    return f'\n[server.auth]\nbearer_tokens_file = "{path}"\n'


def write_config(
    tmp_path: Path,
    llm: ScriptedLLM,
    ledger: str,
    calculator: str,
    extra: str = "",
    ledger_side_effects: str = "approve",
) -> Path:
    path = tmp_path / "agentd.toml"
    path.write_text(
        f"""
[server]
listen = "127.0.0.1:0"

[[upstreams]]
name = "ledger"
target = "{ledger}"
allow = ["examples.ledger.v1.LedgerService/*"]
deny = ["examples.ledger.v1.LedgerService/ListTransactions"]
side_effects = "{ledger_side_effects}"

[[upstreams]]
name = "calculator"
target = "{calculator}"
allow = ["examples.calculator.v1.CalculatorService/*"]

[llm]
base_url = "{llm.base_url}"
model = "scripted-model"
tool_call_mode = "structured"
max_retries = 0
timeout_s = 10

[limits]
max_replans = 2
run_timeout_s = 20

[storage]
path = "{tmp_path / "runs.db"}"
{extra}
"""
    )
    return path


async def start_stack(
    tmp_path: Path,
    *,
    latency_s: float = 0.0,
    extra: str = "",
    env: dict[str, str] | None = None,
    ledger_side_effects: str = "approve",
    users: Sequence[str] = (),
    daemon_env: dict[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """Scripted model, both example upstreams and a daemon; ``env`` overrides config keys,
    ``daemon_env`` is the daemon's environment (beside the model's API key).

    ``users`` (``"alice"``, ``"root:admin"``) turns bearer auth on with a token per user
    (``Stack.run(..., as_user="alice")``) besides the default caller token."""
    if users:
        extra += tokens_table(tmp_path, users)
    llm = ScriptedLLM()
    await llm.start()
    ledger = await serve_ledger(reflection="v1", latency_s=latency_s)
    calculator = await serve_calculator(reflection="v1alpha")
    config = load_config(
        write_config(tmp_path, llm, ledger.address, calculator.address, extra, ledger_side_effects),
        env=env or {},
    )
    daemon = Daemon(config, env={"OPENAI_API_KEY": "sk-test-key", **(daemon_env or {})})
    await daemon.start()
    channel = grpc.aio.insecure_channel(daemon.address)
    stack = Stack(llm, ledger, calculator, daemon, agent_pb2_grpc.AgentServiceStub(channel))
    try:
        yield stack
    finally:
        await channel.close()
        await daemon.stop(grace=0)
        # Tests may have replaced the upstreams (restarts, flapping): stop the current ones.
        for server in {
            id(x): x for x in (ledger, stack.ledger, calculator, stack.calculator)
        }.values():
            await server.stop(None)
        await llm.stop()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in start_stack(tmp_path):
        yield s


@pytest.fixture
async def slow_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Upstream calls take 300 ms, so parallel steps visibly overlap."""
    async for s in start_stack(tmp_path, latency_s=0.3):
        yield s


def step(response: agent_pb2.RunResponse, step_id: str) -> agent_pb2.Step:
    return next(s for s in response.steps if s.id == step_id)


def sent_to_model(llm: ScriptedLLM) -> str:
    return json.dumps(llm.requests) + json.dumps(llm.headers)


# --- the loop's wiring (its cases run in-process in tests/test_loop.py) ----------------------


async def test_parallel_steps_overlap_and_answer(slow_stack: Stack) -> None:
    s = slow_stack
    s.llm.reply(
        when="plan",
        content=plan(
            {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_001"}},
            {"id": "s2", "tool": "LedgerService_SearchVendors", "arguments": {"query": "coffee"}},
            {
                "id": "s3",
                "tool": "CalculatorService_Evaluate",
                "arguments": {"expression": "3 4 + 5 *"},
            },
        ),
    )
    s.llm.reply(when="answer", content=answer("Vendor ven_001 and 35."))
    response = await s.run("Who is ven_001, which vendors sell coffee, and what is (3+4)*5?")

    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    assert response.output == "Vendor ven_001 and 35."
    assert [x.id for x in response.plan.steps] == ["s1", "s2", "s3"]
    s1, s2, s3 = step(response, "s1"), step(response, "s2"), step(response, "s3")
    assert all(x.status == agent_pb2.STEP_STATUS_SUCCEEDED for x in (s1, s2, s3))
    assert s1.result["id"] == "ven_001"
    assert s3.result["value"] == 35
    # The two ledger calls ran at the same time: each started before the other ended.
    start1, end1 = (
        s1.start_time.ToNanoseconds(),
        s1.start_time.ToNanoseconds() + s1.duration.ToNanoseconds(),
    )
    start2, end2 = (
        s2.start_time.ToNanoseconds(),
        s2.start_time.ToNanoseconds() + s2.duration.ToNanoseconds(),
    )
    assert start1 < end2 and start2 < end1
    usage = {u.role: u for u in response.usage}
    assert usage["planner"].calls == 1 and usage["responder"].calls == 1
    assert usage["planner"].input_tokens > 0
    assert "planner=scripted-model" in response.models
    assert len(response.trace_id) == 32 and response.trace_id != "0" * 32


async def test_tool_error_is_observed_and_replanned(stack: Stack) -> None:
    s = stack
    s.llm.reply(
        when="plan",
        content=plan(
            {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_999"}}
        ),
    )
    s.llm.reply(
        when="plan",
        content=plan(
            {"id": "s2", "tool": "LedgerService_SearchVendors", "arguments": {"query": "spree"}}
        ),
    )
    s.llm.reply(when="answer", content=answer("found it by search"))
    events = await s.stream("Get vendor ven_999")

    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "plan" and kinds[-1] == "final"
    assert "replan_reason" in kinds
    final = events[-1].final
    assert final.status == agent_pb2.RUN_STATUS_SUCCEEDED, final.error
    assert final.plan.revision == 1
    s1 = step(final, "s1")
    assert s1.status == agent_pb2.STEP_STATUS_FAILED
    assert s1.error.code == "NOT_FOUND" and "ven_999" in s1.error.message
    # The replanning prompt carried the failure as an observation.
    second_plan = [r for r in s.llm.requests if schema_name(r) == "plan"][1]
    assert "NOT_FOUND" in json.dumps(second_plan["messages"])


async def test_response_schema_answer(stack: Stack) -> None:
    s = stack
    schema = {
        "type": "object",
        "properties": {"value": {"type": "number"}, "explanation": {"type": "string"}},
        "required": ["value"],
        "additionalProperties": False,
    }
    s.llm.reply(
        when="plan",
        content=plan(
            {"id": "s1", "tool": "CalculatorService_Evaluate", "arguments": {"expression": "6 7 *"}}
        ),
    )
    s.llm.reply(when="answer", content=answer({"value": 42, "explanation": "6*7"}))
    response = await s.run("What is 6 times 7?", response_schema=json.dumps(schema))
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    assert json_format.MessageToDict(response.output_json) == {"value": 42, "explanation": "6*7"}
    # The responder was asked for that schema, with its unbounded string bounded.
    answer_request = next(r for r in s.llm.requests if schema_name(r) == "answer")
    sent_schema = answer_request["response_format"]["json_schema"]["schema"]
    explanation = {"type": "string", "maxLength": 4000}  # limits.max_answer_chars
    assert sent_schema["properties"]["answer"] == {
        **schema,
        "properties": {**schema["properties"], "explanation": explanation},
    }


async def test_non_allowlisted_methods_are_never_called(stack: Stack) -> None:
    s = stack
    forbidden = [
        "LedgerService_ListTransactions",  # denied in the config
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        "Health_Check",
    ]
    for name in forbidden:
        s.llm.reply(when="plan", content=plan({"id": "s1", "tool": name, "arguments": {}}))
    response = await s.run("List all transactions")
    assert response.status == agent_pb2.RUN_STATUS_FAILED
    assert "no valid plan" in response.error
    assert s.ledger.calls == []
    tools = await s.stub.ListTools(agent_pb2.ListToolsRequest())
    names = {t.name for t in tools.tools}
    assert names.isdisjoint(forbidden)
    assert "LedgerService_GetVendor" in names


async def test_side_effect_stops_for_approval(stack: Stack) -> None:
    s = stack
    s.llm.reply(
        when="plan",
        content=plan(
            {
                "id": "s1",
                "tool": "LedgerService_UpdateVendor",
                "arguments": {
                    "vendor": {"id": "ven_001", "phone": "+49 30 000"},
                    "updateMask": "phone",
                },
            }
        ),
    )
    response = await s.run("Change the phone of ven_001")
    assert response.status == agent_pb2.RUN_STATUS_NEEDS_APPROVAL
    assert response.pending_call.tool == "LedgerService_UpdateVendor"
    assert response.pending_call.side_effects == "idempotent"
    assert json_format.MessageToDict(response.pending_call.arguments)["vendor"]["id"] == "ven_001"
    assert step(response, "s1").status == agent_pb2.STEP_STATUS_NEEDS_APPROVAL
    assert "UpdateVendor" not in s.ledger.calls


async def test_credentials_reach_upstream_and_never_the_model(stack: Stack) -> None:
    s = stack
    s.llm.reply(
        when="plan",
        content=plan(
            {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_003"}}
        ),
    )
    s.llm.reply(when="answer", content=answer("ok"))
    response = await s.run("Get ven_003")
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    assert s.ledger.seen_metadata[-1]["authorization"] == SECRET
    assert "s3cr3t" not in sent_to_model(s.llm)
    # The model endpoint got the configured API key, not the caller's token.
    assert all(h.get("authorization") == "Bearer sk-test-key" for h in s.llm.headers)
    stored = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=response.run_id))
    assert "s3cr3t" not in str(stored)
    assert stored.run_id == response.run_id and stored.status == response.status


async def test_react_baseline(stack: Stack) -> None:
    s = stack
    s.llm.reply(
        when="react_step",
        content={
            "call": {"tool": "CalculatorService_Evaluate", "arguments": {"expression": "2 3 ^"}}
        },
    )
    s.llm.reply(
        when="react_step", content={"call": {"tool": "final_answer", "arguments": {"answer": "8"}}}
    )
    response = await s.run("What is 2 to the 3rd?", mode=agent_pb2.LOOP_MODE_REACT)
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    assert response.output == "8"
    assert response.mode == agent_pb2.LOOP_MODE_REACT
    assert step(response, "r1").result["value"] == 8
    # The observation of the call was fed back before the final answer.
    prefix = "Observation (untrusted data): "
    fed_back = s.llm.requests[-1]["messages"][-1]["content"]
    assert fed_back.startswith(prefix)
    assert json.loads(fed_back.removeprefix(prefix))["result"]["value"] == 8


# --- the service ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"task": ""}, "task"),
        ({"task": "x" * 40_000}, "task"),
        ({"task": "t", "response_schema": "{not json"}, "response_schema"),
        ({"task": "t", "response_schema": '{"type": 12}'}, "response_schema"),
        ({"task": "t", "tools": ["NoSuchTool*"]}, "tools"),
        ({"task": "t", "limits": agent_pb2.Limits(max_steps=-1)}, "limits.max_steps"),
    ],
)
async def test_bad_requests_name_the_field(
    stack: Stack, fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.stub.Run(agent_pb2.RunRequest(**fields), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(named)
    # The daemon keeps serving.
    tools = await stack.stub.ListTools(agent_pb2.ListToolsRequest())
    assert tools.tools


async def test_get_run_unknown_id(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stack.stub.GetRun(agent_pb2.GetRunRequest(run_id="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_tools_marks_policy_and_side_effects(stack: Stack) -> None:
    response = await stack.stub.ListTools(agent_pb2.ListToolsRequest())
    by_name = {t.name: t for t in response.tools}
    update = by_name["LedgerService_UpdateVendor"]
    assert (update.side_effects, update.policy, update.upstream) == (
        "idempotent",
        "approve",
        "ledger",
    )
    get = by_name["LedgerService_GetVendor"]
    assert (get.side_effects, get.policy) == ("none", "allow")
    assert json.loads(get.input_schema)["properties"]["vendorId"]["type"] == "string"
    assert not response.unavailable_upstreams


async def test_tool_subset_narrows_the_plan_schema(stack: Stack) -> None:
    s = stack
    s.llm.reply(
        when="plan",
        content=plan(
            {"id": "s1", "tool": "CalculatorService_Evaluate", "arguments": {"expression": "1 1 +"}}
        ),
    )
    s.llm.reply(when="answer", content=answer("2"))
    response = await s.run("1+1", tools=["Calculator*"])
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    sent = json.dumps(s.llm.requests[0]["response_format"])
    assert "CalculatorService_Evaluate" in sent and "LedgerService_GetVendor" not in sent


async def test_upstream_down_at_start_is_reported(tmp_path: Path) -> None:
    llm = ScriptedLLM()
    await llm.start()
    calculator = await serve_calculator(reflection="v1alpha")
    config = load_config(write_config(tmp_path, llm, "127.0.0.1:1", calculator.address), env={})
    daemon = Daemon(config, env={})
    await daemon.start()
    try:
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            response = await stub.ListTools(agent_pb2.ListToolsRequest())
        reflected = [t.upstream for t in response.tools if t.upstream != "builtin"]
        assert reflected == ["calculator"]
        assert response.unavailable_upstreams[0].startswith("ledger:")
    finally:
        await daemon.stop(grace=0)
        await calculator.stop(None)
        await llm.stop()


async def test_agentd_serves_reflection_so_toolgen_can_preview_it(stack: Stack) -> None:
    import toolgen

    async with await toolgen.discover(
        stack.daemon.address, ["agentd.v1.AgentService/*"]
    ) as catalog:
        names = {t.name for t in catalog.tools}
        assert {"AgentService_Run", "AgentService_ListTools", "AgentService_GetRun"} <= names
        assert catalog["AgentService_RunStream"].kind == "server_streaming"  # issue 27
        listed = await catalog["AgentService_ListTools"].invoke({})
    assert "LedgerService_GetVendor" in {t["name"] for t in listed["tools"]}


def test_forwarded_metadata_can_be_renamed() -> None:
    from agentd.runs.runner import forward

    caller = [
        ("authorization", "Bearer agentd"),
        ("x-upstream-authorization", "Bearer up"),
        ("x", "1"),
    ]
    assert forward(caller, ["x-upstream-authorization=authorization"]) == (
        ("authorization", "Bearer up"),
    )
    assert forward(caller, ["Authorization"]) == (("authorization", "Bearer agentd"),)


# --- what grammars cannot hold is repaired by the model, never an internal error --------------


async def test_oneof_conflict_goes_back_to_the_planner_and_is_repaired(stack: Stack) -> None:
    s = stack
    both = {"vendorId": "ven_001", "category": "CATEGORY_RENT"}  # one oneof, two members
    s.llm.reply(
        when="plan",
        content=plan(
            {"id": "s1", "tool": "LedgerService_SummarizeTransactions", "arguments": both}
        ),
    )
    s.llm.reply(
        when="plan",
        content=plan(
            {
                "id": "s1",
                "tool": "LedgerService_SummarizeTransactions",
                "arguments": {"vendorId": "ven_001"},
            }
        ),
    )
    s.llm.reply(when="answer", content=answer("done"))
    response = await s.run("How much did we spend at ven_001?")
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    plans = [r for r in s.llm.requests if schema_name(r) == "plan"]
    assert len(plans) == 2
    assert "does not match its schema" in json.dumps(plans[1]["messages"][-1])
    assert s.ledger.calls == ["SummarizeTransactions"]  # the conflicting plan never ran


async def test_a_native_endpoint_gets_strict_plans_and_unset_fields_come_back_null(
    tmp_path: Path,
) -> None:
    from tests.test_model_schemas import strict_problems

    async for s in start_stack(tmp_path, env={"AGENTD_LLM_TOOL_CALL_MODE": "native"}):
        arguments = {"category": "CATEGORY_RENT", "groupBy": "DIMENSION_MONTH"}
        s.llm.reply(
            when="plan",
            content=plan(
                {"id": "s1", "tool": "LedgerService_SummarizeTransactions", "arguments": arguments}
            ),
        )
        s.llm.reply(when="answer", content=answer("rent per month"))
        response = await s.run("Rent per month?")
        assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
        request = next(r for r in s.llm.requests if schema_name(r) == "plan")
        spec = request["response_format"]["json_schema"]
        assert spec["strict"] is True
        assert list(strict_problems(spec["schema"])) == []
        # The scripted endpoint, like a strict one, wrote every unset field as null; the call
        # went out with only what the plan set.
        assert json_format.MessageToDict(step(response, "s1").arguments) == arguments
