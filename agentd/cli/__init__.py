"""The ``agentd`` command: serve, the client commands, models, eval and the trace view."""

from agentd.cli.main import main

__all__ = ["main"]
