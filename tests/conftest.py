"""Shared fixtures: the example upstream services, started on 127.0.0.1 with ephemeral ports."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator

import pytest
import structlog

from examples.calculator.server import CalculatorServer
from examples.calculator.server import serve as serve_calculator
from examples.ledger.server import LedgerServer
from examples.ledger.server import serve as serve_ledger

# Daemon logs go to stderr, as under `agentd serve`: in-process CLI tests read stdout.
structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))


@pytest.fixture(autouse=True)
def _structlog_config_per_test() -> Iterator[None]:
    """Each test starts with the logging set-up above: an in-process `agentd eval` or serve
    configures structlog for the process (e.g. level "error"), which would hide the info lines
    a later test captures."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
async def ledger_server() -> AsyncIterator[LedgerServer]:
    """The ledger service with fresh data, speaking only `grpc.reflection.v1`."""
    server = await serve_ledger(reflection="v1")
    yield server
    await server.stop(None)


@pytest.fixture
async def ledger_server_both() -> AsyncIterator[LedgerServer]:
    """The ledger service speaking both reflection versions."""
    server = await serve_ledger(reflection="both")
    yield server
    await server.stop(None)


@pytest.fixture
async def calculator_server() -> AsyncIterator[CalculatorServer]:
    """The calculator service, speaking only `grpc.reflection.v1alpha` like Python servers."""
    server = await serve_calculator(reflection="v1alpha")
    yield server
    await server.stop(None)
