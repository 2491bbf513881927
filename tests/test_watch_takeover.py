"""WatchRun across a takeover: two ``agentd serve`` replicas on one PostgreSQL, the replica
running a run killed with -9 mid-run, the other taking the run over once its lease lapses.
A watcher on the survivor keeps following the run; one on the dead replica re-attaches there
with its cursor. What docs/streaming.md promises on a replica's death: the stream fails
UNAVAILABLE, the resumed run numbers on after the last stored event, events streamed but never
stored may be lost (a cursor past them skips as many), the final record always arrives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from agentd.v1 import agent_pb2
from tests.support.outbox import Outbox
from tests.test_store import postgres, postgres_url
from tests.test_takeover import config, started, stop
from tests.test_takeover import upstreams as takeover_upstreams
from tests.test_watch import collect, held_stream, key, script, until_held, watch

__all__ = ["postgres", "postgres_url", "takeover_upstreams"]  # fixtures used here


async def read_through(call: Any, kind: str, step_id: str) -> list[agent_pb2.RunEvent]:
    """Events from ``call`` up to the first ``kind`` event of ``step_id``; the call stays
    open (bounded by the watch's own deadline)."""
    seen = []
    while (event := await call.read()) != grpc.aio.EOF:
        seen.append(event)
        if event.WhichOneof("event") == kind and getattr(event, kind).id == step_id:
            return seen
    raise AssertionError(f"the watch ended before {kind} {step_id}: {seen}")


def steps(events: list[agent_pb2.RunEvent], kind: str) -> list[str]:
    return [getattr(e, kind).id for e in events if e.WhichOneof("event") == kind]


async def test_a_watcher_follows_a_run_across_a_takeover_after_its_replica_is_killed(
    tmp_path: Path, takeover_upstreams: tuple[Any, Outbox], postgres_url: str
) -> None:
    llm, outbox = takeover_upstreams
    path = config(tmp_path, llm, outbox, postgres_url, "allow")  # leases of 1.5 s
    a, b = await started(path), await started(path)
    to_a = grpc.aio.insecure_channel(a.address)
    try:
        async with grpc.aio.insecure_channel(b.address) as to_b:
            stub_a, stub_b = a.stub(to_a), b.stub(to_b)
            script(llm)  # s1 Lookup a, s2 Lookup b (held in flight), s3 Lookup c: all safe
            streaming, first = await held_stream(stub_a, ())
            run_id = first.run_id
            await until_held(outbox)
            # On A, which runs it: live from its feed, through s2's start (which A may not
            # have stored yet). On B, following the store: through s1's end (stored with its
            # snapshot), so the events up to there are in the store before A dies.
            on_a = watch(stub_a, run_id)
            seen_on_a = await read_through(on_a, "step_started", "s2")
            on_b = watch(stub_b, run_id)
            seen_on_b = await read_through(on_b, "step_finished", "s1")
            before_death = list(seen_on_b)

            assert a.proc is not None
            a.proc.kill()
            await a.proc.wait()
            # Everyone attached to A: UNAVAILABLE.
            with pytest.raises(grpc.aio.AioRpcError) as run_stream:
                await streaming
            assert run_stream.value.code() == grpc.StatusCode.UNAVAILABLE
            with pytest.raises(grpc.aio.AioRpcError) as watch_on_a:
                await collect(on_a)
            assert watch_on_a.value.code() == grpc.StatusCode.UNAVAILABLE
            outbox.release()  # the call the dead replica made ends (to nobody); repeats pass

            # B's watcher goes on across B's takeover of the run, to its end.
            seen_on_b += await collect(on_b)
            # A's watcher re-attaches on B with the last number it received.
            cursor = seen_on_a[-1].sequence
            rest_on_a = await collect(watch(stub_b, run_id, cursor))
            stored = await collect(watch(stub_b, run_id))

            # The run was taken over and finished: s2 (no side effects, in flight) retried,
            # s1 (ended before the death) not run again.
            record = await stub_b.GetRun(agent_pb2.GetRunRequest(run_id=run_id), timeout=10)
            assert record.status == agent_pb2.RUN_STATUS_SUCCEEDED, record.error
            assert record.resumes == 1
            assert outbox.count("Lookup", "a") == 1
            assert outbox.count("Lookup", "b") == 2
            assert outbox.count("Lookup", "c") == 1

            # The store: numbered 1, 2, 3, ... with no gap (the resumed part numbers on after
            # the last stored event), each step finished once, ending with the record.
            assert [e.sequence for e in stored] == list(range(1, len(stored) + 1))
            assert steps(stored, "step_finished") == ["s1", "s2", "s3"]
            assert stored[-1].final.status == agent_pb2.RUN_STATUS_SUCCEEDED
            assert stored[-1].final.output == "looked up a, b and c"
            assert stored[-1].final.resumes == 1
            assert sum(e.HasField("final") for e in stored) == 1

            # B's watcher: every event exactly once and in order, the ones before the death
            # then the resumed part's, as stored.
            assert [key(e) for e in seen_on_b] == [key(e) for e in stored]
            # What both watchers saw before the death is what was stored.
            n = len(before_death)
            assert [key(e) for e in seen_on_a[:n]] == [key(e) for e in stored[:n]]
            assert [key(e) for e in before_death] == [key(e) for e in stored[:n]]

            # A's watcher: 1..cursor live from A, then exactly the stored events after its
            # cursor, each once, to the end. The number at its cursor is s2's start: A's,
            # if A stored it, else the resumed part's (which the cursor then skips, as
            # promised for an event streamed but never stored).
            assert [e.sequence for e in seen_on_a] == list(range(1, cursor + 1))
            assert cursor == n + 1 and steps(stored[n : n + 1], "step_started") == ["s2"]
            assert [key(e) for e in rest_on_a] == [key(e) for e in stored[cursor:]]
            assert rest_on_a[-1].final.status == agent_pb2.RUN_STATUS_SUCCEEDED
            # The resumed part starts s2 again: on its own (if A never stored its start),
            # or after A's stored start.
            assert steps(stored[n:], "step_started") in (["s2", "s3"], ["s2", "s2", "s3"])
    finally:
        await to_a.close()
        await stop(a, b)
