"""The JSON of a Chat Completions request: response formats, tool definitions, the schema for
"call one of these tools", and the body as bytes.

Split from ``agentd.llm.client`` because none of it talks to an endpoint: these are pure
functions from agentd's shapes (``ToolSpec``, schemas, messages) to what the OpenAI API takes,
which the client sends and tests check without a server.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import openai

from agentd.llm.model import ToolSpec
from toolgen.jsonschema_kit import hoist_defs

_orjson: Any
try:
    import orjson as _orjson
except ImportError:
    _orjson = None

__all__ = [
    "function_tool",
    "payload",
    "response_format",
    "tool_choice_schema",
    "with_tool_guide",
]


def tool_choice_schema(tools: Sequence[ToolSpec]) -> dict[str, Any]:
    """The structured-output schema for "call one of these tools".

    One tool: ``{"tool": <name>, "arguments": <parameters>}``. Several: that shape per tool in an
    ``anyOf`` under a ``call`` property, because schema roots must not be unions. Each tool's
    ``$defs`` are hoisted to the root under a ``<tool>.`` prefix so its ``$ref``s still resolve.
    The envelope itself is strict-mode compatible; strictness overall depends on the parameters.
    """
    defs: dict[str, Any] = {}
    branches = [_tool_branch(t, defs) for t in tools]
    if len(branches) == 1:
        root = branches[0]
    else:
        root = {
            "type": "object",
            "properties": {"call": {"anyOf": branches}},
            "required": ["call"],
            "additionalProperties": False,
        }
    if defs:
        root = {**root, "$defs": defs}
    return root


def _tool_branch(tool: ToolSpec, defs: dict[str, Any]) -> dict[str, Any]:
    # The parameters' $defs go to the root under "<tool>."; a reference into the parameters'
    # own root ("#", "#/properties/x") makes them a def of their own, named after the tool.
    arguments = hoist_defs(tool.parameters, f"{tool.name}.", defs, root_key=tool.name)
    return {
        "type": "object",
        "properties": {
            # enum, not const: accepted by OpenAI strict mode and by llama.cpp grammars alike.
            "tool": {"type": "string", "enum": [tool.name]},
            "arguments": arguments,
        },
        "required": ["tool", "arguments"],
        "additionalProperties": False,
    }


def with_tool_guide(
    messages: list[dict[str, Any]], tools: Sequence[ToolSpec]
) -> list[dict[str, Any]]:
    """``messages`` with the tools named in the system message, for a structured-mode call.

    Native tools carry their descriptions to the model through the chat template; a
    response_format schema only constrains decoding, so say the same in the prompt.
    """
    catalog = "\n".join(f"- {t.name}: {t.description}" for t in tools)
    guide = (
        'Answer with JSON {"tool": <name>, "arguments": {...}} calling exactly one of '
        f"these tools:\n{catalog}"
    )
    return _with_system_note(messages, guide)


def _with_system_note(messages: list[dict[str, Any]], note: str) -> list[dict[str, Any]]:
    """Add ``note`` to the leading system message (or prepend one).

    Many chat templates reject a system message anywhere but first.
    """
    if (
        messages
        and messages[0].get("role") == "system"
        and isinstance(messages[0].get("content"), str)
    ):
        first = {**messages[0], "content": f"{messages[0]['content']}\n\n{note}"}
        return [first, *messages[1:]]
    return [{"role": "system", "content": note}, *messages]


def response_format(name: str, schema: dict[str, Any], strict: bool) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": schema, "strict": strict},
    }


def function_tool(tool: ToolSpec, strict: bool) -> dict[str, Any]:
    function: dict[str, Any] = {
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
    }
    if strict:
        function["strict"] = True
    return {"type": "function", "function": function}


# SDK versions whose ``post`` takes the body as bytes (``content``), sent as they are.
_POST_TAKES_BYTES = "content" in inspect.signature(openai.AsyncOpenAI.post).parameters


def payload(body: dict[str, Any]) -> dict[str, Any]:
    """``post``'s body argument: JSON bytes from orjson when installed (agentd[fast]), else the
    body itself for the SDK's own json.dumps; what orjson refuses goes the SDK's way too."""
    if _orjson is not None and _POST_TAKES_BYTES:
        try:
            return {"content": _orjson.dumps(body)}
        except TypeError:
            pass
    return {"body": body}
