"""The daemon: models, catalog, store and AgentService on one grpc.aio server.

``Daemon`` is what ``agentd serve`` runs and what tests start in-process: the
same code path, on an ephemeral port when ``listen`` ends in ``:0``.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import structlog
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer  # the grpc.aio servicer (health.aio)

from agentd.api import errors
from agentd.api.audit import Auditor
from agentd.api.decoding import DecodeGuard
from agentd.api.identity import Authenticator
from agentd.api.service import AgentService
from agentd.config import AuthConfig, Config
from agentd.llm import EmbeddedModel, build_models, close_models
from agentd.llm.model import ChatModel
from agentd.loop.agent import Agent
from agentd.loop.guardrails import Guardrails
from agentd.loop.prompts import load_overrides
from agentd.runs.alerts import Alerter
from agentd.runs.approvals import Supervisor
from agentd.runs.sealing import Sealer
from agentd.runs.service import Runs
from agentd.store import open_store
from agentd.telemetry import flush, server_spans, setup_metrics, setup_tracing
from agentd.tools.upstream import ToolCatalog
from agentd.v1 import agent_pb2, agent_pb2_grpc
from toolgen.reflection_server import enable_reflection

log = structlog.get_logger("agentd.api.server")
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
SERVICE_NAME = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name
# Health and reflection stay open so load balancers and `toolgen preview` work.
_OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
# Calls gRPC core holds for the application before it cancels them (its default: 1,000).
_MAX_PENDING_CALLS = 10_000


def _api_docs() -> list[descriptor_pb2.FileDescriptorProto]:
    """agent.proto's descriptors with their comments (agentd/v1/agent.binpb, written by
    `make protos`), so reflection clients (grpcurl describe, ...) show the API's docs."""
    path = Path(agent_pb2.__file__).with_name("agent.binpb")
    try:
        return list(descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file)
    except OSError as exc:
        log.warning("reflection serves agentd's API without comments", reason=str(exc))
        return []


class BearerAuth(grpc.aio.ServerInterceptor):
    """Bearer tokens, compared in constant time; UNAUTHENTICATED otherwise."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = details.method or ""
        metadata = list(details.invocation_metadata or ())
        if method.startswith(_OPEN_PREFIXES) or self.authenticator.token_principal(metadata):
            return await continuation(details)
        log.info("audit", method=method, principal=None, outcome="UNAUTHENTICATED")
        return _deny_handler()


def _deny_handler() -> grpc.RpcMethodHandler:
    async def deny(request: Any, context: grpc.aio.ServicerContext) -> Any:
        refusal = errors.Unauthenticated(
            "missing or invalid bearer token in the authorization metadata"
        )
        await errors.abort(context, refusal)

    return grpc.unary_unary_rpc_method_handler(deny)


@dataclass
class Daemon:
    config: Config
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    server: grpc.aio.Server | None = None
    catalog: ToolCatalog | None = None
    service: AgentService | None = None
    embedded: EmbeddedModel | None = None
    models: dict[str, ChatModel] = field(default_factory=dict)
    supervisor: Supervisor | None = None
    health_port: int = 0  # of server.health_listen, when set
    _health: HealthServicer | None = None
    _health_server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        host = self.config.server.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    @property
    def health_address(self) -> str:
        host = self.config.server.health_listen.rpartition(":")[0]
        return f"{host}:{self.health_port}" if self.health_port else ""

    async def start(self) -> None:
        config = self.config
        # First, so a bad key stops the start before anything else is up.
        sealer = Sealer.from_env(config.approvals.seal_key_env, self.env)
        setup_tracing(self.env)
        setup_metrics(self.env)
        if config.uses_embedded_model:
            self.embedded = EmbeddedModel(
                config.embedded.model,
                threads=config.embedded.threads,
                n_ctx=config.embedded.context,
                parallel=config.embedded.slots,
            )
            await self.embedded.start()
            log.info("embedded model ready", base_url=self.embedded.base_url)
        self.models = build_models(config.models, embedded=self.embedded, env=self.env)
        self.catalog = ToolCatalog(config.upstreams, retry_s=config.agent.discovery_retry_s)
        await self.catalog.start()
        store = open_store(config.storage)
        store.lease_s = config.storage.lease_s
        guard_model = config.models["guard"].model if "guard" in config.models else ""
        guardrails = Guardrails(config.guardrails, guard_model)
        overrides = load_overrides(config.prompts)  # [prompts]: templates replaced by files
        agent = Agent(self.models, config.limits, guardrails, overrides)
        authenticator = Authenticator(config.server.auth, self.env)
        runs = Runs(
            config,
            self.catalog,
            agent,
            store,
            Alerter(config.alerts),
            sealer,
            inbound_tokens=authenticator.uses_tokens,
        )
        self.service = AgentService(runs)

        def warm() -> None:
            # The services' tools. The memory tools a run with a user also has sort after
            # them (lower case), so this is the start of that run's catalog too.
            assert self.catalog is not None
            agent.warm_up(self.catalog.tools)

        warm()
        self.catalog.on_change = warm  # an upstream that was down at start came up

        # Tracing first, so even calls the auth check refuses get a span.
        interceptors: list[grpc.aio.ServerInterceptor] = [server_spans([SERVICE_NAME])]
        auth = config.server.auth
        if authenticator.uses_tokens:
            if not authenticator.tokens:
                raise ValueError("server.auth: bearer tokens are configured but none were found")
            interceptors.append(BearerAuth(authenticator))
        # Every AgentService call audited once, refusals included, errors to their status.
        interceptors.append(Auditor(authenticator, f"/{SERVICE_NAME}/"))
        # Last, so it wraps the method's own handler: undecodable requests by field name.
        interceptors.append(DecodeGuard())
        size = config.server.max_message_bytes
        # gRPC core cancels calls still waiting for the application past 1,000 (by default):
        # a burst of Runs then fails CANCELLED, which callers read as their own doing. Let
        # every call in; max_concurrent_runs sheds load with RESOURCE_EXHAUSTED instead.
        pending = max(_MAX_PENDING_CALLS, 4 * config.server.max_concurrent_runs)
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
            ("grpc.server.max_pending_requests", pending),
            ("grpc.server.max_pending_requests_hard_limit", pending),
        ]
        if config.server.max_connection_age_s:
            # After a GOAWAY, calls in flight get a run's whole time limit to finish.
            grace_s = config.limits.run_timeout_s + 5
            options += [
                ("grpc.max_connection_age_ms", int(config.server.max_connection_age_s * 1000)),
                ("grpc.max_connection_age_grace_ms", int(grace_s * 1000)),
            ]
        self.server = grpc.aio.server(interceptors=interceptors, options=options)
        agent_pb2_grpc.add_AgentServiceServicer_to_server(self.service, self.server)
        # Takes over the runs of replicas that died and expires undecided approvals.
        self.supervisor = Supervisor(runs)
        self._health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self.server)
        enable_reflection(self.server, [SERVICE_NAME, HEALTH_SERVICE], commented=_api_docs())
        self.port = self._bind(config.server.listen, auth)
        if config.server.health_listen:
            # Plaintext and health only: what kubelet's gRPC probes (which cannot do TLS) and
            # the image's HEALTHCHECK dial. It reports the same servicer as the main port.
            self._health_server = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._health_server)
            self.health_port = self._health_server.add_insecure_port(config.server.health_listen)
            await self._health_server.start()
        await self.server.start()
        self.supervisor.start()
        status = health_pb2.HealthCheckResponse.SERVING
        await self._health.set("", status)
        await self._health.set(SERVICE_NAME, status)
        log.info(
            "agentd serving",
            address=self.address,
            health=self.health_address or None,
            tools=len(self.catalog.tools),
            unavailable=self.catalog.unavailable or None,
        )

    def _bind(self, listen: str, auth: AuthConfig) -> int:
        assert self.server is not None
        if auth.tls_cert and auth.tls_key:
            client_ca = Path(auth.client_ca).read_bytes() if auth.client_ca else None
            credentials = grpc.ssl_server_credentials(
                [(Path(auth.tls_key).read_bytes(), Path(auth.tls_cert).read_bytes())],
                root_certificates=client_ca,
                require_client_auth=client_ca is not None,
            )
            return self.server.add_secure_port(listen, credentials)
        return self.server.add_insecure_port(listen)

    async def warmed(self) -> None:
        """Returns once the embedded model's prompt cache holds the static prompt prefixes
        (started by ``start``, in the background; at once without the embedded model)."""
        if self.service:
            await self.service.runs.agent.warmup.finished()

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting runs, let in-flight ones finish for ``grace`` seconds, then close."""
        if self._health:
            await self._health.enter_graceful_shutdown()
        if self.supervisor:
            await self.supervisor.stop()
        if self.server:
            await self.server.stop(self.config.server.grace_s if grace is None else grace)
        if self._health_server:  # kept to the end, answering NOT_SERVING while runs drain
            await self._health_server.stop(None)
        if self.service:
            await self.service.runs.agent.warmup.stop()
        if self.catalog:
            await self.catalog.close()
        if self.service:
            await self.service.runs.alerter.close()
            await self.service.runs.store.close()
        await close_models(self.models)
        # Export what is buffered (off the loop: a slow collector must not stall it); the
        # provider stays usable, since tests and `make run` start several daemons per process.
        await asyncio.to_thread(flush)
        if self.embedded:
            await self.embedded.stop()

    async def serve_forever(self) -> None:
        """Serve until SIGINT or SIGTERM, then drain."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down", grace_s=self.config.server.grace_s)
        await self.stop()
