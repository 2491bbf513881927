"""Server reflection for `grpc.aio` servers over both `grpc.reflection.v1` and `v1alpha`.

grpcio-reflection serves only `v1alpha`, while clients such as grpcurl and
agentd's own client ask for `v1` first. The two protocols are wire-identical
(only the package name differs), so the v1 servicer here converts each message
by serialize/parse and lets grpcio-reflection's servicer do all the work:
descriptor lookup, transitive dependencies and error responses stay theirs.

Python's descriptor pools keep no `source_code_info`, so a server's own descriptors
reach clients without their comments. `commented` files (from a descriptor set made
with `protoc --include_source_info`) put them back: each answer carrying one of
those files gets the pool's descriptor with the set's comments attached.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc as v1alpha_pb2_grpc

# What `reflection.aio` re-exports; imported directly because mypy cannot see that alias.
from grpc_reflection.v1alpha._async import ReflectionServicer as _AioV1alphaServicer

from toolgen.protos import reflection_v1_pb2 as v1_pb2
from toolgen.protos import reflection_v1_pb2_grpc as v1_pb2_grpc

V1_SERVICE_NAME: str = v1_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name
V1ALPHA_SERVICE_NAME: str = reflection.SERVICE_NAME

_SERVICE_NAMES = {"v1": V1_SERVICE_NAME, "v1alpha": V1ALPHA_SERVICE_NAME}
log = logging.getLogger(__name__)


def _without_json_names(proto: descriptor_pb2.FileDescriptorProto) -> bytes:
    """The file's structure for comparison: protoc writes json_name, a pool may not."""
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(proto)
    copy.ClearField("source_code_info")
    messages = list(copy.message_type)
    while messages:
        message = messages.pop()
        for field in [*message.field, *message.extension]:
            field.ClearField("json_name")
        messages += message.nested_type
    for field in copy.extension:
        field.ClearField("json_name")
    return copy.SerializeToString(deterministic=True)


def commented_files(
    pool: descriptor_pool.DescriptorPool,
    commented: Iterable[descriptor_pb2.FileDescriptorProto],
) -> dict[str, bytes]:
    """File name → the serialized descriptor the pool has for it, with `commented`'s
    `source_code_info`. A file the pool lacks, or whose structure differs from the pool's
    (a descriptor set older than the generated code), is left out with a warning: its
    locations would point at the wrong elements."""
    out: dict[str, bytes] = {}
    for file in commented:
        try:
            served = descriptor_pb2.FileDescriptorProto()
            pool.FindFileByName(file.name).CopyToProto(served)
        except KeyError:
            log.warning("reflection: %s is not in the descriptor pool; served without comments",
                        file.name)  # fmt: skip
            continue
        if _without_json_names(served) != _without_json_names(file):
            log.warning("reflection: the commented descriptor of %s differs from the generated "
                        "code (regenerate both); served without comments", file.name)  # fmt: skip
            continue
        served.source_code_info.CopyFrom(file.source_code_info)
        out[file.name] = served.SerializeToString()
    return out


class CommentedV1alphaServicer(_AioV1alphaServicer):
    """grpcio-reflection's v1alpha servicer whose file answers carry the comments of
    `commented` files (see `commented_files`)."""

    def __init__(
        self,
        service_names: Sequence[str],
        pool: descriptor_pool.DescriptorPool | None = None,
        commented: Iterable[descriptor_pb2.FileDescriptorProto] = (),
    ) -> None:
        super().__init__(service_names, pool=pool)
        self._commented = commented_files(self._pool, commented)

    async def ServerReflectionInfo(  # type: ignore[override]
        self,
        request_iterator: AsyncIterable[v1alpha_pb2.ServerReflectionRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[v1alpha_pb2.ServerReflectionResponse]:
        async for response in super().ServerReflectionInfo(request_iterator, context):
            if self._commented and response.HasField("file_descriptor_response"):
                files = response.file_descriptor_response.file_descriptor_proto
                for i, serialized in enumerate(files):
                    name = descriptor_pb2.FileDescriptorProto.FromString(serialized).name
                    if name in self._commented:
                        files[i] = self._commented[name]
            yield response


class V1ReflectionServicer(v1_pb2_grpc.ServerReflectionServicer):
    """`grpc.reflection.v1` for grpc.aio, answered by grpcio-reflection's v1alpha servicer."""

    def __init__(
        self,
        service_names: Sequence[str],
        pool: descriptor_pool.DescriptorPool | None = None,
        commented: Iterable[descriptor_pb2.FileDescriptorProto] = (),
    ) -> None:
        self._v1alpha = CommentedV1alphaServicer(service_names, pool=pool, commented=commented)

    async def ServerReflectionInfo(
        self,
        request_iterator: AsyncIterable[v1_pb2.ServerReflectionRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[v1_pb2.ServerReflectionResponse]:
        """Answer each v1 request with the v1alpha servicer, converting on the way."""

        async def as_v1alpha() -> AsyncIterator[v1alpha_pb2.ServerReflectionRequest]:
            async for request in request_iterator:
                yield v1alpha_pb2.ServerReflectionRequest.FromString(request.SerializeToString())

        async for response in self._v1alpha.ServerReflectionInfo(as_v1alpha(), context):
            yield v1_pb2.ServerReflectionResponse.FromString(response.SerializeToString())


def enable_reflection(
    server: grpc.aio.Server,
    service_names: Sequence[str],
    versions: Sequence[str] = ("v1", "v1alpha"),
    *,
    pool: descriptor_pool.DescriptorPool | None = None,
    commented: Iterable[descriptor_pb2.FileDescriptorProto] = (),
) -> None:
    """Serve reflection for `service_names` on `server` over the given protocol versions.

    The reflection services themselves are added to the listed names, as
    grpcio-reflection's own `enable_server_reflection` expects callers to do.
    A version left out is not registered at all, so a client asking for it
    gets UNIMPLEMENTED, which is what real servers that lack it answer.
    `commented`: descriptors with `source_code_info` whose comments are served
    (see `commented_files`).
    """
    unknown = [v for v in versions if v not in _SERVICE_NAMES]
    if unknown:
        raise ValueError(f"unknown reflection version(s) {unknown}; expected 'v1' or 'v1alpha'")
    names = list(dict.fromkeys([*service_names, *(_SERVICE_NAMES[v] for v in versions)]))
    commented = list(commented)
    if "v1" in versions:
        v1_pb2_grpc.add_ServerReflectionServicer_to_server(
            V1ReflectionServicer(names, pool=pool, commented=commented), server
        )
    if "v1alpha" in versions:
        v1alpha_pb2_grpc.add_ServerReflectionServicer_to_server(
            CommentedV1alphaServicer(names, pool=pool, commented=commented), server
        )
