"""A generated gRPC server for the discovery benchmarks: S services x M methods, reflection on.

``python -m bench._genserver --services 50 --methods 20`` builds the descriptors in code
(deterministic: same arguments, same bytes), serves every method with a generic
handler and prints "genserver listening on HOST:PORT". Eight messages per service
plus a shared file give 300+ message types at 50 services, two of them recursive
(``Tree`` per service and the shared ``Node``), with maps, oneofs, enums and a
well-known type, so the schema walk meets what real APIs have.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, timestamp_pb2

from toolgen.reflection_server import enable_reflection

PACKAGE = "bench.gen"
_F = descriptor_pb2.FieldDescriptorProto
_REQUESTS_PER_SERVICE = 3


def _field(
    message: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    kind: int,
    *,
    type_name: str = "",
    repeated: bool = False,
    oneof: int | None = None,
) -> None:
    field = message.field.add(name=name, number=number, type=kind)
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if type_name:
        field.type_name = type_name
    if oneof is not None:
        field.oneof_index = oneof


def _common() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="bench/gen/common.proto", package=PACKAGE, syntax="proto3"
    )
    level = fdp.enum_type.add(name="Level")
    for i, name in enumerate(("LEVEL_UNSPECIFIED", "LEVEL_LOW", "LEVEL_HIGH")):
        level.value.add(name=name, number=i)
    node = fdp.message_type.add(name="Node")
    _field(node, "name", 1, _F.TYPE_STRING)
    _field(node, "children", 2, _F.TYPE_MESSAGE, type_name=f".{PACKAGE}.Node", repeated=True)
    _field(node, "weight", 3, _F.TYPE_DOUBLE)
    meta = fdp.message_type.add(name="Meta")
    _field(meta, "id", 1, _F.TYPE_STRING)
    _field(meta, "created", 2, _F.TYPE_INT64)
    _field(meta, "tags", 3, _F.TYPE_STRING, repeated=True)
    _field(meta, "root", 4, _F.TYPE_MESSAGE, type_name=f".{PACKAGE}.Node")
    _field(meta, "level", 5, _F.TYPE_ENUM, type_name=f".{PACKAGE}.Level")
    return fdp


def _service_file(index: int, methods: int) -> descriptor_pb2.FileDescriptorProto:
    prefix = f"Svc{index:02d}"
    fdp = descriptor_pb2.FileDescriptorProto(
        name=f"bench/gen/svc{index:02d}.proto",
        package=PACKAGE,
        syntax="proto3",
        dependency=["bench/gen/common.proto", "google/protobuf/timestamp.proto"],
    )
    ref = f".{PACKAGE}.{prefix}"

    item = fdp.message_type.add(name=f"{prefix}Item")
    _field(item, "id", 1, _F.TYPE_STRING)
    _field(item, "count", 2, _F.TYPE_INT32)
    _field(item, "price", 3, _F.TYPE_DOUBLE)
    _field(item, "tags", 4, _F.TYPE_STRING, repeated=True)
    _field(item, "meta", 5, _F.TYPE_MESSAGE, type_name=f".{PACKAGE}.Meta")
    _field(item, "level", 6, _F.TYPE_ENUM, type_name=f".{PACKAGE}.Level")
    _field(item, "active", 7, _F.TYPE_BOOL)
    _field(item, "blob", 8, _F.TYPE_BYTES)
    entry = item.nested_type.add(name="LabelsEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, _F.TYPE_STRING)
    _field(entry, "value", 2, _F.TYPE_STRING)
    _field(item, "labels", 9, _F.TYPE_MESSAGE, type_name=f"{ref}Item.LabelsEntry", repeated=True)

    tree = fdp.message_type.add(name=f"{prefix}Tree")
    _field(tree, "label", 1, _F.TYPE_STRING)
    _field(tree, "children", 2, _F.TYPE_MESSAGE, type_name=f"{ref}Tree", repeated=True)
    _field(tree, "item", 3, _F.TYPE_MESSAGE, type_name=f"{ref}Item")
    _field(tree, "node", 4, _F.TYPE_MESSAGE, type_name=f".{PACKAGE}.Node")

    for k in range(_REQUESTS_PER_SERVICE):
        req = fdp.message_type.add(name=f"{prefix}Req{k}")
        req.oneof_decl.add(name="selector")
        _field(req, "query", 1, _F.TYPE_STRING)
        _field(req, "page_size", 2, _F.TYPE_INT32)
        _field(req, "filter", 3, _F.TYPE_MESSAGE, type_name=f"{ref}Item")
        _field(req, "ids", 4, _F.TYPE_STRING, repeated=True)
        _field(req, "name", 5, _F.TYPE_STRING, oneof=0)
        _field(req, "number", 6, _F.TYPE_INT64, oneof=0)
        resp = fdp.message_type.add(name=f"{prefix}Resp{k}")
        _field(resp, "items", 1, _F.TYPE_MESSAGE, type_name=f"{ref}Item", repeated=True)
        _field(resp, "tree", 2, _F.TYPE_MESSAGE, type_name=f"{ref}Tree")
        _field(resp, "next_page_token", 3, _F.TYPE_STRING)
        _field(resp, "meta", 4, _F.TYPE_MESSAGE, type_name=f".{PACKAGE}.Meta")
        _field(resp, "at", 5, _F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp")

    service = fdp.service.add(name=f"Service{index:02d}")
    for m in range(methods):
        k = m % _REQUESTS_PER_SERVICE
        service.method.add(
            name=f"Method{m:02d}", input_type=f"{ref}Req{k}", output_type=f"{ref}Resp{k}"
        )
    return fdp


def build(services: int, methods: int) -> tuple[descriptor_pool.DescriptorPool, list[str]]:
    """A pool with the generated files, and the full names of the services."""
    pool = descriptor_pool.DescriptorPool()
    timestamp = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(timestamp)
    pool.Add(timestamp)
    pool.Add(_common())
    names = []
    for index in range(services):
        fdp = _service_file(index, methods)
        pool.Add(fdp)
        names.append(f"{PACKAGE}.{fdp.service[0].name}")
    return pool, names


def message_count(pool: descriptor_pool.DescriptorPool, services: int) -> int:
    """Message types (nested map entries included) in the generated files."""

    def count(message: Any) -> int:
        return 1 + sum(count(n) for n in message.nested_types)

    files = ["bench/gen/common.proto"] + [f"bench/gen/svc{i:02d}.proto" for i in range(services)]
    return sum(
        count(m) for f in files for m in pool.FindFileByName(f).message_types_by_name.values()
    )


async def _empty(_request: bytes, _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return b""  # an empty message is a valid instance of every response type


async def serve(services: int, methods: int, port: int = 0) -> tuple[grpc.aio.Server, int]:
    pool, names = build(services, methods)
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(_empty)
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                name, {f"Method{m:02d}": handler for m in range(methods)}
            )
            for name in names
        ]
    )
    enable_reflection(server, names, pool=pool)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound


async def _main(services: int, methods: int) -> None:
    server, port = await serve(services, methods)
    print(f"genserver listening on 127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--methods", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(_main(args.services, args.methods))
