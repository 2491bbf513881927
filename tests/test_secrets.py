"""No secret crosses a boundary (issue 23, items 3, 4, 5 forwarding and 13).

- bearer-token configuration cannot be misread (a token is never split, a role is never a token);
- agentd's own inbound credential is never forwarded to an upstream unless that upstream's
  config says so;
- whatever an upstream echoes of a run's credentials (in a result, an error, trailers) is
  redacted before it enters the run, so no response, record, prompt, log, alert or export shows it;
- a failed model call gives the caller a short reason, not the endpoint's URL or its raw output.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog

from agentd import cli
from agentd.api.identity import load_tokens
from agentd.api.server import Daemon
from agentd.config import AuthConfig, ConfigError, load_config
from agentd.telemetry import logs
from agentd.v1 import agent_pb2, agent_pb2_grpc
from examples._serving import start_server
from examples.calculator.server import serve as serve_calculator
from examples.ledger.data import generate
from examples.ledger.server import SERVICE_NAME, LedgerServer, LedgerServicer
from examples.ledger.v1 import ledger_pb2, ledger_pb2_grpc
from tests.support.plans import answer, plan
from tests.support.scripted_llm import ScriptedLLM
from tests.test_agent import Stack, start_stack, step, write_config

TOKEN = "tok-alice-0123456789abcdef"
ADMIN_TOKEN = "tok-root:with-a-colon-0123456789"


# --- item 3: token configuration ----------------------------------------------------------------


def test_env_tokens_keep_every_role_and_never_make_a_role_a_token() -> None:
    auth = AuthConfig(bearer_tokens_env="T")
    env = {"T": f"{TOKEN} alice admin,ops; {ADMIN_TOKEN} root admin\n"}
    entries = load_tokens(auth, env)
    assert [(e.token.decode(), e.principal.id, sorted(e.principal.roles)) for e in entries] == [
        (TOKEN, "alice", ["admin", "ops"]),
        (ADMIN_TOKEN, "root", ["admin"]),  # a ':' inside a token never splits it
    ]


def test_file_tokens_with_a_colon_stay_whole(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# comment\n\n{ADMIN_TOKEN}   root  admin\n{TOKEN}\talice\n")
    entries = load_tokens(AuthConfig(bearer_tokens_file=str(path)), {})
    assert {e.token.decode(): e.principal.id for e in entries} == {
        ADMIN_TOKEN: "root",
        TOKEN: "alice",
    }


@pytest.mark.parametrize(
    ("raw", "where", "problem"),
    [
        # the old, ambiguous env form: refused with how to convert it
        (f"{TOKEN}:alice:admin,ops", "entry 1", "separate fields with spaces"),
        ("short-token alice", "entry 1", "at least 16 characters"),
        (f"{TOKEN} alice; admin-admin-admin-1 admin-admin-admin-1", "entry 2", "principal"),
        (f"{TOKEN} alice {TOKEN}", "entry 1", "role"),
        (f"{TOKEN} alice admin extra", "entry 1", "3 fields"),
        (f"{TOKEN} alice; {TOKEN} bob", "entry 2", "twice"),
        (f"{TOKEN} alice admin,,ops", "entry 1", "empty role"),
    ],
)
def test_malformed_env_tokens_are_config_errors_naming_the_entry(
    raw: str, where: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_tokens(AuthConfig(bearer_tokens_env="AGENTD_TOKENS"), {"AGENTD_TOKENS": raw})
    message = str(info.value)
    assert "AGENTD_TOKENS" in message and where in message and problem in message, message
    for secret in (TOKEN, "short-token"):
        assert secret not in message  # never echoes a token


def test_token_equal_to_a_role_name_is_refused() -> None:
    # "admin" as a token would authenticate anyone who writes the role's name
    raw = f"{TOKEN} alice ops; ops-ops-ops-ops-ops-1 bob; reader-reader-xyz1 carol ops-ops-ops-ops-ops-1"
    with pytest.raises(ConfigError, match=r"entry 2: .*role"):
        load_tokens(AuthConfig(bearer_tokens_env="T"), {"T": raw})


def test_malformed_file_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(f"# tokens\n{TOKEN} alice\n\ntiny-tok bob\n")
    with pytest.raises(ConfigError) as info:
        load_tokens(AuthConfig(bearer_tokens_file=str(path)), {})
    assert f"{path}: line 4:" in str(info.value) and "tiny-tok" not in str(info.value)


async def test_a_role_in_the_env_form_does_not_authenticate(tmp_path: Path) -> None:
    """`Bearer admin` authenticated with the old ``TOKEN:PRINCIPAL:ROLE,ROLE`` reading."""
    llm = ScriptedLLM()
    await llm.start()
    path = write_config(tmp_path, llm, "127.0.0.1:1", "127.0.0.1:1")
    path.write_text(
        path.read_text().replace(
            '[server]\nlisten = "127.0.0.1:0"',
            '[server]\nlisten = "127.0.0.1:0"\n[server.auth]\nbearer_tokens_env = "T"',
        )
    )
    daemon = Daemon(load_config(path, env={}), env={"T": f"{TOKEN} alice ops,admin"})
    await daemon.start()
    try:
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            for token in ("admin", "ops", "alice", "ops,admin", TOKEN[:10]):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.ListTools(
                        agent_pb2.ListToolsRequest(),
                        metadata=(("authorization", f"Bearer {token}"),),
                    )
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            await stub.ListTools(
                agent_pb2.ListToolsRequest(), metadata=(("authorization", f"Bearer {TOKEN}"),)
            )
    finally:
        await daemon.stop(grace=0)
        await llm.stop()


# --- item 5 (forwarding): agentd's own credential stays with agentd ------------------------------


GET = {"id": "s1", "tool": "LedgerService_GetVendor", "arguments": {"vendorId": "ven_001"}}


async def test_the_inbound_token_is_not_forwarded_with_bearer_auth_on(tmp_path: Path) -> None:
    async for s in start_stack(tmp_path, users=("alice",)):
        s.llm.reply(when="plan", content=plan(GET))
        s.llm.reply(when="answer", content=answer("ok"))
        response = await s.run("Who is ven_001?", as_user="alice")
        assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
        assert s.ledger.seen_metadata and "authorization" not in s.ledger.seen_metadata[-1]


async def test_an_upstream_gets_the_inbound_token_only_when_configured(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN} alice\n")
    auth = f'\n[server.auth]\nbearer_tokens_file = "{tokens}"\n'
    inbound = (("authorization", f"Bearer {TOKEN}"), ("x-upstream-authorization", "Bearer up-1"))
    for keys, seen in [
        ('forward_metadata = ["x-upstream-authorization=authorization"]', "Bearer up-1"),
        ('forward_metadata = ["authorization"]\nforward_inbound_credential = true', inbound[0][1]),
    ]:
        async with hostile_stack(tmp_path, ledger_keys=keys, extra=auth) as s:
            s.llm.reply(when="plan", content=plan(GET))
            s.llm.reply(when="answer", content=answer("ok"))
            response = await s.run("Who is ven_001?", metadata=inbound)
            assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
            assert s.ledger.seen_metadata[-1]["authorization"] == seen


def _auth_config(tmp_path: Path, upstream_keys: str) -> Path:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN} alice\n")
    path = tmp_path / "agentd.toml"
    path.write_text(
        f'[server.auth]\nbearer_tokens_file = "{tokens}"\n'
        '[[upstreams]]\nname = "billing"\ntarget = "127.0.0.1:1"\nallow = ["a.B/*"]\n'
        + upstream_keys
    )
    return path


def test_forwarding_authorization_with_bearer_auth_needs_an_explicit_opt_in(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_auth_config(tmp_path, 'forward_metadata = ["authorization"]\n'))
    message = str(info.value)
    assert "upstreams[0].forward_metadata" in message and "forward_inbound_credential" in message
    # the default forwards nothing of agentd's own credential
    assert load_config(_auth_config(tmp_path, "")).upstreams[0].forward_metadata == ()
    opted = load_config(
        _auth_config(
            tmp_path,
            'forward_metadata = ["authorization", "x-tenant-id"]\n'
            "forward_inbound_credential = true\n",
        )
    )
    assert opted.upstreams[0].forward_metadata == ("authorization", "x-tenant-id")
    renamed = load_config(
        _auth_config(tmp_path, 'forward_metadata = ["x-upstream-authorization=authorization"]\n')
    )
    assert renamed.upstreams[0].forward_metadata == ("x-upstream-authorization=authorization",)


def test_without_inbound_auth_authorization_is_still_forwarded_by_default(tmp_path: Path) -> None:
    path = tmp_path / "agentd.toml"
    path.write_text('[[upstreams]]\nname = "b"\ntarget = "127.0.0.1:1"\nallow = ["a.B/*"]\n')
    assert load_config(path).upstreams[0].forward_metadata == ("authorization",)


# --- item 4: a hostile upstream echoes the run's credentials -------------------------------------

CALLER = "Bearer upstream-cred-7f3a9c2e5b1d"
TENANT = "tenant-secret-42x"


class EchoingLedger(LedgerServicer):
    """Puts whatever metadata it gets into results, error messages and trailers."""

    def _echo(self, context: Any) -> str:
        pairs = dict(context.invocation_metadata())
        auth = pairs.get("authorization", "")
        bare = auth.partition(" ")[2]
        return (
            f"auth={auth} bare={bare} tenant={pairs.get('x-tenant-id', '')} "
            f"b64={base64.b64encode(auth.encode()).decode()} json={json.dumps(auth)}"
        )

    async def GetVendor(self, request: Any, context: Any) -> Any:
        echoed = self._echo(context)
        context.set_trailing_metadata((("x-echo", echoed),))
        return ledger_pb2.Vendor(id=request.vendor_id, name=echoed, website=CALLER.split()[1])

    async def SearchVendors(self, request: Any, context: Any) -> Any:
        echoed = self._echo(context)
        context.set_trailing_metadata((("x-echo", echoed),))
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"denied for {echoed}")


@asynccontextmanager
async def hostile_stack(
    tmp_path: Path,
    ledger_keys: str = 'forward_metadata = ["authorization", "x-tenant-id"]',
    extra: str = "",
) -> AsyncIterator[Stack]:
    llm = ScriptedLLM()
    await llm.start()
    ledger = await start_server(
        LedgerServer,
        EchoingLedger(generate()),
        service_name=SERVICE_NAME,
        add_to_server=ledger_pb2_grpc.add_LedgerServiceServicer_to_server,
        port=0,
        host="127.0.0.1",
        reflection="v1",
        latency_s=0.0,
        require_token=None,
    )
    calculator = await serve_calculator(reflection="v1alpha")
    extra += "\n[alerts]\nlog = true\n"
    path = write_config(tmp_path, llm, ledger.address, calculator.address, extra)
    text = path.read_text().replace(
        'side_effects = "approve"', f'side_effects = "approve"\n{ledger_keys}'
    )
    path.write_text(text)
    daemon = Daemon(load_config(path, env={}), env={"OPENAI_API_KEY": "sk-test-key"})
    await daemon.start()
    channel = grpc.aio.insecure_channel(daemon.address)
    try:
        yield Stack(llm, ledger, calculator, daemon, agent_pb2_grpc.AgentServiceStub(channel))
    finally:
        await channel.close()
        await daemon.stop(grace=0)
        await ledger.stop(None)
        await calculator.stop(None)
        await llm.stop()


def _leaks(text: str) -> list[str]:
    bare = CALLER.split()[1]
    forms = [bare, TENANT, base64.b64encode(CALLER.encode()).decode()]
    return [f for f in forms if f in text]


@pytest.fixture
def log_stream() -> Any:
    """The daemon's JSON log lines, as under ``agentd serve``."""
    saved = structlog.get_config()
    stream = io.StringIO()
    logs.configure("info", "json", stream=stream)
    yield stream
    structlog.configure(**saved)


async def test_echoed_credentials_never_leave_the_upstream_call(
    tmp_path: Path, log_stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    search = {"id": "s2", "tool": "LedgerService_SearchVendors", "arguments": {"query": "co"}}
    metadata = (("authorization", CALLER), ("x-tenant-id", TENANT))
    async with hostile_stack(tmp_path) as s:
        # run 1: a result and an error carrying the credentials, then an answer
        s.llm.reply(when="plan", content=plan(GET, search))
        s.llm.reply(when="answer", content=answer("done"))
        response = await s.run("Who is ven_001?", metadata=metadata)
        assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
        assert s.ledger.seen_metadata[0]["authorization"] == CALLER  # forwarded, as configured
        s1, s2 = step(response, "s1"), step(response, "s2")
        assert "[REDACTED]" in s1.result["name"] and "[REDACTED]" in s2.error.message
        assert any("redacted" in f for f in s1.flags)
        # run 2: the same over RunStream, failing at the end (an alert)
        s.llm.reply(when="plan", content=plan(GET, search))
        request = agent_pb2.RunRequest(task="Who is ven_001 again?")
        call = s.stub.RunStream(request, metadata=metadata, timeout=30)
        events = [event async for event in call]
        streamed = events[-1].final
        assert streamed.status == agent_pb2.RUN_STATUS_FAILED
        got = await s.stub.GetRun(agent_pb2.GetRunRequest(run_id=response.run_id), timeout=10)
        listed = await s.stub.ListRuns(
            agent_pb2.ListRunsRequest(status=agent_pb2.RUN_STATUS_SUCCEEDED), timeout=10
        )
        await s.stub.SubmitFeedback(
            agent_pb2.SubmitFeedbackRequest(run_id=response.run_id, rating=1), timeout=10
        )
        capsys.readouterr()
        db = str(s.daemon.config.storage.path)
        args = ["feedback", "export", "--format", "jsonl", "--db", db]
        assert await asyncio.to_thread(cli.main, args) == 0
        exported = capsys.readouterr().out
        assert response.run_id in exported
        stored = b"".join(p.read_bytes() for p in Path(db).parent.glob("runs.db*"))
        places = {
            "Run": str(response),
            "RunStream": "".join(str(e) for e in events),
            "GetRun": str(got),
            "ListRuns": str(listed),
            "model requests": json.dumps(s.llm.requests),
            "logs and alerts": log_stream.getvalue(),
            "export": exported,
            "SQLite file": stored.decode("utf-8", "replace"),
        }
        assert "failed_run" in log_stream.getvalue()  # the alert was raised (and logged)
        assert "[REDACTED]" in places["model requests"]  # the model saw the redacted forms
        assert {k: _leaks(v) for k, v in places.items() if _leaks(v)} == {}


# --- item 13: a failed model call, as the caller sees it -----------------------------------------


async def test_a_failed_model_call_gives_a_short_reason(
    stack_fixture: Stack, log_stream: io.StringIO
) -> None:
    s = stack_fixture
    s.llm.reply(when="plan", status=500, content="internal: stack trace at /srv/model.py line 9")
    response = await s.run("Say hello")
    assert response.status == agent_pb2.RUN_STATUS_FAILED
    assert response.error == "the planner model failed (HTTP 500)"
    shown = str(response)
    for detail in (s.llm.base_url, "127.0.0.1", "stack trace", "/srv/model.py"):
        assert detail not in shown, detail
    # the details are kept for the operator
    assert "/srv/model.py" in log_stream.getvalue() and s.llm.base_url in log_stream.getvalue()


async def test_an_unreachable_model_gives_a_short_reason(
    stack_fixture: Stack, log_stream: io.StringIO
) -> None:
    s = stack_fixture
    await s.llm.stop()
    response = await s.run("Say hello")
    assert response.status == agent_pb2.RUN_STATUS_FAILED
    assert response.error in (
        "the planner model failed (endpoint unreachable)",
        "the planner model failed (timed out)",
    )
    assert s.llm.base_url not in str(response)
    assert s.llm.base_url in log_stream.getvalue()


@pytest.fixture
async def stack_fixture(tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in start_stack(tmp_path):
        yield s
