"""Server reflection for `grpc.aio` servers over both `grpc.reflection.v1` and `v1alpha`.

grpcio-reflection serves only `v1alpha`, while clients such as grpcurl and
agentd's own client ask for `v1` first. The two protocols are wire-identical
(only the package name differs), so the v1 servicer here converts each message
by serialize/parse and lets grpcio-reflection's servicer do all the work:
descriptor lookup, transitive dependencies and error responses stay theirs.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence

import grpc
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2

# What `reflection.aio` re-exports; imported directly because mypy cannot see that alias.
from grpc_reflection.v1alpha._async import ReflectionServicer as _AioV1alphaServicer

from toolgen.protos import reflection_v1_pb2 as v1_pb2
from toolgen.protos import reflection_v1_pb2_grpc as v1_pb2_grpc

V1_SERVICE_NAME: str = v1_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name
V1ALPHA_SERVICE_NAME: str = reflection.SERVICE_NAME

_SERVICE_NAMES = {"v1": V1_SERVICE_NAME, "v1alpha": V1ALPHA_SERVICE_NAME}


class V1ReflectionServicer(v1_pb2_grpc.ServerReflectionServicer):
    """`grpc.reflection.v1` for grpc.aio, answered by grpcio-reflection's v1alpha servicer."""

    def __init__(
        self, service_names: Sequence[str], pool: descriptor_pool.DescriptorPool | None = None
    ) -> None:
        self._v1alpha = _AioV1alphaServicer(service_names, pool=pool)

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
) -> None:
    """Serve reflection for `service_names` on `server` over the given protocol versions.

    The reflection services themselves are added to the listed names, as
    grpcio-reflection's own `enable_server_reflection` expects callers to do.
    A version left out is not registered at all, so a client asking for it
    gets UNIMPLEMENTED, which is what real servers that lack it answer.
    """
    unknown = [v for v in versions if v not in _SERVICE_NAMES]
    if unknown:
        raise ValueError(f"unknown reflection version(s) {unknown}; expected 'v1' or 'v1alpha'")
    names = list(dict.fromkeys([*service_names, *(_SERVICE_NAMES[v] for v in versions)]))
    if "v1" in versions:
        v1_pb2_grpc.add_ServerReflectionServicer_to_server(
            V1ReflectionServicer(names, pool=pool), server
        )
    if "v1alpha" in versions:
        reflection.enable_server_reflection(names, server, pool=pool)
