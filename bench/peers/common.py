"""What the peers share: the task text, the stubs they call, and which frameworks exist."""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata

from examples.calculator.v1 import calculator_pb2_grpc
from examples.ledger.v1 import ledger_pb2_grpc

MODEL = "scripted-model"
INSTRUCTIONS = (
    "You answer questions about the company's ledger with the tools you have. "
    "Amounts are in minor units. Call independent tools in parallel."
)
# Turns (model calls) allowed per run; the fan-out needs 10 when the model calls one tool a turn.
MAX_TURNS = 20

RunTask = Callable[[str], Awaitable[str]]


@dataclass(frozen=True)
class Stubs:
    """The generated stubs, on one channel per service shared by every run (as a user would)."""

    ledger: ledger_pb2_grpc.LedgerServiceStub
    calculator: calculator_pb2_grpc.CalculatorServiceStub


@dataclass(frozen=True)
class Framework:
    name: str  # shown in the table and the JSON
    module: str  # bench.peers.<module> builds its agent
    needs: tuple[str, ...]  # importable top-level packages
    dists: tuple[str, ...]  # distributions whose versions are recorded

    def installed(self) -> bool:
        return all(importlib.util.find_spec(n) is not None for n in self.needs)

    def versions(self) -> dict[str, str]:
        return {d: metadata.version(d) for d in self.dists}


FRAMEWORKS: tuple[Framework, ...] = (
    Framework("openai-agents", "with_openai_agents", ("agents",), ("openai-agents", "openai")),
    Framework(
        "langgraph",
        "with_langgraph",
        ("langgraph", "langchain_openai"),
        ("langgraph", "langchain-openai", "langchain-core", "openai"),
    ),
    Framework("pydantic-ai", "with_pydantic_ai", ("pydantic_ai",), ("pydantic-ai-slim", "openai")),
)
BY_NAME = {f.name: f for f in FRAMEWORKS}
