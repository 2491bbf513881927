"""Compiled JSON Schema validators, one per schema object, shared by the whole daemon.

Tool schemas, plan schemas and tool-call schemas are built once and reused, so a
validator keyed by the schema's identity is compiled once too. The entry keeps the
schema alive, so its id cannot be taken by another object while cached.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from jsonschema.validators import validator_for

_CACHE: dict[int, tuple[dict[str, Any], jsonschema.protocols.Validator]] = {}
_CACHE_SIZE = 256


def validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """The validator for ``schema`` (draft from ``$schema``, else 2020-12)."""
    entry = _CACHE.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    compiled = validator_for(schema, default=jsonschema.Draft202012Validator)(schema)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[id(schema)] = (schema, compiled)
    return compiled
