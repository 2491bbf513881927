"""The tool catalog as a model reads it: one short block per tool, built from its schemas.

A grammar keeps a reply well formed, but it cannot tell a model what a field means or what a
result will hold. So each tool shows its arguments with their types, allowed values and the
first sentence of their proto comments, and the fields of its result, which plans reference as
``$s1.field``. The text depends only on the tools, so it sits in the static prompt prefix that
llama.cpp's prompt cache reuses across runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from agentd.llm.schemas import IdentityCache
from toolgen.jsonschema_kit import deref

_MAX_DEPTH = 3
_MAX_NOTE = 90
# A sentence ends at a period before a capital letter (so "e.g. 3" does not end one).
_FIRST_SENTENCE = re.compile(r"^(.+?\.)(?:\s+[A-Z`]|$)", re.S)


class DescribedTool(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def side_effects(self) -> str: ...
    @property
    def model_schema(self) -> dict[str, Any]: ...


def describe_catalog(tools: Mapping[str, DescribedTool]) -> str:
    """Every tool, sorted by name, or ``(none)``."""
    blocks = [_described(tools[name]) for name in sorted(tools)]
    return "\n".join(blocks) or "(none)"


# Every planner call needs the catalog text, and a catalog snapshot's tools do not change:
# each tool's block is written once.
_DESCRIBED: IdentityCache[str] = IdentityCache(4096)


def _described(tool: DescribedTool) -> str:
    return _DESCRIBED.get((tool,), lambda: describe_tool(tool))


def describe_tool(tool: DescribedTool) -> str:
    """``- name: description`` then one line per argument and one for the result's fields."""
    schema = tool.model_schema
    effects = "" if tool.side_effects == "none" else f" [side effects: {tool.side_effects}]"
    lines = [f"- {tool.name}: {_clip(' '.join(tool.description.split()), 300)}{effects}"]
    properties, required, oneofs = _fields(schema, schema)
    for name, prop in properties.items():
        note = _note(prop)
        choice = oneofs.get(name)
        if choice:
            note = f"{note} (set at most one of {', '.join(choice)})".strip()
        kind = _type(schema, prop, 1)
        lines.append(
            f"    {_signature(name, kind, name in required)}{' - ' + note if note else ''}"
        )
    output = getattr(tool, "output_schema", None)
    if isinstance(output, dict):
        lines.append(f"    returns {_type(output, output, 1, values=False)}")
    return "\n".join(lines)


def _fields(
    root: Mapping[str, Any], node: Mapping[str, Any]
) -> tuple[dict[str, Any], set[str], dict[str, list[str]]]:
    """(properties, required, oneof member -> its alternatives) of an object schema.

    A message with oneofs arrives as an ``anyOf`` of branches: fields in every branch are
    ordinary, the others are the members of a oneof.
    """
    node = deref(root, node)
    branches = [deref(root, b) for b in node.get("anyOf", [])] or [node]
    properties: dict[str, Any] = {}
    for branch in branches:
        properties.update(branch.get("properties") or {})
    required = set(branches[0].get("required") or [])
    common = set.intersection(*(set(b.get("properties") or {}) for b in branches))
    members = [name for name in properties if name not in common]
    oneofs = {name: members for name in members} if len(branches) > 1 else {}
    return properties, required, oneofs


def _type(root: Mapping[str, Any], node: Any, depth: int, *, values: bool = True) -> str:
    """A compact type: ``{a: int, b: list of string}``; enums list their values if ``values``."""
    node = deref(root, node)
    if not isinstance(node, Mapping):
        return "any"
    if "enum" in node and not values:
        return "string"
    if "enum" in node:
        named = [str(v) for v in node["enum"] if not str(v).endswith("_UNSPECIFIED")]
        return " | ".join(named[:16]) + (" | ..." if len(named) > 16 else "")
    kinds = node.get("type")
    if "anyOf" in node and kinds is None:
        branches = [deref(root, b) for b in node["anyOf"]]
        if all(isinstance(b, Mapping) and "properties" in b for b in branches):
            kinds = "object"  # a message with oneofs
        else:
            kinds_seen = {b.get("type") for b in branches if isinstance(b, Mapping)}
            if "number" in kinds_seen:  # floats: a number or "NaN" / "Infinity"
                return "number"
            enum = next((b for b in branches if isinstance(b, Mapping) and "enum" in b), None)
            if enum is not None:  # an enum as names or numbers: the names say more
                return _type(root, enum, depth, values=values)
            if "integer" in kinds_seen:  # 64-bit integers: an integer or its decimal string
                return "int"
            seen = {_type(root, b, depth, values=values) for b in branches} - {"null"}
            return " | ".join(sorted(seen))
    if isinstance(kinds, list):
        kinds = next((k for k in kinds if k != "null"), "any")
    if kinds == "array":
        return f"list of {_type(root, node.get('items', {}), depth, values=values)}"
    if kinds == "object":
        if depth > _MAX_DEPTH:
            return "{...}"
        properties, _, _ = _fields(root, node)
        if not properties:
            return "object"
        inner = ", ".join(
            f"{n}: {_type(root, p, depth + 1, values=values)}" for n, p in properties.items()
        )
        return "{" + inner + "}"
    return {"integer": "int", "boolean": "bool", None: "any"}.get(kinds, str(kinds))


def _signature(name: str, kind: str, required: bool) -> str:
    """``name: kind``, or TypeScript's ``name?: kind`` for an optional argument (code models
    read it as "may be left out"; measured: fewer optional flags set than with "(optional)"),
    with proto3's ``= false`` for a bool so "true" does not look like the safe choice."""
    if required:
        return f"{name}: {kind}"
    return f"{name}?: {kind}{' = false' if kind == 'bool' else ''}"


def _note(prop: Any) -> str:
    """The first sentence of a field's description."""
    text = " ".join(str(prop.get("description", "")).split()) if isinstance(prop, dict) else ""
    if text.startswith("Part of oneof"):
        return ""
    match = _FIRST_SENTENCE.match(text)
    return _clip(match.group(1) if match else text, _MAX_NOTE)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


__all__: Sequence[str] = ["deref", "describe_catalog", "describe_tool"]
