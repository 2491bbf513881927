"""The import rules that keep agentd's layout readable, checked on the source (AST, no imports).

- ``config`` imports nothing of agentd: every other part may read it.
- ``loop``, ``llm`` and ``tools`` never import the gRPC edge (``api``), the ``store``, the
  ``cli``, ``evals`` or the generated ``v1`` code: the loop works on plain Python state.
- ``runs`` (the durable-run domain) never imports the edges: ``api``, ``cli``, ``evals``, the
  generated ``v1`` code; neither it nor ``loop`` imports grpc.
- ``store`` reads the loop's plain state (``loop.state``: records are converted on its side)
  and nothing else of the loop.
- ``telemetry`` imports no part above it at run time (it names loop types in annotations only).
- No package imports ``examples``; the example stack is handed in, never imported.
- No import cycles between modules, ``TYPE_CHECKING`` imports counted: a cycle through
  annotations is a layering problem too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "agentd"

FORBIDDEN = {
    "config": {"*"},
    "loop": {"api", "store", "cli", "evals", "v1"},
    "llm": {"api", "store", "cli", "evals", "v1", "loop", "tools"},
    "tools": {"api", "store", "cli", "evals", "v1"},
    "telemetry": {"api", "store", "cli", "evals", "v1", "tools"},
    "store": {"api", "cli", "evals", "llm", "runs"},
    "runs": {"api", "cli", "evals", "v1"},
    "api": {"cli", "evals"},
}
# Third-party packages a part never imports (the domain and the loop speak plain Python).
FORBIDDEN_PACKAGES = {"runs": {"grpc", "grpc_status"}, "loop": {"grpc", "grpc_status"}}
# The modules of a part another part may import, where FORBIDDEN would ban the whole part.
ALLOWED = {"store": {"agentd.loop.state"}}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module: str) -> str:
    """``agentd.loop.agent`` -> ``loop``; ``agentd.config`` -> ``config``."""
    return module.split(".")[1] if module.count(".") >= 1 else ""


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(imported module, at run time?) for every import in ``path``, nested ones included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]

    def walk(node: ast.AST, runtime: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for inner in child.body:
                    yield from walk(ast.Module(body=[inner], type_ignores=[]), False)
                for inner in child.orelse:
                    yield from walk(ast.Module(body=[inner], type_ignores=[]), runtime)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, runtime
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                yield base, runtime
                for alias in child.names:  # `from agentd import telemetry` imports a module
                    candidate = f"{base}.{alias.name}"
                    if _exists(candidate):
                        yield candidate, runtime
            yield from walk(child, runtime)

    yield from walk(tree, True)


def _exists(module: str) -> bool:
    if not module.startswith("agentd."):
        return False
    relative = Path(*module.split(".")[1:])
    return (ROOT / relative).with_suffix(".py").is_file() or (ROOT / relative).is_dir()


def _sources() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "v1" not in p.relative_to(ROOT).parts)


def _graph() -> dict[str, set[str]]:
    """Module -> the agentd modules it imports, ``TYPE_CHECKING`` ones included."""
    graph: dict[str, set[str]] = {}
    for path in _sources():
        name = _module_name(path)
        graph[name] = {
            module
            for module, _ in _imports(path)
            if module.startswith("agentd.") and module != name
        }
    return graph


def test_each_part_imports_only_what_it_may() -> None:
    problems = []
    for path in _sources():
        name = _module_name(path)
        part = _part(name)
        banned = FORBIDDEN.get(part, set())
        for module, runtime in _imports(path):
            if module.split(".")[0] == "examples":
                problems.append(f"{name} imports {module}: the example stack is handed in")
            if module.split(".")[0] in FORBIDDEN_PACKAGES.get(part, set()):
                problems.append(f"{name} imports {module}")
            if not module.startswith("agentd.") or _part(module) == part:
                continue
            if "*" in banned or _part(module) in banned:
                problems.append(f"{name} imports {module}")
            if _part(module) == "loop" and part == "store" and module not in ALLOWED["store"]:
                problems.append(f"{name} imports {module}: only agentd.loop.state")
            if part == "telemetry" and runtime and _part(module) in {"loop", "llm", "config"}:
                problems.append(f"{name} imports {module} at run time")
    assert problems == []


def test_no_import_cycles() -> None:
    graph = _graph()
    # A package's __init__ importing its own submodules is how a package re-exports; the
    # cycle that matters is a module that (through others) imports itself.
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in graph:
                continue
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                if not _is_reexport(cycle):
                    cycles.append(" -> ".join(cycle))
            elif state.get(target) is None:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


def _is_reexport(cycle: list[str]) -> bool:
    """``pkg -> pkg.mod -> pkg``: a submodule importing its package's shared names while the
    package re-exports the submodule. Python resolves it because the package's own names come
    before the re-export."""
    return len(cycle) == 3 and cycle[0] == cycle[2] and cycle[1].startswith(cycle[0] + ".")


def test_the_rules_see_imports() -> None:
    """The checker itself: a known import is found, with its run-time flag."""
    found = dict(_imports(ROOT / "loop" / "agent.py"))
    assert found.get("agentd.loop.state") is True
    spans = dict(_imports(ROOT / "telemetry" / "spans.py"))
    assert spans.get("agentd.loop.state") is False  # annotations only


def test_config_knows_every_prompt_by_name() -> None:
    """config names the prompts without importing the loop; the two lists must agree."""
    from agentd.config import PROMPT_NAMES
    from agentd.loop.prompts import BY_NAME

    assert set(PROMPT_NAMES) == set(BY_NAME)


def test_the_rules_see_what_they_forbid() -> None:
    """The new rules bite: a grpc import in runs/, a v1 import in runs/, a cycle through a
    TYPE_CHECKING import (each written to a scratch module, then removed)."""
    scratch = ROOT / "runs" / "_scratch_layout.py"
    try:
        scratch.write_text(
            "from typing import TYPE_CHECKING\nimport grpc\nfrom agentd.v1 import agent_pb2\n"
            "if TYPE_CHECKING:\n    from agentd.runs import service\n"
        )
        found = dict(_imports(scratch))
        assert found == {
            "typing": True,
            "grpc": True,
            "agentd.v1": True,
            "agentd.v1.agent_pb2": True,
            "agentd.runs": False,
            "agentd.runs.service": False,
        }
        assert "agentd.runs.service" in _graph()["agentd.runs._scratch_layout"]
        with pytest.raises(AssertionError):
            test_each_part_imports_only_what_it_may()
    finally:
        scratch.unlink()
