"""The answer as it is decoded: how soon a caller reads it, and what streaming costs.

- ``answer_first_token``: ``RunStream`` on a daemon (a child process) whose scripted model
  decodes its replies at a steady pace (server-sent events, ``chunk_delay_s`` apart): seconds
  from the call to the first ``answer_delta``, against seconds to the final event.
- ``answer_first_token_embedded``: the same on the embedded llama.cpp model (the example
  config, an in-process daemon, the calculator task of tests/test_embedded_run.py).
- ``stream_cpu_overhead``: the daemon's CPU per run with ``RunStream`` (events, answer
  deltas, the model streamed) against ``Run`` (one JSON reply per model call), on the same
  work: a plan of 3 calculator calls and a 600-character answer, 50 runs at a time; medians of
  5 alternating repetitions. Its details also give ``RunStream`` with ``agent.stream_answer``
  off (the event stream alone, the model not streamed: ``events_only_ratio``), and what
  decoding the two replies as server-sent events costs by itself against one JSON body each
  (the part of the overhead that is the bytes of a streamed response).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from bench import _stack
from bench._common import Result, load, proc_cpu_ms
from bench._procs import child
from tests.support.scripted_llm import Reply, ScriptedLLM, schema_name

STREAM_GOAL = 1.1
_ANSWER = ("The three sums are 2, 4 and 6; together they make 12. " * 11).strip()
_TASK = "Evaluate three expressions."
_CALCULATOR = ["-m", "examples.calculator", "--port", "0", "--reflection", "v1alpha"]


def _plan() -> dict[str, Any]:
    return _stack.plan(
        *(
            {
                "id": f"s{i}",
                "tool": "CalculatorService_Evaluate",
                "arguments": {"expression": f"{i} {i} +"},
            }
            for i in range(1, 4)
        )
    )


def _respond(body: dict[str, Any]) -> Reply | None:
    name = schema_name(body)
    if name == "plan":
        return Reply(content=_plan())
    if name == "answer":
        return Reply(content={"answer": _ANSWER, "missing": None})
    return None


async def run(quick: bool, only: Sequence[str] = ()) -> list[Result]:
    results = []
    if "answer_first_token" in only:
        results.append(await answer_first_token(quick))
    if "answer_first_token_embedded" in only:
        results.append(await answer_first_token_embedded(quick))
    if "stream_cpu_overhead" in only:
        results.append(await stream_cpu_overhead(quick))
    return results


async def _timed_stream(stub: Any, request: Any, metadata: Any = ()) -> tuple[float, float, str]:
    """(seconds to the first answer delta, seconds to the final event, the final output)."""
    start = time.perf_counter()
    first = 0.0
    output = ""
    async for event in stub.RunStream(request, metadata=metadata, timeout=600):
        kind = event.WhichOneof("event")
        if kind == "answer_delta" and event.answer_delta and not first:
            first = time.perf_counter() - start
        elif kind == "final":
            output = event.final.output
    return first, time.perf_counter() - start, output


def _row(
    name: str, firsts: list[float], finals: list[float], quick: bool, **details: Any
) -> Result:
    first, final = statistics.median(firsts), statistics.median(finals)
    return Result(
        name=name,
        value=first,
        unit="s to the first answer token",
        baseline=final,
        goal="report (baseline: s to the final answer)",
        met=all(firsts),
        quick=quick,
        details={
            "first_token_s": [round(x, 3) for x in firsts],
            "final_s": [round(x, 3) for x in finals],
            **details,
        },
    )


async def answer_first_token(quick: bool) -> Result:
    from agentd.v1 import agent_pb2, agent_pb2_grpc

    # 20 ms before each reply, then about 100 tokens a second (4 characters a chunk).
    llm = ScriptedLLM(latency_s=0.02, chunk_delay_s=0.01)
    await llm.start()
    llm.responder(_respond)
    firsts, finals = [], []
    try:
        with tempfile.TemporaryDirectory(prefix="agentd-bench-") as name:
            tmp = Path(name)
            async with child(_CALCULATOR) as (_calc, calculator):
                config = _stack.write_config(
                    tmp, llm_url=llm.base_url, ledger=calculator, calculator=calculator
                )
                async with (
                    child(["-m", "agentd", "serve", "--config", str(config)]) as (_d, address),
                    grpc.aio.insecure_channel(address) as channel,
                ):
                    stub = agent_pb2_grpc.AgentServiceStub(channel)
                    request = agent_pb2.RunRequest(task=_TASK)
                    metadata = (("authorization", _stack.SECRET),)
                    await _timed_stream(stub, request, metadata)  # warm-up
                    for _ in range(3 if quick else 10):
                        first, final, output = await _timed_stream(stub, request, metadata)
                        assert output == _ANSWER, output
                        firsts.append(first)
                        finals.append(final)
    finally:
        await llm.stop()
    return _row(
        "answer_first_token",
        firsts,
        finals,
        quick,
        model="scripted, 20 ms a reply then 10 ms a chunk of about 4 characters",
        answer_chars=len(_ANSWER),
    )


async def answer_first_token_embedded(quick: bool) -> Result:
    if importlib.util.find_spec("xllamacpp") is None:
        return Result("answer_first_token_embedded", 0.0, "s", "report", met=True, quick=quick,
                      details={"unavailable": "xllamacpp is not installed"})  # fmt: skip
    from agentd.api.server import Daemon
    from agentd.config import load_config
    from agentd.llm import DEFAULT_MODEL
    from agentd.v1 import agent_pb2, agent_pb2_grpc
    from examples.calculator.server import serve as serve_calculator

    root = Path(__file__).resolve().parent.parent
    calculator = await serve_calculator(0, reflection="v1alpha")
    firsts, finals = [], []
    load_before = load()
    with tempfile.TemporaryDirectory(prefix="agentd-bench-") as name:
        config = load_config(root / "examples" / "agentd.toml", env={})
        config = dataclasses.replace(
            config,
            upstreams=tuple(
                dataclasses.replace(u, target=calculator.address)
                for u in config.upstreams
                if u.name == "calculator"
            ),
            server=dataclasses.replace(config.server, listen="127.0.0.1:0"),
            storage=dataclasses.replace(config.storage, path=str(Path(name) / "runs.db")),
        )
        daemon = Daemon(config, env={})
        await daemon.start()
        try:
            async with grpc.aio.insecure_channel(daemon.address) as channel:
                stub = agent_pb2_grpc.AgentServiceStub(channel)
                request = agent_pb2.RunRequest(
                    task="Evaluate the RPN expression 3 4 + 5 * with the calculator.",
                    tools=["CalculatorService_Evaluate"],
                    limits=agent_pb2.Limits(max_steps=2),
                )
                await _timed_stream(stub, request)  # warm-up: the prompt cache
                for _ in range(2 if quick else 5):
                    first, final, _output = await _timed_stream(stub, request)
                    firsts.append(first)
                    finals.append(final)
        finally:
            await daemon.stop(grace=0)
            await calculator.stop(None)
    return _row(
        "answer_first_token_embedded",
        firsts,
        finals,
        quick,
        model=DEFAULT_MODEL,
        load_before=load_before,
        load_after=load(),
    )


# The modes measured: Run; RunStream as it is by default (the answer streamed token by token);
# RunStream with agent.stream_answer off (step events and the final only, the model not
# streamed): what the event stream itself costs.
_MODES = {
    "run": (False, {}),
    "stream": (True, {}),
    "events_only": (True, {"AGENTD_AGENT_STREAM_ANSWER": "false"}),
}


async def _cpu_per_run(
    tmp: Path, llm: ScriptedLLM, calculator: str, mode: str, runs: int
) -> tuple[float, int]:
    """(agentd CPU ms per run, failed runs) of one daemon answering in ``mode`` (_MODES)."""
    from agentd.v1 import agent_pb2, agent_pb2_grpc

    stream, env = _MODES[mode]
    folder = tmp / mode
    folder.mkdir(parents=True)
    config = _stack.write_config(
        folder, llm_url=llm.base_url, ledger=calculator, calculator=calculator
    )
    serve = ["-m", "agentd", "serve", "--config", str(config)]
    async with (
        child(serve, env=env) as (daemon, address),
        grpc.aio.insecure_channel(address) as channel,
    ):
        stub = agent_pb2_grpc.AgentServiceStub(channel)
        request = agent_pb2.RunRequest(task=_TASK)
        metadata = (("authorization", _stack.SECRET),)
        await _calculator_listed(stub, metadata)

        async def one() -> bool:
            if stream:
                events = [e async for e in stub.RunStream(request, metadata=metadata, timeout=120)]
                final = events[-1].final
            else:
                final = await stub.Run(request, metadata=metadata, timeout=120)
            return bool(final.status == agent_pb2.RUN_STATUS_SUCCEEDED and final.output == _ANSWER)

        await asyncio.gather(*(one() for _ in range(10)))  # warm-up
        before = proc_cpu_ms(daemon.pid)
        outcomes = []
        for _ in range(runs // 50):
            outcomes += await asyncio.gather(*(one() for _ in range(50)))
        cpu = proc_cpu_ms(daemon.pid) - before
    return cpu / len(outcomes), outcomes.count(False)


async def _calculator_listed(stub: Any, metadata: Any) -> None:
    """Waits until the daemon lists the calculator's tool: its reflection of the shared
    calculator child sometimes fails at start-up (INTERNAL) and is retried, and a run before
    then has no tool to plan with."""
    from agentd.v1 import agent_pb2

    for _ in range(300):  # bounded; ends as soon as the tool is listed
        tools = await stub.ListTools(agent_pb2.ListToolsRequest(), metadata=metadata, timeout=10)
        if any(t.name == "CalculatorService_Evaluate" for t in tools.tools):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(
        f"the daemon never listed the calculator: {list(tools.unavailable_upstreams)}"
    )


async def stream_cpu_overhead(quick: bool) -> Result:
    runs = 100 if quick else 500
    llm = ScriptedLLM(latency_s=0.02)
    await llm.start()
    llm.responder(_respond)
    cpu: dict[str, list[float]] = {mode: [] for mode in _MODES}
    failed = 0
    try:
        with tempfile.TemporaryDirectory(prefix="agentd-bench-") as name:
            tmp = Path(name)
            async with child(_CALCULATOR) as (_calc, calculator):
                # Alternating, each first in turn, so drift in the machine's load hits all.
                order = list(_MODES)
                for i in range(2 if quick else 5):
                    for mode in order[i % 3 :] + order[: i % 3]:
                        ms, bad = await _cpu_per_run(tmp / f"r{i}", llm, calculator, mode, runs)
                        cpu[mode].append(ms)
                        failed += bad
    finally:
        await llm.stop()
    unary, streamed = cpu["run"], cpu["stream"]
    ours, base = statistics.median(streamed), statistics.median(unary)
    ratio = ours / base if base else 0.0
    events_only = statistics.median(cpu["events_only"])
    return Result(
        name="stream_cpu_overhead",
        value=ours,
        unit="agentd CPU ms/run",
        baseline=base,
        goal=f"<= {STREAM_GOAL:g}x the CPU of Run",
        met=failed == 0 and ratio <= STREAM_GOAL,
        quick=quick,
        details={
            "runs_each": runs,
            "failed": failed,
            "cpu_ms_per_run_stream": [round(x, 2) for x in streamed],
            "cpu_ms_per_run_run": [round(x, 2) for x in unary],
            # agent.stream_answer = false: the event stream without the model streamed
            "cpu_ms_per_run_events_only": [round(x, 2) for x in cpu["events_only"]],
            "events_only_ratio": round(events_only / base, 3) if base else 0.0,
            "answer_chars": len(_ANSWER),
            "tool_calls_per_run": 3,
            **await _decode_cost(),
        },
    )


async def _decode_cost() -> dict[str, Any]:
    """What reading the model's replies streamed costs by itself (CPU µs per run, in this
    process): the plan's and the answer's server-sent events as the scripted model sends them,
    read by agentd/llm/sse.py, against the same two replies as one JSON body each."""
    from agentd.llm import sse
    from tests.support.scripted_llm import _events

    bodies, streams = [], []
    for content in (_plan(), {"answer": _ANSWER, "missing": None}):
        text = json.dumps(content)
        whole = {
            "id": "c",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "message": {"content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        }
        bodies.append(json.dumps(whole).encode())
        streams.append(b"".join(_events(whole, {"stream_options": {"include_usage": True}})))

    async def chunks(body: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(body), 4096):  # as a loaded reader gets them: a few per read
            yield body[i : i + 4096]

    async def streamed() -> None:
        for body in streams:
            await sse.completion(chunks(body), lambda piece: None)

    async def whole_bodies() -> None:
        for body in bodies:
            sse.loads(body)

    async def cpu_us(work: Callable[[], Awaitable[None]], n: int = 300) -> float:
        start = time.process_time()
        for _ in range(n):
            await work()
        return (time.process_time() - start) / n * 1e6

    return {
        "decode_us_per_run_streamed": round(await cpu_us(streamed), 1),
        "decode_us_per_run_whole": round(await cpu_us(whole_bodies), 1),
        "stream_bytes_per_run": sum(map(len, streams)),
        "body_bytes_per_run": sum(map(len, bodies)),
    }
