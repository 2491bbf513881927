"""The reflection client against real servers on 127.0.0.1: v1, v1alpha, failures."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

from examples.calculator.server import CalculatorServer
from examples.ledger.server import LedgerServer
from examples.ledger.server import serve as serve_ledger
from toolgen import (
    DependencyMissing,
    ReflectionUnavailable,
    Target,
    TargetUnreachable,
    discover,
)
from toolgen._reflection import build_pool, reflect

ROOT = Path(__file__).resolve().parent.parent
LEDGER = "examples.ledger.v1.LedgerService"
CALCULATOR = "examples.calculator.v1.CalculatorService"


def _include_dirs() -> list[str]:
    tools = importlib.util.find_spec("grpc_tools")
    api = importlib.util.find_spec("google.api")
    assert tools and tools.submodule_search_locations
    assert api and api.submodule_search_locations
    return [
        str(ROOT / "protos"),
        str(Path(tools.submodule_search_locations[0]) / "_proto"),
        str(Path(api.submodule_search_locations[0]).parent.parent),
    ]


def build_descriptor_set(out: Path, proto: str = "examples/ledger/v1/ledger.proto") -> Path:
    """A FileDescriptorSet with comments, made the way the docs tell users to."""
    args = ["protoc", *(f"-I{d}" for d in _include_dirs())]
    args += ["--include_source_info", "--include_imports", f"-o{out}", proto]
    assert protoc.main(args) == 0
    return out


@pytest.fixture
def ledger_set(tmp_path: Path) -> Path:
    return build_descriptor_set(tmp_path / "ledger.pb")


def free_port() -> int:
    """A port nothing listens on (bound, then released), so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_v1_only_server_uses_v1_and_resolves_dependencies(
    ledger_server: LedgerServer,
) -> None:
    channel = grpc.aio.insecure_channel(ledger_server.address)
    try:
        found = await reflect(channel, ledger_server.address, want=lambda s: s == LEDGER)
    finally:
        await channel.close(None)
    assert found.protocol == "v1"
    assert LEDGER in found.services
    assert found.resolved == (LEDGER,)
    for dependency in (
        "google/type/date.proto",
        "google/type/dayofweek.proto",
        "google/protobuf/timestamp.proto",
        "google/protobuf/field_mask.proto",
        "google/api/field_behavior.proto",
    ):
        assert dependency in found.files
    # The pool resolves types across files.
    vendor = found.pool.FindMessageTypeByName("examples.ledger.v1.Vendor")
    update_time = vendor.fields_by_name["update_time"].message_type
    assert update_time is not None
    assert update_time.full_name == "google.protobuf.Timestamp"


async def test_v1alpha_only_server_falls_back(calculator_server: CalculatorServer) -> None:
    async with await discover(calculator_server.address, [f"{CALCULATOR}/*"]) as catalog:
        assert catalog.protocols == {calculator_server.address: "v1alpha"}
        assert [t.name for t in catalog] == ["CalculatorService_Evaluate"]


async def test_fingerprint_is_stable_and_tracks_selection(ledger_server: LedgerServer) -> None:
    address = ledger_server.address
    async with await discover(address, [f"{LEDGER}/*"]) as first:
        async with await discover(address, [f"{LEDGER}/*"]) as second:
            assert first.fingerprint == second.fingerprint
        async with await discover(address, [f"{LEDGER}/*"], ["*/UpdateVendor"]) as denied:
            assert denied.fingerprint != first.fingerprint
        # More services selected means more files, hence other descriptors.
        async with await discover(address, ["*"]) as everything:
            assert everything.fingerprint != first.fingerprint
            assert everything.get("Health_Check") is not None
        # Nothing changed on the server: a refresh keeps the tools as they are.
        tools = first.tools
        assert await first.refresh() is False
        assert first.tools is tools


async def test_unreachable_target() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(TargetUnreachable) as caught:
        await discover(Target(address, connect_timeout=5), ["*"])
    assert "connection refused" in str(caught.value)
    assert address in str(caught.value)


async def test_server_without_reflection() -> None:
    server = await serve_ledger(reflection="none")
    try:
        with pytest.raises(ReflectionUnavailable) as caught:
            await discover(server.address, ["*"])
        assert "--descriptor-set" in str(caught.value)
    finally:
        await server.stop(None)


async def test_descriptor_set_replaces_missing_reflection(ledger_set: Path) -> None:
    server = await serve_ledger(reflection="none")
    try:
        async with await discover(
            server.address, [f"{LEDGER}/GetVendor"], descriptor_set=ledger_set
        ) as catalog:
            assert catalog.protocols == {server.address: "descriptor-set"}
            vendor = await catalog["LedgerService_GetVendor"].invoke({"vendorId": "ven_007"})
            assert vendor["id"] == "ven_007"
    finally:
        await server.stop(None)


async def test_descriptor_set_comments_become_descriptions(
    ledger_server: LedgerServer, ledger_set: Path
) -> None:
    async with await discover(ledger_server.address, [f"{LEDGER}/*"]) as plain:
        # Python servers send no comments: the description is generated.
        assert plain["LedgerService_GetVendor"].description.startswith("Calls the gRPC method")
    async with await discover(
        ledger_server.address, [f"{LEDGER}/*"], descriptor_set=ledger_set
    ) as commented:
        tool = commented["LedgerService_GetVendor"]
        assert tool.description.startswith("Returns one vendor by id.")
        field = tool.input_schema["properties"]["vendorId"]
        assert "ven_007" in field.get("description", "")


def test_missing_dependency_is_named() -> None:
    orphan = descriptor_pb2.FileDescriptorProto(
        name="orphan.proto", package="x", dependency=["not/there.proto"], syntax="proto3"
    )
    with pytest.raises(DependencyMissing) as caught:
        build_pool([orphan], address="test")
    assert caught.value.filename == "not/there.proto"
    assert caught.value.needed_by == "orphan.proto"
