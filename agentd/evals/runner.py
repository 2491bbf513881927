"""Running a suite against one or more agentd deployments and collecting the results.

A deployment is either a config file, started in-process with the example services on
free ports (as ``examples/demo.py`` does), or the address of a running daemon. Cases run
through ``AgentService.Run`` exactly as any caller's would, so what is measured is what
callers get.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from agentd.evals.checks import CheckResult, check_run, status_name
from agentd.evals.reward import RewardWeights, terms_of
from agentd.evals.suite import Case, Suite, SuiteError
from agentd.library.example import plan_of_record
from agentd.v1 import agent_pb2, agent_pb2_grpc

Progress = Callable[[str], None]


@dataclass
class RunResult:
    """One case, one repeat, one deployment."""

    config: str
    case: str
    repeat: int
    passed: bool
    status: str
    checks: list[CheckResult]
    latency_s: float
    model_calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    reward: float = 0.0
    run_id: str = ""
    trace_id: str = ""
    prompt_versions: dict[str, str] = field(default_factory=dict)
    error: str = ""
    output: str = ""
    # The run's last plan in the planner's form ({} when it had none), its revision, and the
    # plan library's examples its planner was shown.
    plan: dict[str, Any] = field(default_factory=dict)
    plan_revision: int = 0
    examples: list[str] = field(default_factory=list)

    def first_failure(self) -> str:
        for check in self.checks:
            if not check.passed:
                return f"{check.name}: {check.detail}".strip()
        return self.error

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["checks"] = [dataclasses.asdict(c) for c in self.checks]
        return data


@dataclass(frozen=True)
class Deployment:
    """What to evaluate: a config to start in-process, or a running daemon's address."""

    label: str
    config_path: str | None = None
    target: str | None = None
    # In-process only: the plan library's file of examples (leave-one-out) for this
    # deployment; "" turns the library off (the run without examples); None: as configured.
    examples_file: str | None = None


def label_deployments(
    configs: Sequence[str], targets: Sequence[str], examples_file: str | None = None
) -> list[Deployment]:
    """Name each deployment A, B, ... (with the file stem, so tables stay readable).

    With ``examples_file`` each config runs twice, in the same invocation: without the plan
    library, then with that file's examples shown leave-one-out (label suffix ``+examples``)."""
    found: list[Deployment] = []
    for path in configs:
        if examples_file is None:
            found.append(Deployment("", config_path=path))
        else:
            found.append(Deployment("", config_path=path, examples_file=""))
            found.append(Deployment("", config_path=path, examples_file=examples_file))
    for address in targets:
        found.append(Deployment("", target=address))
    labelled = []
    for i, item in enumerate(found):
        name = Path(item.config_path).stem if item.config_path else item.target
        name = f"{name}+examples" if item.examples_file else name
        labelled.append(dataclasses.replace(item, label=f"{chr(ord('A') + i)}:{name}"))
    return labelled


@contextlib.asynccontextmanager
async def started(
    deployment: Deployment, keep_runs: str | None, services: Mapping[str, str] | None = None
) -> AsyncIterator[str]:
    """The address to call: a running daemon's, or an in-process one started from the config.

    In-process, each config gets its own instances of the suite's ``services`` (so a side
    effect allowed by one config cannot change the data another sees); the upstreams of those
    names are pointed at them, and the listen address and run store are rewritten.
    """
    if deployment.target:
        yield deployment.target
        return
    from agentd.api.server import Daemon
    from agentd.config import load_config

    assert deployment.config_path is not None
    config = load_config(deployment.config_path)
    running = []
    try:
        for name, target in (services or {}).items():
            running.append((name, await _start_service(name, target)))
        addresses = {name: server.address for name, server in running}
        upstreams = tuple(
            dataclasses.replace(u, target=addresses.get(u.name, u.target)) for u in config.upstreams
        )
        with contextlib.ExitStack() as stack:
            if keep_runs:
                Path(keep_runs).mkdir(parents=True, exist_ok=True)
                safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in deployment.label)
                store = str(Path(keep_runs) / f"{safe}.db")
            else:
                import tempfile

                store = str(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "runs.db")
            if deployment.examples_file is not None:
                examples = dataclasses.replace(
                    config.examples,
                    enabled=bool(deployment.examples_file),
                    file=deployment.examples_file,
                    leave_one_out=True,  # a case never sees its own plan
                )
                config = dataclasses.replace(config, examples=examples)
            config = dataclasses.replace(
                config,
                upstreams=upstreams,
                server=dataclasses.replace(config.server, listen="127.0.0.1:0"),
                storage=dataclasses.replace(config.storage, path=store, url=""),
            )
            daemon = Daemon(config, env=dict(os.environ))
            try:
                await daemon.start()
                # Cases measure runs, not the one-off reading of the catalog into the embedded
                # model's prompt cache (logged as "prompt cache warmed", with its seconds).
                await daemon.warmed()
                yield daemon.address
            finally:
                await daemon.stop(grace=0)
    finally:
        for _, server in running:
            await server.stop(None)


async def _start_service(name: str, target: str) -> Any:
    """Import ``module:function`` and await ``function(0)``: a server with ``address`` and
    ``stop(grace)``, listening on a free port of 127.0.0.1."""
    module_name, _, function = target.partition(":")
    # Imported as `python -m` would, from the current directory: the example services are not
    # in agentd's wheel, and evals/ledger.yaml names them for a run from a checkout.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        factory = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError) as exc:
        raise SuiteError(f"services.{name}: cannot import {target!r}: {exc}") from None
    return await factory(0)


def request_of(case: Case) -> agent_pb2.RunRequest:
    request = agent_pb2.RunRequest(task=case.task, tools=list(case.tools))
    if case.context:
        json_format.ParseDict(dict(case.context), request.context)
    if case.response_schema is not None:
        import json

        request.response_schema = json.dumps(case.response_schema)
    return request


async def run_case(
    stub: agent_pb2_grpc.AgentServiceStub,
    case: Case,
    *,
    label: str,
    repeat: int,
    weights: RewardWeights,
    timeout_s: float,
) -> RunResult:
    """One call of ``AgentService.Run`` for ``case``, checked and scored."""
    metadata = tuple(case.metadata.items())
    started_at = time.perf_counter()
    try:
        run = await stub.Run(request_of(case), metadata=metadata, timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        # A rejected request is an outcome too (e.g. INVALID_ARGUMENT for a bad schema).
        latency = time.perf_counter() - started_at
        error = f"{exc.code().name}: {exc.details()}"
        return RunResult(label, case.id, repeat, False, "rpc_error", [], latency, error=error)
    latency = time.perf_counter() - started_at
    checks = check_run(case, run, latency)
    passed = all(c.passed for c in checks)
    terms = terms_of(
        run,
        checks_passed=sum(c.passed for c in checks),
        checks_total=len(checks),
        latency_s=latency,
    )
    versions: dict[str, str] = {}
    for call in run.model_calls:
        versions.setdefault(call.prompt, call.prompt_version)
    return RunResult(
        config=label,
        case=case.id,
        repeat=repeat,
        passed=passed,
        status=status_name(run.status),
        checks=checks,
        latency_s=round(latency, 4),
        model_calls=len(run.model_calls),
        tokens=sum(u.input_tokens + u.output_tokens for u in run.usage),
        cost_usd=run.cost_usd,
        reward=terms.reward(weights),
        run_id=run.run_id,
        trace_id=run.trace_id,
        prompt_versions=versions,
        error=run.error,
        output=run.output[:2000],
        plan=plan_of_record(run.plan) if run.HasField("plan") else {},
        plan_revision=run.plan.revision,
        examples=list(run.plan.examples),
    )


async def evaluate(
    suite: Suite,
    deployments: Sequence[Deployment],
    *,
    repeat: int = 1,
    concurrency: int = 4,
    timeout_s: float = 300.0,
    keep_runs: str | None = None,
    weights: RewardWeights | None = None,
    progress: Progress | None = None,
    connect: Callable[[str], grpc.aio.Channel] | None = None,
    ready_s: dict[str, float] | None = None,
) -> list[RunResult]:
    """Every case ``repeat`` times against each deployment, one deployment after the other.

    Deployments run one after the other so they do not compete for the same cores (their
    latencies stay comparable); within one, ``concurrency`` cases run at once. ``ready_s``
    gets each in-process deployment's start-up time (services, daemon, model load, discovery
    and the prompt-cache warm-up), by label.
    """
    weights = weights or suite.reward
    results: list[RunResult] = []
    for deployment in deployments:
        starting = time.perf_counter()
        async with (
            started(deployment, keep_runs, suite.services) as address,
            _channel(address, deployment, connect) as channel,
        ):
            if not deployment.target:
                took = round(time.perf_counter() - starting, 1)
                if ready_s is not None:
                    ready_s[deployment.label] = took
                if progress:
                    progress(f"[{deployment.label}] ready in {took:.1f} s (with the warm-up)")
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            results += await _run_all(
                stub, suite, deployment.label, repeat, concurrency, timeout_s, weights, progress
            )
    return results


def _channel(
    address: str, deployment: Deployment, connect: Callable[[str], grpc.aio.Channel] | None
) -> grpc.aio.Channel:
    """A running daemon (``--target``) is reached with the command's connection options; an
    in-process one is plaintext on 127.0.0.1."""
    if connect is not None and deployment.target:
        return connect(address)
    return grpc.aio.insecure_channel(address)


async def _run_all(
    stub: agent_pb2_grpc.AgentServiceStub,
    suite: Suite,
    label: str,
    repeat: int,
    concurrency: int,
    timeout_s: float,
    weights: RewardWeights,
    progress: Progress | None,
) -> list[RunResult]:
    slots = asyncio.Semaphore(max(1, concurrency))
    total = len(suite.cases) * repeat
    done = 0

    async def one(case: Case, k: int) -> RunResult:
        nonlocal done
        async with slots:
            result = await run_case(
                stub, case, label=label, repeat=k, weights=weights, timeout_s=timeout_s
            )
        done += 1
        if progress:
            mark = "pass" if result.passed else "FAIL"
            why = "" if result.passed else f"  {result.first_failure()[:100]}"
            progress(
                f"[{label}] {done}/{total} {case.id} #{k + 1} {mark} {result.latency_s:.2f}s{why}"
            )
        return result

    return list(
        await asyncio.gather(*(one(case, k) for k in range(repeat) for case in suite.cases))
    )


def stderr_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
