"""The OpenAI Agents SDK peer: an ``Agent`` with two function tools over the example stubs."""

from __future__ import annotations

from typing import Any

from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from google.protobuf.json_format import MessageToDict
from openai import AsyncOpenAI

from bench.peers.common import INSTRUCTIONS, MAX_TURNS, MODEL, RunTask, Stubs
from examples.calculator.v1 import calculator_pb2
from examples.ledger.v1 import ledger_pb2

FRAMEWORK = "openai-agents"


def build(llm_url: str, stubs: Stubs) -> RunTask:
    # The SDK would upload traces to OpenAI; with another endpoint its docs say to turn that off.
    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=llm_url, api_key="sk-bench")

    @function_tool
    async def summarize_transactions(vendor_id: str) -> dict[str, Any]:
        """Total spending with one vendor (amounts in minor units).

        Args:
            vendor_id: the vendor's id, like ven_001.
        """
        request = ledger_pb2.SummarizeTransactionsRequest(vendor_id=vendor_id)
        return MessageToDict(await stubs.ledger.SummarizeTransactions(request))

    @function_tool
    async def evaluate(expression: str) -> dict[str, Any]:
        """Evaluate one RPN expression, like "2 3 +".

        Args:
            expression: numbers and operators separated by spaces, in reverse Polish notation.
        """
        request = calculator_pb2.EvaluateRequest(expression=expression)
        return MessageToDict(await stubs.calculator.Evaluate(request))

    agent = Agent(
        name="ledger",
        instructions=INSTRUCTIONS,
        tools=[summarize_transactions, evaluate],
        model=OpenAIChatCompletionsModel(model=MODEL, openai_client=client),
    )

    async def run(task: str) -> str:
        result = await Runner.run(agent, task, max_turns=MAX_TURNS)
        return str(result.final_output)

    return run
