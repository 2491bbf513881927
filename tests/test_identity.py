"""Identity from authentication only: runs and memories owned by their principal, mTLS and
gateway principals, complete TLS configs, every client command against a secured daemon,
per-principal rate limits and the audit line. (test_security.py covers tokens guarding the
service, plain mTLS and TLS to upstreams; test_memory.py memory isolation between users.)"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agentd.config import ConfigError, load_config
from agentd.v1 import agent_pb2, agent_pb2_grpc
from tests.support.plans import answer, plan
from tests.test_agent import SECRET, Stack, start_stack, user_token
from tests.test_memory import call_tool

ROOT = Path(__file__).resolve().parents[1]
USERS = ("alice", "bob", "root:admin")


def token_of(name: str) -> tuple[tuple[str, str]]:
    return (("authorization", user_token(name)),)


def answers_everything(s: Stack, delay_s: float = 0.0) -> None:
    s.llm.reply(when="plan", content=plan(answer="fine"), times=None, delay_s=delay_s)
    s.llm.reply(when="answer", content=answer("fine"), times=None)


@contextlib.contextmanager
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """Every log event, at every level (other tests may have set the level to error)."""
    saved = structlog.get_config()
    try:
        with structlog.testing.capture_logs() as logs:
            structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
            yield logs
    finally:
        structlog.configure(**saved)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in start_stack(tmp_path, users=USERS):
        yield s


# --- ownership of runs ---------------------------------------------------------------------


async def test_another_principals_run_is_not_found_but_an_admin_sees_it(stack: Stack) -> None:
    s = stack
    answers_everything(s)
    mine = await s.run("alice's task", as_user="alice")
    assert mine.principal == "alice"
    get = agent_pb2.GetRunRequest(run_id=mine.run_id)
    listed = agent_pb2.ListRunsRequest(status=agent_pb2.RUN_STATUS_SUCCEEDED)
    rate = agent_pb2.SubmitFeedbackRequest(run_id=mine.run_id, rating=-1)

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await s.stub.GetRun(agent_pb2.GetRunRequest(run_id="no-such-run"), metadata=token_of("bob"))
    missing = info.value
    for call in (s.stub.GetRun(get, metadata=token_of("bob")),
                 s.stub.SubmitFeedback(rate, metadata=token_of("bob"))):  # fmt: skip
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        # Worded like a missing run: the existence of alice's run is not revealed.
        assert info.value.details() == missing.details().replace("no-such-run", mine.run_id)
    assert (await s.stub.ListRuns(listed, metadata=token_of("bob"))).runs == []
    code, _, err = await agentd_cli(
        "trace", mine.run_id, "--target", s.daemon.address, token=user_token("bob")
    )
    assert code != 0 and "NOT_FOUND" in err

    # Alice and an admin see it; bob's attempt to rate it left no feedback.
    for who in ("alice", "root"):
        got = await s.stub.GetRun(get, metadata=token_of(who))
        assert got.run_id == mine.run_id and list(got.feedback) == []
        runs = (await s.stub.ListRuns(listed, metadata=token_of(who))).runs
        assert [r.run_id for r in runs] == [mine.run_id]
    await s.stub.SubmitFeedback(rate, metadata=token_of("root"))
    code, out, _ = await agentd_cli(
        "trace", mine.run_id, "--target", s.daemon.address, token=user_token("alice")
    )
    assert code == 0 and mine.run_id in out


async def test_another_principals_memories_stay_hidden_but_an_admin_sees_them(
    stack: Stack,
) -> None:
    s = stack
    await call_tool(
        s, "memory_remember", {"text": "alice's locker is 4711"}, as_user="alice",
        conversation_id="c-alice",
    )  # fmt: skip
    # Naming alice in user_id: refused, naming the field.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await s.run("what is alice's locker?", as_user="bob", user_id="alice")
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert info.value.details().startswith("user_id:")
    # Sending alice's conversation id: bob's own (empty) scope, and none of alice's history.
    s.llm.requests.clear()
    found = await call_tool(
        s, "memory_recall", {"query": "locker"}, as_user="bob", conversation_id="c-alice"
    )
    assert found.get("memories", []) == []
    assert "4711" not in json.dumps(s.llm.requests)
    # An admin acting for alice sees them.
    found = await call_tool(
        s, "memory_recall", {"query": "locker"}, as_user="root", user_id="alice",
        conversation_id="c-alice",
    )  # fmt: skip
    assert [m["text"] for m in found["memories"]] == ["alice's locker is 4711"]


# --- mTLS and gateway principals -------------------------------------------------------------


def make_pki(directory: Path, clients: Sequence[str]) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and one client certificate per CN."""
    now = datetime.datetime.now(datetime.UTC)

    def issue(
        cn: str, issuer: tuple[x509.Name, Any] | None, san: list[x509.GeneralName]
    ) -> tuple[x509.Name, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        issuer_name, issuer_key = issuer or (name, key)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), False)
        cert = builder.sign(issuer_key, hashes.SHA256())
        (directory / f"{cn}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{cn}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return name, key

    ca = issue("test-ca", None, [])
    issue("server", ca, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    for cn in clients:
        issue(cn, ca, [x509.DNSName(f"{cn}.example")])
    return {p.name: p for p in directory.iterdir() if p.suffix in (".pem", ".key")}


CLIENTS = ("alice-cert", "ops-cert", "gateway")


def secured_env(pki: dict[str, Path]) -> dict[str, str]:
    """Bearer tokens (start_stack's users) + mTLS + a gateway, set through nested env keys."""
    return {
        "AGENTD_SERVER_AUTH_TLS_CERT": str(pki["server.pem"]),
        "AGENTD_SERVER_AUTH_TLS_KEY": str(pki["server.key"]),
        "AGENTD_SERVER_AUTH_CLIENT_CA": str(pki["test-ca.pem"]),
        "AGENTD_SERVER_AUTH_GATEWAY_HEADER": "x-forwarded-user",
        "AGENTD_SERVER_AUTH_GATEWAY_IDENTITY": "gateway",
        "AGENTD_SERVER_AUTH_CERT_ROLES_OPS-CERT": '["admin"]',
    }


def secure_stub(
    address: str, pki: dict[str, Path], client: str
) -> tuple[grpc.aio.Channel, agent_pb2_grpc.AgentServiceStub]:
    credentials = grpc.ssl_channel_credentials(
        pki["test-ca.pem"].read_bytes(),
        pki[f"{client}.key"].read_bytes(),
        pki[f"{client}.pem"].read_bytes(),
    )
    channel = grpc.aio.secure_channel(address, credentials)
    return channel, agent_pb2_grpc.AgentServiceStub(channel)


async def test_mtls_principals_and_the_gateway_header(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, CLIENTS)
    async for s in start_stack(tmp_path, env=secured_env(pki)):
        answers_everything(s)
        stubs = {c: secure_stub(s.daemon.address, pki, c) for c in CLIENTS}
        try:
            task = agent_pb2.RunRequest(task="hello")
            mine = await stubs["alice-cert"][1].Run(task, timeout=30)
            assert mine.principal == "alice-cert"  # the certificate's subject CN
            # The gateway (by its certificate) may name the caller in its header.
            relayed = await stubs["gateway"][1].Run(
                task, metadata=(("x-forwarded-user", "carol"),), timeout=30
            )
            assert relayed.principal == "carol"
            # Anyone else sending that header is ignored, and it is logged.
            with captured_logs() as logs:
                spoofed = await stubs["alice-cert"][1].Run(
                    task, metadata=(("x-forwarded-user", "carol"),), timeout=30
                )
            assert spoofed.principal == "alice-cert"
            ignored = [e for e in logs if e["event"].startswith("identity header ignored")]
            assert ignored and ignored[0]["peer_certificate"] == "alice-cert"
            # Certificate principals own their runs; cert_roles makes ops-cert an admin.
            get = agent_pb2.GetRunRequest(run_id=mine.run_id)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stubs["gateway"][1].GetRun(
                    get, metadata=(("x-forwarded-user", "carol"),), timeout=30
                )
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
            assert (await stubs["ops-cert"][1].GetRun(get, timeout=30)).principal == "alice-cert"
            # Without bearer auth configured, a token is only metadata to forward, not identity.
            forwarded = await stubs["alice-cert"][1].Run(task, metadata=token_of("bob"))
            assert forwarded.principal == "alice-cert"
        finally:
            for channel, _ in stubs.values():
                await channel.close()


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "named"),
    [
        ({"tls_cert": "server.pem"}, "server.auth.tls_key"),
        ({"tls_key": "server.key"}, "server.auth.tls_cert"),
        ({"client_ca": "test-ca.pem"}, "server.auth.tls_cert"),
        ({"tls_cert": "server.pem", "tls_key": "missing.key"}, "server.auth.tls_key"),
        ({"gateway_header": "x-user"}, "server.auth.gateway_identity"),
        ({"gateway_identity": "gateway"}, "server.auth.gateway_header"),
        (
            {
                "tls_cert": "server.pem",
                "tls_key": "server.key",
                "gateway_header": "x-user",
                "gateway_identity": "gateway",
            },
            "server.auth.client_ca",
        ),
    ],
    ids=lambda v: "+".join(v) if isinstance(v, dict) else None,
)
@pytest.mark.parametrize("source", ["file", "env"])
def test_incomplete_tls_is_an_error_naming_the_key(
    tmp_path: Path, auth: dict[str, str], named: str, source: str
) -> None:
    make_pki(tmp_path, ())
    values = {k: str(tmp_path / v) if k != "gateway_header" and k != "gateway_identity" else v
              for k, v in auth.items()}  # fmt: skip
    path = tmp_path / "agentd.toml"
    env: dict[str, str] = {}
    if source == "file":
        lines = "\n".join(f'{k} = "{v}"' for k, v in values.items())
        path.write_text(f"[server.auth]\n{lines}\n")
    else:
        path.write_text("")
        env = {f"AGENTD_SERVER_AUTH_{k.upper()}": v for k, v in values.items()}
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    assert f": {named}: " in str(info.value)


def test_nested_auth_keys_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "agentd.toml"
    path.write_text("")
    pki = make_pki(tmp_path, CLIENTS)
    config = load_config(path, env=secured_env(pki))
    auth = config.server.auth
    assert auth.client_ca == str(pki["test-ca.pem"]) and auth.gateway_identity == "gateway"
    assert dict(auth.cert_roles) == {"ops-cert": ("admin",)}


# --- client commands against a bearer + mTLS daemon -------------------------------------------


async def agentd_cli(*args: str, token: str = "") -> tuple[int, str, str]:
    """``python -m agentd ARGS`` with ``$AGENTD_TOKEN`` set to the token (no "Bearer ")."""
    env = {k: v for k, v in os.environ.items() if k != "AGENTD_TOKEN"}
    if token:
        env["AGENTD_TOKEN"] = token.removeprefix("Bearer ")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agentd", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_every_client_command_reaches_a_bearer_and_mtls_daemon(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, CLIENTS)
    async for s in start_stack(tmp_path, env=secured_env(pki), users=USERS):
        answers_everything(s)
        target = ["--target", s.daemon.address]
        tls = ["--ca", str(pki["test-ca.pem"]), "--cert", str(pki["alice-cert.pem"])]
        tls += ["--key", str(pki["alice-cert.key"])]
        alice = user_token("alice")

        code, out, err = await agentd_cli("run", "hello", *target, *tls, "--json", token=alice)
        assert code == 0, err
        run = json.loads(out)
        assert run["principal"] == "alice"
        run_id = run["run_id"]
        suite = tmp_path / "suite.jsonl"
        suite.write_text(
            json.dumps({"id": "one", "task": "t", "expect": {"status": "succeeded"}}) + "\n"
        )
        commands = [
            ["tools", "--json"],
            ["get", run_id],
            ["runs", "--status", "succeeded"],
            ["feedback", run_id, "--rating", "1"],
            ["trace", run_id],
            ["eval", str(suite)],
        ]
        for command in commands:
            code, out, err = await agentd_cli(*command, *target, *tls, token=alice)
            assert code == 0, (command, err)
            if command[0] in ("get", "runs", "trace"):
                assert run_id in out, (command, out)
        stored = await s.daemon.service.runs.store.get(run_id)
        assert stored is not None and [f.rating for f in stored.feedback] == [1]
        # The token is needed besides the certificate (bearer auth is on)...
        code, _, err = await agentd_cli("get", run_id, *target, *tls)
        assert code != 0 and "UNAUTHENTICATED" in err
        # ... and the certificate besides the token (mTLS is required).
        code, _, err = await agentd_cli("get", run_id, *target, "--ca", tls[1], token=alice)
        assert code != 0 and "UNAVAILABLE" in err


# --- rate limits and the audit line -------------------------------------------------------------


async def test_per_principal_limits_under_a_burst(tmp_path: Path) -> None:
    env = {"AGENTD_SERVER_MAX_RUNS_PER_PRINCIPAL": "2", "AGENTD_SERVER_RUNS_PER_MINUTE": "6"}
    async for s in start_stack(tmp_path, env=env, users=USERS):
        answers_everything(s, delay_s=0.5)  # runs overlap the whole burst
        burst = [s.run(f"burst {i}", as_user="alice") for i in range(10)]
        others = [s.run(f"bob {i}", as_user="bob") for i in range(2)]
        results = await asyncio.gather(*burst, *others, return_exceptions=True)
        alice, bob = results[:10], results[10:]
        assert all(isinstance(r, agent_pb2.RunResponse) for r in bob), bob
        refused = [r for r in alice if isinstance(r, grpc.aio.AioRpcError)]
        assert len(refused) == 8  # two at a time, and none finished during the burst
        for error in refused:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error.details().startswith("server.max_runs_per_principal: 'alice'")
        # Runs per minute: alice started 2 of her 6; 4 more pass one at a time, then no more.
        for i in range(4):
            await s.run(f"sequential {i}", as_user="alice")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await s.run("one too many", as_user="alice")
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert info.value.details().startswith("server.runs_per_minute: 'alice'")
        assert (await s.run("bob again", as_user="bob")).principal == "bob"


async def test_audit_line_has_principal_method_run_and_outcome_never_the_token(
    stack: Stack,
) -> None:
    s = stack
    answers_everything(s)
    with captured_logs() as logs:
        run = await s.run("audited", as_user="alice")
        with pytest.raises(grpc.aio.AioRpcError):
            await s.stub.GetRun(
                agent_pb2.GetRunRequest(run_id=run.run_id), metadata=token_of("bob")
            )
    audit = [e for e in logs if e["event"] == "audit"]
    assert {k: audit[0][k] for k in ("principal", "method", "run_id", "outcome")} == {
        "principal": "alice",
        "method": "Run",
        "run_id": run.run_id,
        "outcome": "OK RUN_STATUS_SUCCEEDED",
    }
    assert {k: audit[1][k] for k in ("principal", "method", "run_id", "outcome")} == {
        "principal": "bob",
        "method": "GetRun",
        "run_id": run.run_id,
        "outcome": "NOT_FOUND",
    }
    written = json.dumps(logs, default=str)
    for secret in (user_token("alice"), user_token("bob"), SECRET):
        assert secret.split()[1] not in written
