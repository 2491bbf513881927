"""JSON Schema validators that never fetch anything and match patterns in linear time.

Every validator toolgen and agentd build (tool arguments and results, model replies, a caller's
response schema) comes from :func:`validator`, so two promises hold for all of them:

* **No retrieval.** References resolve only inside the schema itself and the bundled JSON
  Schema meta-schemas (``jsonschema_specifications``); a ``$ref`` to ``http://``, ``file://``
  or any other URI is :class:`referencing.exceptions.Unresolvable`, never fetched. jsonschema's
  default registry would fetch it with ``urllib`` on the calling thread, without a timeout.
* **Linear-time patterns.** ``pattern``, ``patternProperties`` and the ``additionalProperties``
  check that depends on them match with RE2 (``google-re2``), whose time is linear in the
  input, instead of Python's backtracking ``re`` (``^(a+)+$`` on a 28-character near miss takes
  seconds there, doubling per character). A pattern RE2 cannot compile (backreferences,
  lookaround) is :class:`PatternError`; callers' schemas are checked up front with
  :func:`pattern_problem` so that never happens while validating.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import re2
from jsonschema import ValidationError
from jsonschema_specifications import REGISTRY as _SPECIFICATIONS
from referencing import Registry

__all__ = [
    "MAX_PATTERN_CHARS",
    "NO_RETRIEVAL",
    "PatternError",
    "compile_pattern",
    "pattern_problem",
    "validator",
]

#: The meta-schemas, in memory; nothing else, and no ``retrieve``: an unknown URI is an error.
NO_RETRIEVAL: Registry[Any] = _SPECIFICATIONS
MAX_PATTERN_CHARS = 1000

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_OPTIONS.max_mem = 8 << 20  # RE2's default; a pattern whose program needs more is refused


class PatternError(ValueError):
    """A regular expression RE2 cannot run (backreferences, lookaround, too large)."""


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (cached), or :class:`PatternError`."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"{len(pattern)} characters; the limit is {MAX_PATTERN_CHARS}")
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise PatternError(f"not a pattern RE2 can run in linear time ({detail})") from None


def pattern_problem(pattern: object) -> str:
    """'' when ``pattern`` is usable, else why not (for an INVALID_ARGUMENT message)."""
    if not isinstance(pattern, str):
        return "must be a string"
    try:
        compile_pattern(pattern)
    except PatternError as exc:
        return str(exc)
    return ""


def _search(pattern: str, text: str) -> bool:
    return compile_pattern(pattern).search(text) is not None


# --- the keywords, as jsonschema's own but with RE2 ------------------------------------------


def _pattern(
    checker: Any, patrn: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if checker.is_type(instance, "string") and not _search(patrn, instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def _pattern_properties(
    checker: Any, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not checker.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from checker.descend(value, subschema, path=key, schema_path=pattern)


def _additional(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> Iterator[str]:
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    for key in instance:
        if key not in properties and not any(_search(p, key) for p in patterns):
            yield key


def _additional_properties(
    checker: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not checker.is_type(instance, "object"):
        return
    extras = set(_additional(instance, schema))
    if checker.is_type(additional, "object"):
        for extra in sorted(extras):
            yield from checker.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(each) for each in sorted(extras))
            patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
            yield ValidationError(f"{joined} {verb} not match any of the regexes: {patterns}")
        else:
            joined = ", ".join(repr(each) for each in sorted(extras))
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({joined} {verb} unexpected)"
            )


_RE2_KEYWORDS = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}


@functools.cache
def _linear(base: Any, extra: tuple[tuple[str, Any], ...]) -> Any:
    return jsonschema.validators.extend(base, {**_RE2_KEYWORDS, **dict(extra)})


def validator(
    schema: Mapping[str, Any], keywords: Mapping[str, Any] | None = None
) -> jsonschema.protocols.Validator:
    """A validator for ``schema`` (its ``$schema`` draft, else 2020-12) that retrieves nothing
    and matches patterns with RE2; ``keywords`` replace more keyword functions."""
    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls = _linear(base, tuple(sorted((keywords or {}).items())))
    return cls(schema, registry=NO_RETRIEVAL)  # type: ignore[no-any-return]
