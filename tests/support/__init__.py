"""Test helpers: the scripted OpenAI-compatible server."""

from tests.support.scripted_llm import Reply, ScriptedLLM, schema_name

__all__ = ["Reply", "ScriptedLLM", "schema_name"]
