"""Two agentd replicas as deploy/ runs them, on loopback: the ConfigMap's agentd.toml and the
Deployment's environment (Secret values given by the test), one PostgreSQL, the example
services, and a client with the round_robin policy over both addresses, as a client of the
headless Service has. Runs land on both replicas, every run is readable on either, and when
one replica stops (SIGTERM, as in a rollout) the same channel carries on with the other."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentd.v1 import agent_pb2, agent_pb2_grpc
from examples.ledger.server import LedgerServer
from tests.support.deploy import agentd_container, base_config_text, base_deployment, pod_env
from tests.support.plans import answer, plan
from tests.support.scripted_llm import ScriptedLLM
from tests.test_identity import make_pki
from tests.test_process import DaemonProcess, upstreams
from tests.test_store import postgres, postgres_url

__all__ = ["postgres", "postgres_url", "upstreams"]  # fixtures shared with other tests

GET_VENDOR = {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_001"}}
ALICE = (("authorization", "Bearer t0k-alice-0123456789abcdef"),)


class Replica(DaemonProcess):
    """``agentd serve`` with exactly the given environment (nothing of this shell's AGENTD_,
    OPENAI_ or OTEL_ variables) and its log kept, to see which replica answered which run."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        super().__init__(config)
        self.env, self.log, self.health = env, log, ""

    async def start(self) -> None:
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("AGENTD_", "OPENAI_", "OTEL_"))
        }
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agentd", "serve", "--config", str(self.config),
                stdout=subprocess.PIPE, stderr=log, env={**inherited, **self.env},
            )  # fmt: skip
        assert self.proc.stdout is not None
        for attr, prefix in (
            ("address", b"agentd listening on "),
            ("health", b"agentd health on "),
        ):
            line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
            assert line.startswith(prefix), (line, self.log.read_text())
            setattr(self, attr, line.decode().split()[-1])

    def served_runs(self) -> set[str]:
        """Run ids of the Run calls this replica answered, from its audit log lines."""
        runs = set()
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == "audit" and event.get("method") == "Run":
                    runs.add(event["run_id"])
        return runs


def replica_setup(
    tmp_path: Path, llm: ScriptedLLM, ledger: str, calculator: str, postgres_url: str
) -> tuple[Path, dict[str, str], dict[str, Path]]:
    """The ConfigMap's file with its upstream targets on loopback, and the pod's environment
    with what differs on loopback said here: addresses, the TLS files, the model endpoint
    (the overlays' variables, pointed at the scripted model) and no OTLP collector."""
    text = base_config_text()
    targets = iter([ledger, calculator])
    text, count = re.subn(r'(?m)^target = ".*"$', lambda _: f'target = "{next(targets)}"', text)
    assert count == 2, "the ConfigMap's upstreams changed: update this test"
    config = tmp_path / "agentd.toml"
    config.write_text(text)
    pki = make_pki(tmp_path, [])
    secrets = {
        ("agentd-database", "url"): postgres_url,
        (
            "agentd-tokens",
            "tokens",
        ): "t0k-alice-0123456789abcdef alice; t0k-ops-0123456789abcdef ops admin",
        ("agentd-llm", "api-key"): "sk-test",
    }
    env = pod_env(agentd_container(base_deployment()), secrets)
    env.update(
        AGENTD_SERVER_LISTEN="127.0.0.1:0",
        AGENTD_SERVER_HEALTH_LISTEN="127.0.0.1:0",
        AGENTD_SERVER_AUTH_TLS_CERT=str(pki["server.pem"]),
        AGENTD_SERVER_AUTH_TLS_KEY=str(pki["server.key"]),
        AGENTD_LLM_BASE_URL=llm.base_url,
        AGENTD_LLM_MODEL="scripted-model",
        AGENTD_LLM_MAX_RETRIES="0",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
    )
    return config, env, pki


def channel_to(target: str, pki: dict[str, Path], **options: object) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(pki["test-ca.pem"].read_bytes())
    # The server certificate names 127.0.0.1; the target lists two addresses.
    opts = [("grpc.ssl_target_name_override", "127.0.0.1"), *options.items()]
    return grpc.aio.secure_channel(target, credentials, options=opts)


async def test_round_robin_over_two_replicas_sharing_postgresql(
    tmp_path: Path, upstreams: tuple[ScriptedLLM, LedgerServer, str], postgres_url: str
) -> None:
    llm, ledger, calculator = upstreams
    config, env, pki = replica_setup(tmp_path, llm, ledger.address, calculator, postgres_url)
    runs = 8
    llm.reply(when="plan", content=plan(GET_VENDOR), times=runs + 4)
    llm.reply(when="answer", content=answer("Acme's phone is +49 30 1234"), times=runs + 4)
    a = Replica(config, env, tmp_path / "a.log")
    b = Replica(config, env, tmp_path / "b.log")
    await asyncio.gather(a.start(), b.start())
    replicas = (a, b)
    try:
        for replica in replicas:  # kubelet's probe: plaintext health, SERVING
            async with grpc.aio.insecure_channel(replica.health) as probe:
                health = health_pb2_grpc.HealthStub(probe)
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
        # What the image's HEALTHCHECK runs.
        check = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentd", "health", "--target", a.health,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await check.communicate()
        assert (check.returncode, out) == (0, b"SERVING\n"), err

        target = f"ipv4:{a.address},{b.address}"
        async with channel_to(target, pki, **{"grpc.lb_policy_name": "round_robin"}) as channel:
            stub = a.stub(channel)
            run_ids = []
            for i in range(runs):
                response = await stub.Run(
                    agent_pb2.RunRequest(task=f"Phone of ven_001? ({i})"),
                    metadata=ALICE,
                    timeout=30,
                )
                assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
                run_ids.append(response.run_id)

            served = [r.served_runs() for r in replicas]
            assert served[0] | served[1] == set(run_ids) and not served[0] & served[1]
            assert served[0] and served[1], f"round_robin used one replica: {served}"
            await check_readable_everywhere(replicas, run_ids, pki)

            # A rollout stops one replica: SIGTERM, drain, exit 0. The channel keeps going.
            assert a.proc is not None
            a.proc.send_signal(signal.SIGTERM)
            assert await a.wait() == 0
            for i in range(4):
                response = await stub.Run(
                    agent_pb2.RunRequest(task=f"Phone of ven_001 again? ({i})"),
                    metadata=ALICE,
                    timeout=30,
                    wait_for_ready=True,
                )
                assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
                run_ids.append(response.run_id)
            assert set(run_ids[runs:]) <= b.served_runs()
            await check_readable_everywhere((b,), run_ids, pki)
    finally:
        for replica in replicas:
            if replica.proc is not None and replica.proc.returncode is None:
                replica.proc.kill()
                await replica.proc.wait()


async def check_readable_everywhere(
    replicas: tuple[Replica, ...], run_ids: list[str], pki: dict[str, Path]
) -> None:
    """GetRun of every run on each replica alone: the same stored record."""
    for replica in replicas:
        async with channel_to(replica.address, pki) as direct:
            for run_id in run_ids:
                record = await replica.stub(direct).GetRun(
                    agent_pb2.GetRunRequest(run_id=run_id), metadata=ALICE, timeout=10
                )
                assert record.status == agent_pb2.RUN_STATUS_SUCCEEDED
                assert record.output == "Acme's phone is +49 30 1234"
                assert record.principal == "alice"
                assert [s.tool for s in record.steps] == ["LedgerService_GetVendor"]


async def test_connections_are_closed_after_max_connection_age(tmp_path: Path) -> None:
    """server.max_connection_age_s: the daemon sends GOAWAY to an aged connection, so a
    round_robin client re-resolves the headless name (and finds replicas added since); the
    client reconnects by itself and its next call succeeds."""
    from agentd.api.server import Daemon
    from agentd.config import load_config

    config = tmp_path / "agentd.toml"
    config.write_text(
        f"""
[server]
listen = "127.0.0.1:0"
max_connection_age_s = 0.5

[llm]
base_url = "http://127.0.0.1:9/v1"
model = "m"

[storage]
path = "{tmp_path / "runs.db"}"
"""
    )
    daemon = Daemon(load_config(config, {}), env={"OPENAI_API_KEY": "sk-test"})
    await daemon.start()
    try:
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            await stub.ListTools(agent_pb2.ListToolsRequest(), timeout=5)
            assert channel.get_state() == grpc.ChannelConnectivity.READY
            state = grpc.ChannelConnectivity.READY
            while state == grpc.ChannelConnectivity.READY:  # until the server's GOAWAY
                await asyncio.wait_for(channel.wait_for_state_change(state), 30)
                state = channel.get_state()
            assert state != grpc.ChannelConnectivity.SHUTDOWN
            await stub.ListTools(agent_pb2.ListToolsRequest(), timeout=5)
    finally:
        await daemon.stop(grace=0)
