"""Every schema a model decodes under uses only what constrained decoders enforce.

llama.cpp (GBNF and llguidance), vLLM's structured outputs (xgrammar, outlines) and OpenAI strict
mode all enforce the keywords in ``ENFORCED``; anything else (``prefixItems`` becomes a
fixed-length tuple, ``dependentSchemas``, ``not``, ``uniqueItems``, ``propertyNames`` are
ignored) would let a grammar-valid reply fail the checks afterwards, or force a shape the model
did not mean. The test holds the rule over the grammar dialect of every test proto and over the
plan, answer and tool-call schemas built from them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest

from agentd.llm.model import ToolSpec
from agentd.llm.request import tool_choice_schema
from agentd.llm.schemas import NotStrict, strict_schema
from agentd.loop.plan import bounded, check_plan, decode_plan, plan_schema
from agentd.tools.upstream import MODEL_BOUNDS
from examples.ledger.v1 import ledger_pb2
from tests.test_schema import schema_for, targets
from toolgen.schema import message_schema

ENFORCED = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "anyOf",
    "$ref",
    "$defs",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
}
ANNOTATIONS = {"title", "description", "default"}
# Keywords whose value maps names to schemas (the names are not keywords).
NAMED = {"properties", "$defs"}


def problems(schema: Any, where: str = "#") -> Iterator[str]:
    """Every keyword outside the allowlist, and every use the engines would not enforce."""
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            yield from problems(item, f"{where}/{i}")
        return
    if not isinstance(schema, dict):
        return
    for key, value in schema.items():
        if key not in ENFORCED | ANNOTATIONS:
            yield f"{where}: {key}"
        elif key in NAMED:
            for name, sub in value.items():
                yield from problems(sub, f"{where}/{key}/{name}")
        elif key in ("items", "additionalProperties", "anyOf"):
            yield from problems(value, f"{where}/{key}")
    siblings = set(schema) - ANNOTATIONS - {"anyOf", "$defs"}
    if "anyOf" in schema and siblings:
        # llama.cpp compiles a union alone and drops its siblings.
        yield f"{where}: anyOf beside {sorted(siblings)}"
    kinds = schema.get("type")
    integer = kinds == "integer" or (isinstance(kinds, list) and "integer" in kinds)
    if ("minimum" in schema or "maximum" in schema) and not integer:
        yield f"{where}: number bounds outside integers are not enforced by GBNF"
    pattern = schema.get("pattern")
    if pattern is not None and not (pattern.startswith("^") and pattern.endswith("$")):
        yield f"{where}: pattern {pattern!r} is not anchored"


def grammar_schema(root: Any) -> dict[str, Any]:
    return schema_for(root, "grammar", "input", bounds=MODEL_BOUNDS)


@pytest.mark.parametrize("name", sorted(targets()))
def test_grammar_dialect_uses_only_enforced_keywords(name: str) -> None:
    for root in targets()[name]:
        schema = grammar_schema(root)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert list(problems(schema)) == [], root.full_name


@dataclass
class Tool:
    name: str
    model_schema: dict[str, Any]
    input_schema: dict[str, Any] = field(default_factory=dict)
    method: str = "/pkg.S/M"
    description: str = ""
    side_effects: str = "none"
    policy: str = "allow"

    async def invoke(self, arguments: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {}


def every_tool() -> dict[str, Tool]:
    tools = {}
    for roots in targets().values():
        for root in roots:
            if root.full_name.startswith("google.protobuf.") and root.name in (
                "Struct",
                "ListValue",
            ):
                continue  # not objects: never a request message
            name = root.full_name.replace(".", "_")[:64]
            tools[name] = Tool(name, grammar_schema(root))
    return tools


def test_plan_answer_and_tool_call_schemas_use_only_enforced_keywords() -> None:
    tools = every_tool()
    plan = plan_schema(tools, max_steps=4, done=["s1"], taken=["s1"])
    assert list(problems(plan)) == []
    specs = [ToolSpec(t.name, "", t.model_schema) for t in list(tools.values())[:8]]
    assert list(problems(tool_choice_schema(specs))) == []
    answer = bounded(
        {"type": "object", "properties": {"n": {"type": "integer"}, "s": {"type": "string"}}},
        400,
    )
    assert list(problems(answer)) == []


def test_a_oneof_is_a_union_of_branches_each_with_at_most_one_member() -> None:
    request = ledger_pb2.SummarizeTransactionsRequest.DESCRIPTOR
    grammar = jsonschema.Draft202012Validator(message_schema(request, dialect="grammar"))
    full = jsonschema.Draft202012Validator(message_schema(request))
    for instance in ({}, {"vendorId": "ven_001"}, {"category": "CATEGORY_RENT", "topN": 3}):
        assert grammar.is_valid(instance) and full.is_valid(instance), instance
    both = {"vendorId": "ven_001", "category": "CATEGORY_RENT"}
    assert not grammar.is_valid(both) and not full.is_valid(both)


# OpenAI strict mode (structured-outputs guide, "Supported schemas") refuses string lengths and
# takes an enum where a grammar takes const.
STRICT_KEYWORDS = (ENFORCED - {"minLength", "maxLength", "const"}) | {"description"}


def strict_problems(schema: Any, where: str = "#") -> Iterator[str]:
    """Every rule of OpenAI strict mode ``schema`` breaks: unsupported keywords, objects that do
    not require all their properties or allow others."""
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            yield from strict_problems(item, f"{where}/{i}")
        return
    if not isinstance(schema, dict):
        return
    for key, value in schema.items():
        if key not in STRICT_KEYWORDS:
            yield f"{where}: {key}"
        elif key in NAMED:
            for name, sub in value.items():
                yield from strict_problems(sub, f"{where}/{key}/{name}")
        elif key in ("items", "anyOf"):
            yield from strict_problems(value, f"{where}/{key}")
    if schema.get("type") == "object":
        if schema.get("additionalProperties") is not False:
            yield f"{where}: additionalProperties must be false"
        if set(schema.get("required", [])) != set(schema.get("properties", {})):
            yield f"{where}: every property must be required"


def test_plans_for_native_endpoints_meet_openai_strict_mode() -> None:
    """Each test proto's tool alone: its plan converts to strict mode and keeps the rules, or
    it holds a map or an open object (Struct, Any), which strict mode cannot express."""
    converted = refused = 0
    for name, tool in every_tool().items():
        plan = plan_schema({name: tool}, max_steps=3, union=False)
        try:
            strict = strict_schema(plan)
        except NotStrict as exc:
            assert "additionalProperties" in str(exc) or "without properties" in str(exc), name
            refused += 1
            continue
        converted += 1
        assert "anyOf" not in strict and strict["type"] == "object"
        assert list(strict_problems(strict)) == [], name
        jsonschema.Draft202012Validator.check_schema(strict)
    assert converted > refused > 0  # both paths are exercised by the test protos


def test_a_strict_plan_reply_decodes_to_the_arguments_without_its_nulls() -> None:
    request = ledger_pb2.SummarizeTransactionsRequest.DESCRIPTOR
    tool = Tool("Summarize", message_schema(request, dialect="grammar", bounds=MODEL_BOUNDS))
    strict = strict_schema(plan_schema({"Summarize": tool}, max_steps=2, union=False))
    arguments = {
        "startDate": {"year": 2025, "month": 3, "day": 1},
        "endDate": None,
        "groupBy": None,
        "topN": None,
        "includeIncome": None,
        "category": "CATEGORY_RENT",
    }
    step = {"id": "s1", "call": {"tool": "Summarize", "arguments": arguments}}
    reply = {"steps": [{**step, "depends_on": [], "purpose": None}], "answer": None}
    reply["rationale"] = "one call"
    assert jsonschema.Draft202012Validator(strict).is_valid(reply)
    plan = decode_plan(reply, revision=0)
    assert plan.steps[0].arguments == {
        "startDate": {"year": 2025, "month": 3, "day": 1},
        "category": "CATEGORY_RENT",
    }
    assert check_plan(plan, {"Summarize": tool}, []) == []
