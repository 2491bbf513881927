"""agentd: LLM agents over the gRPC services a company already runs.

The public surface is small; everything else is reached through its package (``agentd.loop``,
``agentd.llm``, ``agentd.tools``, ``agentd.store``, ``agentd.telemetry``, ``agentd.runs``,
``agentd.api``).
Names load on first use, so ``import agentd`` (and the CLI's start-up) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentd.api.server import Daemon
    from agentd.config import Config, ConfigError, load_config
    from agentd.llm.model import ModelError
    from agentd.loop.agent import Agent
    from agentd.loop.state import LimitsExceeded, NeedsApproval, RunFailed, RunState

_WHERE = {
    "Agent": "agentd.loop.agent",
    "Config": "agentd.config",
    "ConfigError": "agentd.config",
    "Daemon": "agentd.api.server",
    "LimitsExceeded": "agentd.loop.state",
    "ModelError": "agentd.llm.model",
    "NeedsApproval": "agentd.loop.state",
    "RunFailed": "agentd.loop.state",
    "RunState": "agentd.loop.state",
    "load_config": "agentd.config",
}

__all__ = [
    "Agent",
    "Config",
    "ConfigError",
    "Daemon",
    "LimitsExceeded",
    "ModelError",
    "NeedsApproval",
    "RunFailed",
    "RunState",
    "load_config",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'agentd' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
