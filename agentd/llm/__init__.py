"""agentd's model layer: OpenAI-compatible endpoints per role and the embedded llama.cpp default."""

from agentd.llm.client import (
    ChatModel,
    ModelConfig,
    ModelError,
    ModelReply,
    ToolChoice,
    ToolSpec,
    build_models,
    close_models,
    tool_choice_schema,
)
from agentd.llm.embedded import EMBEDDED_MODEL, EmbeddedModel, EmbeddedModelError

__all__ = [
    "EMBEDDED_MODEL",
    "ChatModel",
    "EmbeddedModel",
    "EmbeddedModelError",
    "ModelConfig",
    "ModelError",
    "ModelReply",
    "ToolChoice",
    "ToolSpec",
    "build_models",
    "close_models",
    "tool_choice_schema",
]
