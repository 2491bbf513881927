"""The Pydantic AI peer: an ``Agent`` with two plain tools over the example stubs."""

from __future__ import annotations

from typing import Any

from google.protobuf.json_format import MessageToDict
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from bench.peers.common import INSTRUCTIONS, MODEL, RunTask, Stubs
from examples.calculator.v1 import calculator_pb2
from examples.ledger.v1 import ledger_pb2

FRAMEWORK = "pydantic-ai-slim"


def build(llm_url: str, stubs: Stubs) -> RunTask:
    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=llm_url, api_key="sk-bench"))
    agent = Agent(model, instructions=INSTRUCTIONS)

    @agent.tool_plain
    async def summarize_transactions(vendor_id: str) -> dict[str, Any]:
        """Total spending with one vendor (amounts in minor units).

        Args:
            vendor_id: the vendor's id, like ven_001.
        """
        request = ledger_pb2.SummarizeTransactionsRequest(vendor_id=vendor_id)
        return MessageToDict(await stubs.ledger.SummarizeTransactions(request))

    @agent.tool_plain
    async def evaluate(expression: str) -> dict[str, Any]:
        """Evaluate one RPN expression, like "2 3 +".

        Args:
            expression: numbers and operators separated by spaces, in reverse Polish notation.
        """
        request = calculator_pb2.EvaluateRequest(expression=expression)
        return MessageToDict(await stubs.calculator.Evaluate(request))

    async def run(task: str) -> str:
        result = await agent.run(task)
        return result.output

    return run
