"""The LangGraph peer: the graph of its agent tutorial (model node, ``ToolNode``, a loop)."""

from __future__ import annotations

from typing import Any

from google.protobuf.json_format import MessageToDict
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from pydantic import SecretStr

from bench.peers.common import INSTRUCTIONS, MAX_TURNS, MODEL, RunTask, Stubs
from examples.calculator.v1 import calculator_pb2
from examples.ledger.v1 import ledger_pb2

FRAMEWORK = "langgraph"


def build(llm_url: str, stubs: Stubs) -> RunTask:
    @tool
    async def summarize_transactions(vendor_id: str) -> dict[str, Any]:
        """Total spending with one vendor (amounts in minor units).

        Args:
            vendor_id: the vendor's id, like ven_001.
        """
        request = ledger_pb2.SummarizeTransactionsRequest(vendor_id=vendor_id)
        return MessageToDict(await stubs.ledger.SummarizeTransactions(request))

    @tool
    async def evaluate(expression: str) -> dict[str, Any]:
        """Evaluate one RPN expression, like "2 3 +".

        Args:
            expression: numbers and operators separated by spaces, in reverse Polish notation.
        """
        request = calculator_pb2.EvaluateRequest(expression=expression)
        return MessageToDict(await stubs.calculator.Evaluate(request))

    tools = [summarize_transactions, evaluate]
    model = ChatOpenAI(model=MODEL, base_url=llm_url, api_key=SecretStr("sk-bench")).bind_tools(
        tools
    )

    async def call_model(state: MessagesState) -> dict[str, Any]:
        messages = [{"role": "system", "content": INSTRUCTIONS}, *state["messages"]]
        return {"messages": [await model.ainvoke(messages)]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    agent = graph.compile()

    async def run(task: str) -> str:
        # Each model turn and each tool turn is one graph step.
        config = RunnableConfig(recursion_limit=2 * MAX_TURNS + 1)
        state = await agent.ainvoke(MessagesState(messages=[HumanMessage(task)]), config)
        return str(state["messages"][-1].content)

    return run
