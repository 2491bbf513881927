"""agentd's model layer: OpenAI-compatible endpoints per role and the embedded llama.cpp default."""

from agentd.config import ModelConfig
from agentd.llm.bundled import DEFAULT_MODEL, MODELS, ModelFileError
from agentd.llm.client import OpenAIChatModel, build_models, close_models
from agentd.llm.embedded import EmbeddedModel, EmbeddedModelError
from agentd.llm.model import ChatModel, ModelError, ModelReply, ToolChoice, ToolSpec
from agentd.llm.request import tool_choice_schema
from agentd.llm.scripted import ScriptedChatModel
from agentd.llm.traced import TracedChatModel

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "ChatModel",
    "EmbeddedModel",
    "EmbeddedModelError",
    "ModelConfig",
    "ModelError",
    "ModelFileError",
    "ModelReply",
    "OpenAIChatModel",
    "ScriptedChatModel",
    "ToolChoice",
    "ToolSpec",
    "TracedChatModel",
    "build_models",
    "close_models",
    "tool_choice_schema",
]
