"""``$step.path`` references between plan steps: finding them, resolving them against earlier
results, and the lookup whose errors tell the planner what a path cannot be.

A step's arguments (and a plan's answer template, ``agentd.loop.template``) refer to earlier
results as ``$s1.path`` (a whole string: the value itself) or ``${s1.path}`` inside text (its
text). Split from ``agentd.loop.plan`` because three modules read these: the plan checks, the
executor that resolves arguments, and the template that fills an answer; none of them needs
the others' parts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "EMBEDDED",
    "REFERENCE",
    "UNMARKED",
    "Unresolved",
    "embedded_reference",
    "lookup",
    "path_parts",
    "reference_paths",
    "references",
    "resolve",
    "unmarked",
]

# A path is ".field" and ".0" parts; "[0]" is accepted too, since models write it.
_PATH = r"((?:\.[A-Za-z0-9_@-]+|\[[0-9]+\])*)"
REFERENCE = re.compile(rf"^\$([a-z][a-z0-9_]{{0,15}}){_PATH}$")
# Inside longer text a reference is braced: "${s1.totalMinor} ${s2.totalMinor} +". Models
# also write it bare ("$s2.totalMinor 100 *"); a bare one must name a generated id (s<n>)
# and a path, so ordinary text with a dollar sign is left alone.
EMBEDDED = re.compile(
    rf"\$\{{([a-z][a-z0-9_]{{0,15}}){_PATH}\}}"
    r"|\$(s[0-9]{1,3})((?:\.[A-Za-z0-9_@-]+|\[[0-9]+\])+)(?![A-Za-z0-9_@-])"
)
# "s1.totalMinor" without its "$": a reference the model meant but did not mark.
UNMARKED = re.compile(r"(?<![$\w{])(s[0-9]{1,3})((?:\.[A-Za-z][A-Za-z0-9_@-]*)+)")


def references(arguments: Any) -> set[str]:
    """Step ids referenced as ``$id.path`` anywhere in ``arguments``."""
    return {step_id for step_id, _, _ in reference_paths(arguments)}


def reference_paths(arguments: Any) -> list[tuple[str, str, str]]:
    """Every reference in ``arguments`` as (step id, ".path", the text as written)."""
    if isinstance(arguments, str):
        match = REFERENCE.match(arguments)
        if match:
            return [(match.group(1), match.group(2), arguments)]
        return [(*embedded_reference(m), m.group(0)) for m in EMBEDDED.finditer(arguments)]
    values = arguments.values() if isinstance(arguments, dict) else arguments
    if isinstance(arguments, dict | list):
        return [found for value in values for found in reference_paths(value)]
    return []


class Unresolved(Exception):
    """A reference whose path does not exist in the step's result."""


def resolve(arguments: Any, results: Mapping[str, Any]) -> Any:
    """Replace references by the values they point to in the results of earlier steps.

    A whole-string ``$id.path`` becomes the value itself (any JSON type); a braced
    ``${id.path}`` inside longer text becomes its text (JSON for objects and lists).
    """
    if isinstance(arguments, str):
        match = REFERENCE.match(arguments)
        if match:  # never passed on as a literal: a reference without a result is an error
            return lookup(results, match.group(1), match.group(2), arguments)
        return EMBEDDED.sub(
            lambda m: _text(lookup(results, *embedded_reference(m), m.group(0))), arguments
        )
    if isinstance(arguments, dict):
        return {key: resolve(value, results) for key, value in arguments.items()}
    if isinstance(arguments, list):
        return [resolve(value, results) for value in arguments]
    return arguments


def path_parts(path: str) -> list[str]:
    """A path's parts: ``.vendors[0].id`` -> ``["vendors", "0", "id"]``."""
    return [p for p in re.sub(r"\[([0-9]+)\]", r".\1", path).split(".") if p]


def unmarked(arguments: Any, ids: set[str]) -> list[str]:
    """Texts like "s1.totalMinor" naming a step in ``ids`` without the "$" of a reference.

    Only the steps a step depends on count: in free text "s1.x" may well mean something else.
    """
    if isinstance(arguments, str):
        return [m.group(0) for m in UNMARKED.finditer(arguments) if m.group(1) in ids]
    values = arguments.values() if isinstance(arguments, dict) else arguments
    if isinstance(arguments, dict | list):
        return [found for value in values for found in unmarked(value, ids)]
    return []


def embedded_reference(match: re.Match[str]) -> tuple[str, str]:
    """(step id, path) of a braced or bare reference inside text."""
    if match.group(1) is not None:
        return match.group(1), match.group(2)
    return match.group(3), match.group(4)


def lookup(results: Mapping[str, Any], step_id: str, path: str, written: str) -> Any:
    if step_id not in results:
        raise Unresolved(f"{written}: step {step_id} has no result (it failed or never ran)")
    value = results[step_id]
    for part in path_parts(path):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit():  # past its end: say so, not "index it"
            held = f"has {len(value)} items" if value else "is empty"
            raise Unresolved(
                f"{written}: no item {part}: the list in the result of step {step_id} {held}"
            )
        elif isinstance(value, list):
            raise Unresolved(
                f"{written}: {part!r} follows a list of {len(value)} in the result of step "
                f"{step_id}; index it, e.g. .0.{part}"
            )
        else:
            has = f" (it has: {', '.join(value)})" if isinstance(value, dict) else ""
            raise Unresolved(f"{written}: no {part!r} in the result of step {step_id}{has}")
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
