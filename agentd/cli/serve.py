"""``agentd serve`` runs the daemon; ``agentd health`` checks one the way a load balancer does."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Coroutine
from typing import Any

import grpc

from agentd.cli.channel import BadOption, add_connection_options, connection, target
from agentd.cli.common import Exit, add_command, fail


def add_commands(commands: Any) -> None:
    serve_parser = add_command(
        commands,
        "serve",
        "run the daemon",
        "Run the daemon: the gRPC AgentService on server.listen (and the health "
        "service on server.health_listen), until SIGTERM or Ctrl-C. Exit 2: the config or an "
        "option cannot be used (one line names it).",
        "  agentd serve --config examples/agentd.toml\n"
        "  AGENTD_LLM_MODEL=gpt-4o-mini agentd serve -c agentd.toml",
    )
    serve_parser.add_argument(
        "--config", "-c", metavar="FILE", help="TOML config (default: built-in defaults)"
    )
    serve_parser.set_defaults(func=lambda args: serve(args.config))

    health = add_command(
        commands,
        "health",
        "check a daemon's gRPC health service (exit 0 when serving)",
        "Calls grpc.health.v1.Health/Check, as a load balancer or a container "
        "health check does. Exit 0: SERVING; 3: unreachable; 5: any other status.",
        "  agentd health --target 127.0.0.1:8081   # server.health_listen",
    )
    health.add_argument("--service", default="", help="the service to check (default: the server)")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    add_connection_options(health)
    health.set_defaults(func=health_check)


def serve(path: str | None) -> int:
    from agentd.api.identity import load_tokens
    from agentd.api.server import Daemon
    from agentd.config import ConfigError, load_config
    from agentd.llm import EmbeddedModelError
    from agentd.telemetry import logs, setup_tracing, shutdown

    try:
        config = load_config(path)
    except ConfigError as exc:
        return fail(str(exc), Exit.USAGE)
    logs.configure(config.logging.level, config.logging.format)
    try:
        setup_tracing()
    except ValueError as exc:  # an unknown OTEL_TRACES_EXPORTER or protocol
        return fail(str(exc), Exit.USAGE)
    try:
        load_tokens(config.server.auth, os.environ)  # a malformed entry names its line
        check_examples(config)  # one line naming the file, the example and the key
    except ConfigError as exc:
        return fail(str(exc), Exit.USAGE)
    daemon = Daemon(config, env=dict(os.environ))

    async def main() -> None:
        await daemon.start()
        print(f"agentd listening on {daemon.address}", flush=True)
        if daemon.health_address:
            print(f"agentd health on {daemon.health_address}", flush=True)
        await daemon.serve_forever()

    try:
        run_loop(main(), config.server.event_loop)
    except EmbeddedModelError as exc:
        return fail(str(exc), Exit.USAGE)
    except (OSError, RuntimeError, ValueError) as exc:
        return fail(f"cannot start: {exc}", Exit.USAGE)
    finally:
        shutdown()  # export the last spans before the process ends
    return 0


def check_examples(config: Any) -> None:
    """The plan library's file (``examples.file``) loads, or a ConfigError naming the config
    file, the examples file, the example and the key."""
    from agentd.config import ConfigError
    from agentd.library.file import ExampleFileError, load_examples

    if config.examples.file:
        try:
            load_examples(config.examples.file, config.examples.max_plan_chars)
        except ExampleFileError as exc:
            raise ConfigError(f"{config.source}: examples.file: {exc}") from None


def run_loop(main: Coroutine[Any, Any, None], event_loop: str) -> None:
    """Run ``main`` on uvloop (``server.event_loop``; agentd[fast] installs it) or asyncio's
    own loop: uvloop's sockets and callbacks cost less CPU per run (README, Benchmarks)."""
    if event_loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if event_loop == "uvloop":
                raise RuntimeError(
                    "server.event_loop = 'uvloop' but uvloop is not installed;"
                    " pip install 'agentd[fast]'"
                ) from None
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


async def health_check(args: argparse.Namespace) -> int:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    address = target(args)
    try:
        conn = connection(args)
    except BadOption as exc:
        return fail(str(exc), Exit.USAGE)
    async with conn.channel(address) as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return fail(f"{address} is unreachable ({exc.details()})", Exit.UNREACHABLE)
            return fail(f"{exc.code().name}: {exc.details() or args.service}", Exit.NOT_SUCCEEDED)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(status)
    return (
        Exit.OK if response.status == health_pb2.HealthCheckResponse.SERVING else Exit.NOT_SUCCEEDED
    )
