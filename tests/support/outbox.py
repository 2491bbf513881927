"""The outbox test upstream (tests/protos/outbox): compiled when first used, served on
127.0.0.1 with reflection, counting every call and able to hold calls in flight."""

from __future__ import annotations

import asyncio
import atexit
import functools
import importlib
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
from grpc_reflection.v1alpha import reflection

PROTOS = Path(__file__).resolve().parent.parent / "protos"


@functools.cache
def compile_proto(package: str) -> tuple[ModuleType, ModuleType]:
    """``package``'s pb2 and pb2_grpc modules (tests/protos/PACKAGE/v1/PACKAGE.proto),
    generated into a temporary folder."""
    from grpc_tools import protoc

    out = Path(tempfile.mkdtemp(prefix=f"{package}-pb2-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    source = f"{package}/v1/{package}.proto"
    code = protoc.main(
        ["protoc", f"-I{PROTOS}", f"--python_out={out}", f"--grpc_python_out={out}", source]
    )
    assert code == 0, f"protoc failed on {source}"
    sys.path.insert(0, str(out))
    return (
        importlib.import_module(f"{package}.v1.{package}_pb2"),
        importlib.import_module(f"{package}.v1.{package}_pb2_grpc"),
    )


def modules() -> tuple[ModuleType, ModuleType]:
    """outbox_pb2 and outbox_pb2_grpc."""
    return compile_proto("outbox")


@dataclass
class Outbox:
    """What the test sees: calls per method (with their idempotency keys), and the gate that
    calls with ``hold`` wait at until ``release()``. A call for "flaky" fails UNAVAILABLE
    the first time."""

    port: int = 0
    server: Any = None
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, argument)
    keys: list[tuple[str, str]] = field(default_factory=list)  # (method, idempotency key)
    # (method, argument, every metadata entry of the call): what credentials each call carried
    metadata: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def count(self, method: str, argument: str | None = None) -> int:
        return sum(1 for m, a in self.calls if m == method and argument in (None, a))

    def seen(self, header: str) -> list[tuple[str, str, str]]:
        """(method, argument, value of ``header`` or "") of every call, in order."""
        return [(m, a, md.get(header, "")) for m, a, md in self.metadata]

    def release(self) -> None:
        self.gate.set()

    async def stop(self) -> None:
        self.release()
        await self.server.stop(None)


async def serve_outbox() -> Outbox:
    pb2, pb2_grpc = modules()
    outbox = Outbox()

    async def seen(method: str, argument: str, context: Any) -> None:
        outbox.calls.append((method, argument))
        metadata = dict(context.invocation_metadata() or ())
        outbox.keys.append((method, metadata.get("x-agentd-idempotency-key", "")))
        outbox.metadata.append((method, argument, metadata))
        if argument == "flaky" and outbox.count(method, argument) == 1:  # fails once
            await context.abort(grpc.StatusCode.UNAVAILABLE, "flaky: try again")

    class Servicer(pb2_grpc.OutboxServiceServicer):  # type: ignore[name-defined,misc]
        async def Lookup(self, request: Any, context: Any) -> Any:
            await seen("Lookup", request.key, context)
            if request.hold:
                await outbox.gate.wait()
            return pb2.LookupResponse(key=request.key, value=f"value of {request.key}")

        async def Send(self, request: Any, context: Any) -> Any:
            await seen("Send", request.to, context)
            if request.hold:
                await outbox.gate.wait()
            return pb2.SendResponse(id=f"msg-{len(outbox.calls)}")

    outbox.server, outbox.port = await start_server(pb2, pb2_grpc, "OutboxService", Servicer())
    return outbox


async def start_server(pb2: Any, pb2_grpc: Any, service: str, servicer: Any) -> tuple[Any, int]:
    """``servicer`` serving ``service`` with reflection on 127.0.0.1: (server, port)."""
    server = grpc.aio.server()
    getattr(pb2_grpc, f"add_{service}Servicer_to_server")(servicer, server)
    name = pb2.DESCRIPTOR.services_by_name[service].full_name
    reflection.enable_server_reflection([name, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port
