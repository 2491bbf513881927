"""The plan library: worked examples for the planner, from approved runs (agentd/library/plans.py),
kept in the run store and in a file for review (agentd/library/file.py)."""

from agentd.library.example import SHARED, Example

__all__ = ["SHARED", "Example"]
