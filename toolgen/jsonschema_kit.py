"""One JSON Schema toolkit: the keyword structure, local references, and the dialect rules.

Everything toolgen and agentd do to a JSON Schema *after* it exists is here, written once:

* :func:`map_subschemas` knows which keywords hold subschemas (``properties``, ``anyOf``,
  ``items``...) and which hold data (``const``, ``enum``, ``default``, ``examples``, unknown
  keywords); every function below walks schemas through it, so none rewrites a ``const`` value
  or mistakes a property named ``type`` for a keyword.
* :func:`resolve` and :func:`deref` follow local references (``#``, ``#/$defs/X``, any
  ``#/...`` JSON pointer). Nothing is ever retrieved: a reference that is not local resolves to
  nothing. (Validators come from :mod:`toolgen.validation`, whose registry retrieves nothing.)
* :func:`hoist_defs` makes a self-contained schema ready to nest inside a bigger document.
* :func:`nullable` makes a schema also accept ``null``; :func:`to_strict` converts a schema to
  OpenAI strict mode and :func:`without_nulls` maps a strict-mode instance back;
  :func:`check_strict_limits` holds a schema to strict mode's size limits (:class:`StrictLimits`).
* :func:`bounded` caps every string, array and integer for grammar-constrained decoding.
* :data:`DIALECTS` is the table of what differs between the three dialects ``message_schema``
  writes; the walk in :mod:`toolgen.schema` consults it instead of testing the dialect's name.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

__all__ = [
    "DEFS_KEYWORDS",
    "DIALECTS",
    "JSONSCHEMA_DIALECT_URI",
    "DialectRules",
    "NotStrict",
    "SchemaLimitError",
    "StrictLimits",
    "bounded",
    "check_strict_limits",
    "deref",
    "hoist_defs",
    "map_subschemas",
    "nullable",
    "resolve",
    "to_strict",
    "without_nulls",
]

JSONSCHEMA_DIALECT_URI = "https://json-schema.org/draft/2020-12/schema"


# --- the dialects ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DialectRules:
    """What one dialect of ``toolgen.schema.message_schema`` writes where the dialects differ.

    ``strict_objects`` is OpenAI strict mode's object rule set: every property is listed in
    ``required`` (an empty ``required`` too), an optional one accepts ``null`` instead, a
    ``$ref`` has no siblings, the root must be an object, and ``StrictLimits`` are checked.
    """

    name: str
    schema_uri: str | None  # "$schema" at the root
    strict_objects: bool
    oneofs: Literal["dependent", "branches", "nullable"]  # dependentSchemas / anyOf / nulls
    oneof_rule: str  # what a oneof member's description tells the writer about its siblings
    maps: Literal["keyed", "object", "pairs"]  # object + propertyNames / object / [{key, value}]
    open_values_as_strings: bool  # Struct, Value, ListValue, Any as JSON-encoded strings
    enum_numbers: bool  # an enum also accepts its numbers
    default_keyword: bool  # "default", or a "Default: ..." description
    float_range: bool  # float's minimum/maximum (constrained decoders ignore number bounds)
    format_keyword: bool  # "format": "date-time" beside the timestamp pattern
    content_encoding: bool  # "contentEncoding": "base64" on bytes
    max_properties: bool  # maxProperties on maps and Struct
    any_requires_type: bool  # an Any must carry "@type" (no empty-object branch)


DIALECTS: dict[str, DialectRules] = {
    rules.name: rules
    for rules in (
        DialectRules(
            name="jsonschema",
            schema_uri=JSONSCHEMA_DIALECT_URI,
            strict_objects=False,
            oneofs="dependent",
            oneof_rule="set none of the others",
            maps="keyed",
            open_values_as_strings=False,
            enum_numbers=True,
            default_keyword=True,
            float_range=True,
            format_keyword=True,
            content_encoding=True,
            max_properties=True,
            any_requires_type=False,
        ),
        DialectRules(
            name="grammar",
            schema_uri=None,
            strict_objects=False,
            oneofs="branches",
            oneof_rule="set none of the others",
            maps="object",
            open_values_as_strings=False,
            enum_numbers=False,
            default_keyword=True,
            float_range=False,
            format_keyword=False,
            content_encoding=False,
            max_properties=False,
            any_requires_type=True,
        ),
        DialectRules(
            name="openai",
            schema_uri=None,
            strict_objects=True,
            oneofs="nullable",
            oneof_rule="leave the others null",
            maps="pairs",
            open_values_as_strings=True,
            enum_numbers=False,
            default_keyword=False,
            float_range=True,
            format_keyword=True,
            content_encoding=False,
            max_properties=True,
            any_requires_type=False,
        ),
    )
}


# --- keyword structure ----------------------------------------------------------------------

#: Keywords whose value is one subschema.
_ONE = frozenset(
    {
        "additionalProperties", "items", "contains", "not", "if", "then", "else",
        "propertyNames", "unevaluatedItems", "unevaluatedProperties", "additionalItems",
        "contentSchema",
    }
)  # fmt: skip
#: Keywords whose value is a list of subschemas (``items`` too, in drafts before 2020-12).
_MANY = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "items"})
#: Keywords whose value maps names to subschemas (``dependencies``: to a schema or a list).
_MAP = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"}
)
DEFS_KEYWORDS = ("$defs", "definitions")


def map_keyword(key: str, value: Any, fn: Callable[[Any, str], Any]) -> Any:
    """``value`` of keyword ``key`` with ``fn(subschema, pointer suffix)`` applied to each of
    its subschemas; data (and keywords this module does not know) is copied as it is."""
    if key in _MANY and isinstance(value, list):
        return [fn(sub, f"/{key}/{i}") for i, sub in enumerate(value)]
    if key in _ONE:
        return fn(value, f"/{key}")
    if key in _MAP and isinstance(value, Mapping):
        return {name: fn(sub, f"/{key}/{name}") for name, sub in value.items()}
    return copy.deepcopy(value)


def subschemas(node: Mapping[str, Any]) -> Iterator[tuple[Any, tuple[str, ...]]]:
    """Each direct subschema of ``node`` with its pointer segments (``("properties", "a")``),
    for walks that keep their own stack (no recursion: a caller's schema may be deep)."""
    for key, value in node.items():
        if key in _MANY and isinstance(value, list):
            yield from ((sub, (key, str(i))) for i, sub in enumerate(value))
        elif key in _ONE:
            yield value, (key,)
        elif key in _MAP and isinstance(value, Mapping):
            yield from ((sub, (key, name)) for name, sub in value.items())


def map_subschemas(node: Mapping[str, Any], fn: Callable[[Any, str], Any]) -> dict[str, Any]:
    """A new ``node`` with ``fn`` applied to every direct subschema (see :func:`map_keyword`)."""
    return {key: map_keyword(key, value, fn) for key, value in node.items()}


def _any_ref(node: Any, test: Callable[[str], bool]) -> bool:
    """Whether ``node`` holds a ``$ref`` for which ``test`` is true (data is not looked into)."""
    if not isinstance(node, Mapping):
        return False
    ref = node.get("$ref")
    if isinstance(ref, str) and test(ref):
        return True
    found = False

    def visit(sub: Any, _: str) -> None:
        nonlocal found
        found = found or _any_ref(sub, test)

    for key, value in node.items():
        if key in _ONE or key in _MANY or key in _MAP:
            map_keyword(key, value, visit)
    return found


# --- local references -----------------------------------------------------------------------


def _escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def resolve(root: Any, ref: str) -> Any | None:
    """What the local reference ``ref`` points at inside ``root`` (``#``, ``#/$defs/X``, any
    ``#/...`` JSON pointer), or ``None``: not local, or nothing there. Never retrieves."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return None
    node = root
    for raw in ref[2:].split("/"):
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def deref(root: Mapping[str, Any], node: Any) -> Any:
    """``node`` with local ``$ref``s followed; ``{}`` for one that does not resolve locally."""
    for _ in range(32):  # a chain of refs ends; a cycle of pure refs is not a schema we write
        if not isinstance(node, Mapping) or "$ref" not in node:
            return node
        ref = node["$ref"]
        target = resolve(root, ref) if isinstance(ref, str) else None
        if target is None:
            return {}
        node = target
    return node


def _to_root(ref: str) -> bool:
    """A reference into the document's root itself, not into its definitions."""
    if ref != "#" and not ref.startswith("#/"):
        return False
    return not any(ref.startswith(f"#/{keyword}/") for keyword in DEFS_KEYWORDS)


def hoist_defs(
    schema: Mapping[str, Any],
    prefix: str,
    defs: dict[str, Any],
    *,
    root_key: str | None = None,
) -> dict[str, Any]:
    """``schema`` ready to nest inside a bigger document whose ``$defs`` is ``defs``.

    Its ``$defs`` (and draft-7 ``definitions``) move into ``defs`` under ``prefix`` + name, and
    every local ``$ref`` is rewritten to match; ``$schema`` and ``$id`` are left out (they
    belong to a document's root). A reference to the schema's own root (``#``, ``#/properties/
    x``) needs the body as a definition of its own: with ``root_key`` the body goes to
    ``defs[root_key]`` and the result is a reference to it; without, ``ValueError``. The result
    is a new tree: schemas may share subtrees (a oneof's branches do), so nothing is edited.
    """
    local: dict[str, Any] = {}
    for keyword in DEFS_KEYWORDS:
        local.update(schema.get(keyword) or {})
    body = {k: v for k, v in schema.items() if k not in (*DEFS_KEYWORDS, "$schema", "$id")}
    root_ref = f"#/$defs/{_escape(root_key)}" if root_key is not None else None

    def new_ref(ref: str) -> str:
        for keyword in DEFS_KEYWORDS:
            if ref.startswith(f"#/{keyword}/"):
                return f"#/$defs/{_escape(prefix)}{ref[len(keyword) + 3 :]}"
        if not _to_root(ref):
            return ref  # not local: left alone (and never retrieved)
        if root_ref is None:
            raise ValueError("a schema that refers to its own root cannot be embedded")
        return root_ref + ref[1:]

    def rewrite(node: Any, _: str = "") -> Any:
        if not isinstance(node, Mapping):
            return copy.deepcopy(node)
        out = map_subschemas(node, rewrite)
        ref = node.get("$ref")
        if isinstance(ref, str):
            out["$ref"] = new_ref(ref)
        return out

    result: dict[str, Any] | None = None
    if root_ref is not None and root_key is not None and _any_ref(schema, _to_root):
        defs[root_key] = rewrite(body)
        result = {"$ref": root_ref}
    for name, definition in local.items():
        defs[prefix + name] = rewrite(definition)
    return result if result is not None else rewrite(body)


# --- null, strict mode ----------------------------------------------------------------------


def _has_null(branches: list[Any]) -> bool:
    return any(isinstance(b, Mapping) and b.get("type") == "null" for b in branches)


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema also accepting ``null``: ``"null"`` added to its ``type`` (and ``None``
    to its ``enum``), a null branch added to its ``anyOf``, or else ``anyOf [schema, null]``."""
    kind = schema.get("type")
    if "$ref" in schema or kind is None:
        if "anyOf" in schema and "$ref" not in schema:
            if _has_null(schema["anyOf"]):
                return schema
            return {**schema, "anyOf": [*schema["anyOf"], {"type": "null"}]}
        if "$ref" not in schema and not schema.keys() - {"description"}:
            return schema  # already accepts anything, null included
        return {"anyOf": [schema, {"type": "null"}]}
    if "anyOf" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kinds = kind if isinstance(kind, list) else [kind]
    if "null" in kinds:
        return schema
    result = {**schema, "type": [*kinds, "null"]}
    if "enum" in schema:
        result["enum"] = [*schema["enum"], None]
    return result


class NotStrict(ValueError):
    """A schema OpenAI strict mode cannot express (a map, a free-form object, a root union)."""


#: Keywords strict mode accepts besides structure; minLength/maxLength and the rest are refused.
STRICT_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "minItems",
        "maxItems", "enum", "anyOf", "$ref", "$defs", "pattern", "minimum", "maximum",
        "description",
    }
)  # fmt: skip


def to_strict(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` in OpenAI strict-mode form, or :class:`NotStrict` saying where it cannot be.

    Every object lists all its properties as required, an optional one becoming
    :func:`nullable`, and forbids others; ``const`` becomes a one-value ``enum``; keywords
    strict mode refuses are dropped (validate against the original after decoding). A reply
    maps back with :func:`without_nulls`.
    """
    if "anyOf" in schema or schema.get("type") != "object":
        raise NotStrict("the root must be one object")
    return dict(_strict(schema, "#"))


def _strict(node: Any, where: str) -> Any:
    if not isinstance(node, Mapping):
        return copy.deepcopy(node)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "const":
            out["enum"] = [copy.deepcopy(value)]
        elif key in STRICT_KEYWORDS:
            out[key] = map_keyword(key, value, lambda sub, at: _strict(sub, where + at))
    kinds = node.get("type")
    if kinds == "object" or (isinstance(kinds, list) and "object" in kinds):
        if node.get("additionalProperties", False) is not False:
            raise NotStrict(f"{where}: a map or open object (additionalProperties)")
        properties = out.get("properties", {})
        if not properties:
            raise NotStrict(f"{where}: an object without properties")
        required = set(node.get("required", ()))
        for name in properties:
            if name not in required:
                properties[name] = nullable(properties[name])
        out["required"] = list(properties)
        out["additionalProperties"] = False
    return out


def without_nulls(value: Any) -> Any:
    """``value`` with every ``null`` member of an object left out (a strict-mode reply's unset
    fields; proto3 JSON reads a null as unset too)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


# --- OpenAI strict mode's size limits ------------------------------------------------------


@dataclass(frozen=True)
class StrictLimits:
    """OpenAI strict-mode limits, checked on every openai-dialect schema.

    Defaults follow the current Structured Outputs guide: 5,000 object properties in total, 10
    levels of object nesting, 120,000 characters of property names, definition names, enum values
    and const values, and 1,000 enum values in total. (Older copies of the guide said 100
    properties, 5 levels, 15,000 characters and 500 enum values; pass those for older models.)
    """

    max_depth: int = 10
    max_properties: int = 5000
    max_enum_values: int = 1000
    max_chars: int = 120_000


class SchemaLimitError(ValueError):
    """A generated schema exceeds a strict-mode limit (or cannot be expressed in strict mode)."""

    def __init__(self, message_name: str, limit: str, allowed: int, actual: int) -> None:
        self.message_name = message_name
        self.limit = limit
        self.allowed = allowed
        self.actual = actual
        super().__init__(
            f"schema for {message_name} exceeds the OpenAI strict-mode limit {limit}={allowed}: "
            f"it has {actual}"
        )


def check_strict_limits(schema: dict[str, Any], name: str, limits: StrictLimits) -> None:
    """``SchemaLimitError`` naming ``name``, the limit and the value when ``schema`` exceeds
    one of ``limits``."""
    defs = schema.get("$defs", {})
    properties = enum_values = chars = 0
    chars += sum(len(k) for k in defs)

    def count(node: Any) -> None:
        nonlocal properties, enum_values, chars
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                properties += len(props)
                chars += sum(len(k) for k in props)
            enum = node.get("enum")
            if isinstance(enum, list):
                enum_values += len(enum)
                chars += sum(len(str(v)) for v in enum if v is not None)
            if "const" in node:
                chars += len(str(node["const"]))
            for value in node.values():
                count(value)
        elif isinstance(node, list):
            for value in node:
                count(value)

    count(schema)
    depth = _nesting_depth(schema, schema, defs, frozenset())
    for limit, allowed, actual in (
        ("max_depth", limits.max_depth, depth),
        ("max_properties", limits.max_properties, properties),
        ("max_enum_values", limits.max_enum_values, enum_values),
        ("max_chars", limits.max_chars, chars),
    ):
        if actual > allowed:
            raise SchemaLimitError(name, limit, allowed, actual)


def _nesting_depth(
    node: Any, root: dict[str, Any], defs: Mapping[str, Any], seen: frozenset[str]
) -> int:
    """Object nesting levels along the deepest path, entering each ``$ref`` once per path."""
    if isinstance(node, list):
        return max((_nesting_depth(v, root, defs, seen) for v in node), default=0)
    if not isinstance(node, dict):
        return 0
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in seen:
            return 0
        target = resolve(root, ref) or {}
        return _nesting_depth(target, root, defs, seen | {ref})
    children: list[Any] = []
    for key in ("items", "additionalProperties", "anyOf"):
        if key in node:
            children.append(node[key])
    properties = node.get("properties")
    if isinstance(properties, dict):
        children.extend(properties.values())
    inner = max((_nesting_depth(v, root, defs, seen) for v in children), default=0)
    kinds = node.get("type")
    is_object = kinds == "object" or (isinstance(kinds, list) and "object" in kinds)
    return inner + 1 if is_object and isinstance(properties, dict) else inner


# --- bounds for constrained decoding ----------------------------------------------------------


def bounded(schema: Any, max_chars: int, max_items: int = 50) -> Any:
    """``schema`` with a bound on every string, array and integer that has none.

    A schema decoded under a grammar (a caller's response schema) with an unbounded string,
    array or integer lets a small model write until ``max_tokens``. A ``maxLength`` looser than
    ``max_chars`` is tightened to it, and kept beside a ``pattern`` (a pattern bounds the shape,
    not the length: ``^a+$``).
    """
    if isinstance(schema, list):
        return [bounded(s, max_chars, max_items) for s in schema]
    if not isinstance(schema, Mapping):
        return copy.deepcopy(schema)
    # Each subtree once (walking one twice made this 2^depth: a 30-level schema hung it).
    out = map_subschemas(schema, lambda sub, _: bounded(sub, max_chars, max_items))
    kinds = schema.get("type")
    names = {k for k in (kinds if isinstance(kinds, list) else [kinds]) if isinstance(k, str)}
    if "string" in names and "enum" not in schema:
        out["maxLength"] = min(_int(schema.get("maxLength"), max_chars), max_chars)
    if "array" in names:
        out.setdefault("maxItems", max_items)
    if "integer" in names:
        out.setdefault("minimum", -(10**15))
        out.setdefault("maximum", 10**15)
    return out


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
