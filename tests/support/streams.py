"""The streams test upstream (tests/protos/streams): server streams as long, large and slow
as asked, client streams that record every item, a bidirectional echo; served on 127.0.0.1
with reflection, recording how each server stream ended."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from tests.support.outbox import compile_proto, start_server


def modules() -> tuple[Any, Any]:
    return compile_proto("streams")


@dataclass
class Streams:
    port: int = 0
    server: Any = None
    #: Per client-streaming call: (method, the indexes received in order).
    uploads: list[tuple[str, list[int]]] = field(default_factory=list)
    #: Per server-streaming call: (method, items sent, whether it was stopped before the end).
    sent: list[tuple[str, int, bool]] = field(default_factory=list)
    #: Set when a server stream ends (completed or cancelled).
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set when a server stream has sent its first item.
    first_sent: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        await self.server.stop(None)


async def serve_streams() -> Streams:
    pb2, pb2_grpc = modules()
    streams = Streams()

    async def send(method: str, request: Any, context: Any) -> Any:
        sent = 0
        try:
            for index in range(request.count):
                if request.delay_ms:
                    await asyncio.sleep(request.delay_ms / 1000)
                yield pb2.Item(index=index, text="x" * request.size)
                sent += 1
                streams.first_sent.set()
        finally:
            # Closed before the last item (cancelled, or closed by grpc): the client stopped it.
            streams.sent.append((method, sent, sent < request.count))
            streams.ended.set()

    async def receive(method: str, requests: Any) -> Any:
        indexes = [item.index async for item in requests]
        streams.uploads.append((method, indexes))
        return pb2.UploadSummary(received=len(indexes), indexes=indexes)

    class Servicer(pb2_grpc.StreamServiceServicer):  # type: ignore[name-defined,misc]
        async def Count(self, request: Any, context: Any) -> Any:
            async for item in send("Count", request, context):
                yield item

        async def Drain(self, request: Any, context: Any) -> Any:
            async for item in send("Drain", request, context):
                yield item

        async def Upload(self, requests: Any, context: Any) -> Any:
            return await receive("Upload", requests)

        async def Total(self, requests: Any, context: Any) -> Any:
            return await receive("Total", requests)

        async def Echo(self, requests: Any, context: Any) -> Any:
            async for item in requests:
                yield item

    streams.server, streams.port = await start_server(pb2, pb2_grpc, "StreamService", Servicer())
    return streams
