"""Compiled JSON Schema validators, and the identity cache they (and other derived values) use.

Tool schemas, plan schemas and tool-call schemas are built once and reused, so a value derived
from them (a validator, a plan schema, a catalog text) is computed once too, keyed by the
identity of the objects it was derived from.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any, Generic, TypeVar

import jsonschema

from toolgen.jsonschema_kit import NotStrict, to_strict, without_nulls
from toolgen.validation import validator as make_validator

__all__ = [
    "Checker",
    "IdentityCache",
    "NotStrict",
    "strict_schema",
    "validator",
    "without_nulls",
]

V = TypeVar("V")


class IdentityCache(Generic[V]):
    """Values derived from objects (hashable or not), keyed by those objects' identity and an
    optional hashable ``extra``; at most ``size`` entries, the oldest dropped first.

    Each entry keeps its objects alive, so an id cannot be taken by another object while its
    entry is cached, and a hit checks the objects are the same ones.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[Hashable, tuple[tuple[object, ...], V]] = {}

    def get(self, objects: tuple[object, ...], make: Callable[[], V], extra: Hashable = ()) -> V:
        key = (tuple(id(o) for o in objects), extra)
        entry = self._entries.get(key)
        if entry is not None and all(a is b for a, b in zip(entry[0], objects, strict=True)):
            return entry[1]
        value = make()
        if len(self._entries) >= self.size:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (objects, value)
        return value


class Checker:
    """A compiled schema: ``is_valid`` takes the fast path below, ``iter_errors`` is
    jsonschema's own, so error messages are exactly jsonschema's."""

    def __init__(self, schema: dict[str, Any]) -> None:
        # No retrieval, RE2 patterns (toolgen.validation); the fast path only for 2020-12.
        self.standard: jsonschema.protocols.Validator = make_validator(schema)
        draft = jsonschema.validators.validator_for(schema, default=_DRAFT)
        fast = draft is _DRAFT
        self.fast = make_validator(schema, {"anyOf": _any_of}) if fast else self.standard

    def is_valid(self, instance: Any) -> bool:
        return bool(self.fast.is_valid(instance))

    def iter_errors(self, instance: Any) -> Iterator[jsonschema.ValidationError]:
        return self.standard.iter_errors(instance)  # type: ignore[no-any-return]


_VALIDATORS: IdentityCache[Checker] = IdentityCache(256)


def validator(schema: dict[str, Any]) -> Checker:
    """The validator for ``schema`` (draft from ``$schema``, else 2020-12)."""
    return _VALIDATORS.get((schema,), lambda: Checker(schema))


# --- is_valid of a tagged union ------------------------------------------------------------
#
# A plan's step is ``{"anyOf": [one branch per tool]}``, each branch pinning ``tool`` to its
# name. jsonschema tries the branches in order and builds every failing branch's errors, about
# 1 ms for a 3-step plan whose tools come late among a dozen. Only the branches naming the
# instance's tool can match (the others fail on that property), so ``is_valid`` tries only
# those: the same verdict without the others' errors.


def _tag(branches: list[Any]) -> tuple[str, dict[str, list[int]]] | None:
    """(the property every branch requires and pins to one string, value -> branch indexes)."""
    if len(branches) < 2 or not all(isinstance(b, dict) for b in branches):
        return None
    first = branches[0].get("properties")
    for key in first if isinstance(first, dict) else ():
        by_value: dict[str, list[int]] = {}
        for index, branch in enumerate(branches):
            value = _pinned(branch, key)
            if value is None:
                break
            by_value.setdefault(value, []).append(index)
        else:
            return key, by_value
    return None


def _pinned(branch: dict[str, Any], key: str) -> str | None:
    if key not in branch.get("required", ()):
        return None
    prop = (branch.get("properties") or {}).get(key)
    if not isinstance(prop, dict):
        return None
    enum = prop.get("enum")
    if isinstance(enum, list) and len(enum) == 1 and isinstance(enum[0], str):
        return enum[0]
    const = prop.get("const")
    return const if isinstance(const, str) and "enum" not in prop else None


_TAGS: IdentityCache[tuple[str, dict[str, list[int]]] | None] = IdentityCache(1024)


def _any_of(
    checker: Any, branches: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    tag = _TAGS.get((branches,), lambda: _tag(branches)) if isinstance(branches, list) else None
    if tag is not None and isinstance(instance, dict) and isinstance(instance.get(tag[0]), str):
        for index in tag[1].get(instance[tag[0]], ()):
            if not any(True for _ in checker.descend(instance, branches[index], schema_path=index)):
                return
        yield jsonschema.ValidationError(
            f"{instance!r} is not valid under any of the given schemas"
        )
        return
    yield from _STANDARD_ANY_OF(checker, branches, instance, schema)


_DRAFT = jsonschema.Draft202012Validator
_STANDARD_ANY_OF = _DRAFT.VALIDATORS["anyOf"]


# --- OpenAI strict mode (toolgen.jsonschema_kit converts; this caches) ----------------------


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` in OpenAI strict-mode form (``to_strict``, cached by identity), or
    ``NotStrict``. A reply decodes back by leaving out its nulls (``without_nulls``)."""
    converted, problem = _STRICT.get((schema,), lambda: _convert(schema))
    if converted is None:
        raise NotStrict(problem)
    return converted


_STRICT: IdentityCache[tuple[dict[str, Any] | None, str]] = IdentityCache(64)


def _convert(schema: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(the strict form, "") or (None, what strict mode cannot express)."""
    try:
        return to_strict(schema), ""
    except NotStrict as exc:
        return None, str(exc)
