"""toolgen.jsonschema_kit: the one JSON Schema toolkit, through the names agentd calls it by.

Every helper walks a schema by its keyword structure: a subschema is rewritten, data (``const``,
``enum``, ``default``) and names (a property called ``type``) are not. References are local
only; ``#`` and any ``#/...`` pointer resolve inside the document, nothing is retrieved.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agentd.llm.model import ToolSpec
from agentd.llm.request import tool_choice_schema
from agentd.llm.schemas import NotStrict, strict_schema, validator, without_nulls
from agentd.loop.describe import deref
from agentd.loop.plan import bounded, embed
from agentd.v1 import agent_pb2
from tests.support.scripted_llm import schema_name
from tests.test_agent import Stack
from tests.test_request_bounds import answers_everything, stack  # noqa: F401  (fixture)
from toolgen import jsonschema_kit as kit
from toolgen.schema import message_schema

ROOT = Path(__file__).resolve().parent.parent

# Subschema maps whose names are keywords elsewhere: "type", "enum", "$ref" are property names.
KEYWORD_NAMED = {
    "type": "object",
    "properties": {"type": {"type": "string"}, "items": {"type": "array"}},
    "patternProperties": {"type": {"type": "string"}},
    "dependentSchemas": {"type": {"required": ["items"]}},
    "definitions": {"type": {"type": "integer"}},
    "$defs": {"enum": {"type": "string"}},
}


def test_bounded_bounds_every_subschema_and_only_subschemas() -> None:
    out = bounded(KEYWORD_NAMED, 30, 4)
    assert out["properties"]["type"]["maxLength"] == 30
    assert out["properties"]["items"]["maxItems"] == 4
    assert out["patternProperties"]["type"]["maxLength"] == 30
    assert out["definitions"]["type"]["maximum"] == 10**15
    assert out["$defs"]["enum"]["maxLength"] == 30
    assert out["dependentSchemas"] == KEYWORD_NAMED["dependentSchemas"]
    data = {"type": "object", "const": {"type": "string"}, "default": {"type": "array"}}
    assert bounded(data, 30) == data  # data is not a schema, whatever its keys


def test_bounded_and_strict_leave_enum_and_const_values_alone() -> None:
    schema = {
        "type": "object",
        "properties": {
            "pick": {"enum": [{"type": "string", "a": 1}, "x"]},
            "fixed": {"const": {"type": "array", "$ref": "#"}},
        },
        "required": ["pick"],
        "additionalProperties": False,
    }
    assert bounded(schema, 10)["properties"] == schema["properties"]
    strict = strict_schema(schema)
    assert strict["properties"]["pick"]["enum"] == [{"type": "string", "a": 1}, "x"]
    assert strict["properties"]["fixed"] == {
        "anyOf": [{"enum": [{"type": "array", "$ref": "#"}]}, {"type": "null"}]
    }


def test_embed_moves_draft7_definitions_and_ignores_refs_in_data() -> None:
    tool = {
        "type": "object",
        "definitions": {"Money": {"type": "object", "properties": {"units": {"type": "string"}}}},
        "properties": {
            "amount": {"$ref": "#/definitions/Money"},
            "marker": {"const": {"$ref": "#"}},  # data: not a reference to anything
        },
        "required": ["amount"],
    }
    defs: dict[str, Any] = {}
    body = embed(tool, "t0_", defs)
    assert "definitions" not in body and set(defs) == {"t0_Money"}
    assert body["properties"]["amount"] == {"$ref": "#/$defs/t0_Money"}
    assert body["properties"]["marker"] == {"const": {"$ref": "#"}}
    document = {"type": "object", "properties": {"args": body}, "$defs": defs}
    check = validator(document)
    good = {"args": {"amount": {"units": "1"}, "marker": {"$ref": "#"}}}
    assert check.is_valid(good)
    assert not check.is_valid({"args": {"amount": {"units": 1}, "marker": {"$ref": "#"}}})


def test_embed_refuses_any_reference_into_its_root() -> None:
    for ref in ("#", "#/properties/name"):
        schema = {"type": "object", "properties": {"name": {"type": "string"}, "b": {"$ref": ref}}}
        with pytest.raises(ValueError, match="own root"):
            embed(schema, "t0_", {})


def test_tool_choice_schema_rebases_pointers_into_the_tool_root() -> None:
    tool = ToolSpec(
        "pair",
        "Two names of one shape",
        {
            "type": "object",
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "properties": {
                "first": {"type": "string", "maxLength": 5},
                "second": {"$ref": "#/properties/first"},
            },
            "required": ["first", "second"],
        },
    )
    schema = tool_choice_schema([tool])
    assert set(schema["$defs"]) == {"pair"}
    check = jsonschema.Draft202012Validator(schema)
    assert check.is_valid({"tool": "pair", "arguments": {"first": "a", "second": "b"}})
    assert not check.is_valid({"tool": "pair", "arguments": {"first": "a", "second": "b" * 9}})


def test_deref_follows_any_local_pointer_and_never_a_remote_one() -> None:
    root = {
        "$defs": {"A": {"type": "object", "properties": {"b/c": {"type": "integer"}}}},
        "properties": {"x": {"$ref": "#/$defs/A/properties/b~1c"}},
    }
    assert deref(root, {"$ref": "#/$defs/A/properties/b~1c"}) == {"type": "integer"}
    assert deref(root, {"$ref": "#/properties/x"}) == {"type": "integer"}
    assert deref(root, {"$ref": "#"}) is root
    assert deref(root, {"$ref": "http://127.0.0.1:9/x.json"}) == {}
    assert deref(root, {"$ref": "#/$defs/missing"}) == {}


def test_strict_optional_fields_accept_null_and_decode_without_them() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "kind": {"type": "string", "enum": ["a", "b"]},
            "at": {"$ref": "#/$defs/Point"},
            "n": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        },
        "required": ["name"],
        "additionalProperties": False,
        "$defs": {
            "Point": {
                "type": "object",
                "properties": {"x": {"type": "integer"}},
                "required": ["x"],
                "additionalProperties": False,
            }
        },
    }
    strict = strict_schema(schema)
    assert strict["required"] == ["name", "kind", "at", "n"]
    reply = {"name": "p", "kind": None, "at": None, "n": None}
    assert jsonschema.Draft202012Validator(strict).is_valid(reply)
    assert not jsonschema.Draft202012Validator(strict).is_valid({**reply, "name": None})
    assert jsonschema.Draft202012Validator(schema).is_valid(without_nulls(reply))
    with pytest.raises(NotStrict, match="#/properties/m: a map"):
        strict_schema(
            {"type": "object", "properties": {"m": {"type": "object", "additionalProperties": {}}}}
        )


def test_one_nullable_for_toolgen_and_agentd() -> None:
    for schema, expected in (
        ({"type": "string"}, {"type": ["string", "null"]}),
        ({"type": "string", "enum": ["A"]}, {"type": ["string", "null"], "enum": ["A", None]}),
        ({"$ref": "#/$defs/X"}, {"anyOf": [{"$ref": "#/$defs/X"}, {"type": "null"}]}),
        ({"anyOf": [{"type": "integer"}]}, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
        ({"anyOf": [{"type": "null", "description": "unset"}]}, None),
        ({"description": "anything"}, None),
    ):
        assert kit.nullable(schema) == (schema if expected is None else expected)


def test_the_three_dialects_differ_only_through_the_table() -> None:
    """The walk names no dialect: every difference is a DialectRules field it consults."""
    source = (ROOT / "toolgen" / "schema.py").read_text()
    tests = [
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and node.attr in ("strict", "grammar")
    ]
    assert tests == []
    for literal in ('== "openai"', '== "grammar"', '== "jsonschema"'):
        assert literal not in source
    assert set(kit.DIALECTS) == {"jsonschema", "grammar", "openai"}
    # Each field of the table changes what at least one dialect writes.
    fields = [f for f in kit.DialectRules.__dataclass_fields__ if f != "name"]
    for name in fields:
        assert len({getattr(rules, name) for rules in kit.DIALECTS.values()}) > 1, name


def test_an_unknown_dialect_names_the_three() -> None:
    descriptor = agent_pb2.RunRequest.DESCRIPTOR
    with pytest.raises(ValueError, match="'jsonschema', 'grammar' or 'openai'"):
        message_schema(descriptor, dialect="strict")  # type: ignore[arg-type]


async def test_response_schema_with_keyword_named_properties_runs(stack: Stack) -> None:  # noqa: F811
    """A caller's schema whose property or pattern is named like a keyword ("type") is bounded
    for the model and answered; it used to fail the run inside bounded()."""
    s = stack
    schema = {
        "type": "object",
        "properties": {"type": {"type": "string"}},
        "patternProperties": {"type": {"type": "string"}},
        "required": ["type"],
    }
    answers_everything(s, reply={"type": "city"})
    response = await s.run("t", response_schema=json.dumps(schema))
    assert response.status == agent_pb2.RUN_STATUS_SUCCEEDED, response.error
    assert json.loads(response.output) == {"type": "city"}
    sent = [body for body in s.llm.requests if schema_name(body) == "answer"]
    assert sent, "the responder was asked"
    answer = sent[-1]["response_format"]["json_schema"]["schema"]["properties"]["answer"]
    assert answer["properties"]["type"]["maxLength"] > 0
