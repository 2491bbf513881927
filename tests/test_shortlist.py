"""The planner's per-task shortlist of a large catalog: ranking, and what the model is sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentd.config import ConfigError, load_config
from agentd.loop.shortlist import shortlist, words
from agentd.tools.upstream import AgentTool
from agentd.v1 import agent_pb2
from tests.support.plans import answer, plan
from tests.support.scripted_llm import schema_name
from tests.test_agent import start_stack, step


@dataclass(eq=False)
class FakeTool:
    name: str
    description: str
    method: str = ""
    side_effects: str = "none"
    model_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object"})


def _catalog(extra: list[FakeTool]) -> dict[str, FakeTool]:
    """Forty look-alike distractors and the tools under test."""
    tools = [FakeTool(f"Inventory{i}_GetItem{i}", f"Returns stock item {i}.") for i in range(40)]
    return {t.name: t for t in tools + extra}


def test_words_split_identifiers_and_fold_plurals() -> None:
    assert words("LedgerService_GetVendorByID") == ["ledger", "service", "vendor", "id"]
    assert words("How many vendors are in Berlin?") == ["many", "vendor", "berlin"]


def test_the_tool_the_task_names_ranks_first_and_ties_keep_name_order() -> None:
    vendor = FakeTool("LedgerService_GetVendor", "Returns one vendor: name, city and phone.")
    refund = FakeTool("PaymentsService_RefundPayment", "Refunds a captured payment.")
    tools = _catalog([vendor, refund])
    chosen = shortlist(tools, "What is the phone number of vendor ven_001?", 3)
    # Tools that share no word with the task are not offered, even with places free.
    assert list(chosen) == ["LedgerService_GetVendor"]
    # The same task always gets the same list.
    assert list(shortlist(tools, "What is the phone number of vendor ven_001?", 3)) == list(chosen)
    assert "PaymentsService_RefundPayment" in shortlist(tools, "refund payment pay_9", 3)


def test_other_methods_of_a_matching_service_fill_the_free_places() -> None:
    summary = FakeTool("Ledger_Summarize", "Totals spending per vendor.", "ledger.Ledger/Summarize")
    search = FakeTool("Ledger_Search", "Finds by name.", "ledger.Ledger/Search")
    tools = _catalog([summary, search])
    chosen = shortlist(tools, "How much spending at Northwind?", 3)
    # "Search" shares no word with the task; it comes in as the matching service's sibling,
    # and the unrelated zero-score tools stay out.
    assert set(chosen) == {"Ledger_Summarize", "Ledger_Search"}


def test_a_small_catalog_is_offered_whole_and_built_ins_always() -> None:
    tools = _catalog([])
    assert shortlist(tools, "anything", 0) is tools
    assert shortlist(tools, "anything", len(tools)) is tools
    memory = FakeTool("remember", "Stores a fact about the user.")
    memory.always_offered = True  # type: ignore[attr-defined]
    with_memory = {**tools, "remember": memory}
    assert shortlist(with_memory, "stock item 3", len(tools)) is with_memory  # only ranked count
    chosen = shortlist(with_memory, "stock item 3", 2)
    assert "remember" in chosen and len(chosen) == 3


def test_a_task_about_an_always_offered_tool_gets_no_ranked_ones() -> None:
    calculator = FakeTool("Calculator_Evaluate", "Evaluates one RPN expression.")
    calculator.always_offered = True  # type: ignore[attr-defined]
    refund = FakeTool("PaymentsService_RefundPayment", "Refunds a captured payment.")
    tools = _catalog([calculator, refund])
    # Named by its words: the calculator alone, not forty zero-score distractors.
    assert list(shortlist(tools, "Evaluate 3 4 + with the calculator", 5)) == [
        "Calculator_Evaluate"
    ]
    # Offered besides the ranked tools for a task that does not name it.
    chosen = shortlist(tools, "Refund the April payment minus the March one", 5)
    assert list(chosen) == ["Calculator_Evaluate", "PaymentsService_RefundPayment"]
    # A task that matches nothing at all still shows the planner k tools to choose from.
    assert len(shortlist(tools, "zzz qqq", 5)) == 6  # the first five by name and the calculator


def test_an_upstream_configured_always_offer_is_offered_past_the_shortlist(
    tmp_path: Path,
) -> None:
    config = tmp_path / "agentd.toml"
    config.write_text(
        '[[upstreams]]\nname = "calc"\ntarget = "127.0.0.1:1"\nallow = ["*"]\nalways_offer = true\n'
    )
    (up,) = load_config(config, env={}).upstreams
    tool = AgentTool("Calc_Evaluate", None, up, "allow", None)  # type: ignore[arg-type]
    assert up.always_offer and tool.always_offered
    config.write_text(config.read_text().replace("true", '"yes"'))
    with pytest.raises(ConfigError, match=r"upstreams\[0\]\.always_offer"):
        load_config(config, env={})


async def test_the_planner_sees_only_the_shortlist_and_the_record_says_which(
    tmp_path: Path,
) -> None:
    env = {"AGENTD_LIMITS_MAX_OFFERED_TOOLS": "2"}  # the example catalog has 7 tools here
    async for s in start_stack(tmp_path, env=env):
        s.llm.reply(
            when="plan",
            content=plan(
                {
                    "id": "s1",
                    "tool": "LedgerService_GetVendor",
                    "arguments": {"vendorId": "ven_001"},
                }
            ),
        )
        s.llm.reply(when="answer", content=answer("+49 61 254 7468"))
        response = await s.run("Look up the phone of vendor ven_001.")
        assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
        assert step(response, "s1").tool == "LedgerService_GetVendor"

        offered = list(response.plan.offered_tools)
        assert len(offered) == 2 and "LedgerService_GetVendor" in offered
        request = next(r for r in s.llm.requests if schema_name(r) == "plan")
        system = request["messages"][0]["content"]
        catalog = system.split("\nTools:\n", 1)[1]
        listed = [line[2:].split(":", 1)[0] for line in catalog.splitlines() if line[:2] == "- "]
        assert listed == sorted(offered)
        schema = request["response_format"]["json_schema"]["schema"]
        assert set(_tool_names(schema)) == set(offered)


def _tool_names(node: Any) -> list[str]:
    """Every ``tool`` name a plan schema allows (the ``enum`` of each step's ``tool``)."""
    if isinstance(node, dict):
        tool = node.get("properties", {}).get("tool") if "properties" in node else None
        found = list(tool.get("enum", [])) if isinstance(tool, dict) else []
        return found + [n for v in node.values() for n in _tool_names(v)]
    if isinstance(node, list):
        return [n for v in node for n in _tool_names(v)]
    return []


async def test_the_whole_catalog_when_it_fits(tmp_path: Path) -> None:
    async for s in start_stack(tmp_path):
        s.llm.reply(when="plan", content=plan(answer="hello"))
        response = await s.run("Say hello")
        assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
        assert list(response.plan.offered_tools) == []
        request = next(r for r in s.llm.requests if schema_name(r) == "plan")
        assert "CalculatorService_Evaluate" in request["messages"][0]["content"]
