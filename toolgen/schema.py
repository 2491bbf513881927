"""Protobuf message descriptors to JSON Schema: one walk, two dialects.

``message_schema`` walks a ``google.protobuf.descriptor.Descriptor`` once and writes either

* ``"jsonschema"``: Draft 2020-12 with full fidelity to the proto3 JSON mapping. Every instance
  valid under the schema is accepted by ``json_format.ParseDict`` and every
  ``json_format.MessageToDict`` output validates (see "Known gaps" below for the two exceptions
  no schema can express). Property names are the ``json_name`` that ``MessageToDict`` writes;
  the original proto field names, which ``ParseDict`` also accepts, are not listed, so that an
  instance never names one field twice.
* ``"grammar"``: what a model writes under constrained decoding (llama.cpp's GBNF and
  llguidance, vLLM's xgrammar and outlines). Only keywords those engines enforce are used, so
  every grammar-valid reply is a valid instance: a oneof becomes an ``anyOf`` of branches that
  each hold at most one member, enums are names, and bounds the engines ignore
  (``propertyNames``, ``maxProperties``, float ranges) are left out. Whatever this leaves
  unchecked is checked again against the ``"jsonschema"`` dialect after decoding.
* ``"openai"``: OpenAI strict mode. Every object is closed and lists all of its properties in
  ``required``; an absent field is ``null``. Open-ended values (Struct, Value, ListValue, Any)
  travel as JSON-encoded strings, maps as arrays of ``{key, value}`` objects, and oneof members are
  all nullable properties of which at most one may be non-null. ``from_strict`` maps such an
  instance back to proto3 JSON for ``ParseDict``.

Decisions, in one place:

* 64-bit integers: a decimal string whose pattern also enforces the type's range, or an integer
  within that range. Both forms parse; ``MessageToDict`` writes the string.
* 32-bit integers: integers with ``minimum``/``maximum``.
* float/double: numbers (float within the float32 range) or the strings "NaN", "Infinity",
  "-Infinity".
* bytes: base64, standard or URL-safe alphabet, padding optional, as ``ParseDict`` decodes it.
* Enums: value names. The jsonschema dialect also accepts numbers (``ParseDict`` does, and
  ``MessageToDict`` writes a number for a value an open enum does not name); the openai dialect
  lists names only. The zero value is described as the default that omitting the field means.
* oneof: jsonschema uses ``dependentSchemas`` (a present member forbids its siblings); openai makes
  every member nullable and ``from_strict`` rejects two non-null members.
* Messages go into ``$defs`` keyed by full name; a reference back to the root is ``{"$ref": "#"}``.
  ``Bounds.max_recursion_depth`` instead expands recursive messages inline and leaves out a field
  whose message type already appears that many times on the path.
* Input schemas leave out ``OUTPUT_ONLY`` and deprecated fields and require ``REQUIRED`` fields
  (``google.api.field_behavior``); output schemas keep every field and require only proto2
  ``required`` fields, since ``MessageToDict`` omits a field that holds its default.

Known gaps: an ``Any`` is only parseable when its ``@type`` is in the descriptor pool, and an RFC
3339 timestamp on 0001-01-01 or 9999-12-31 whose offset moves it out of range matches the pattern
but is rejected by ``ParseDict``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from toolgen.jsonschema_kit import (
    DIALECTS,
    SchemaLimitError,
    StrictLimits,
    check_strict_limits,
    nullable,
)
from toolgen.jsonschema_kit import JSONSCHEMA_DIALECT_URI as JSONSCHEMA_DIALECT_URI

__all__ = [
    "Bounds",
    "Dialect",
    "Direction",
    "SchemaLimitError",
    "StrictDecodeError",
    "StrictLimits",
    "from_strict",
    "message_schema",
]

Dialect = Literal["jsonschema", "grammar", "openai"]
Direction = Literal["input", "output"]


@dataclass(frozen=True)
class Bounds:
    """Size bounds for schemas a small grammar-constrained model writes against.

    Without them such a model runs away in unbounded strings and recursive arrays until it hits
    ``max_tokens``. ``None`` leaves that dimension unbounded. ``max_items`` also caps map entries.
    ``max_recursion_depth`` is how many times one message type may appear on a path from the root;
    a field that would exceed it is left out of ``properties`` (so an instance cannot set it).
    """

    max_string_length: int | None = None
    max_items: int | None = None
    max_recursion_depth: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_string_length", "max_items", "max_recursion_depth"):
            value = getattr(self, name)
            if value is not None and value < (1 if name == "max_recursion_depth" else 0):
                raise ValueError(f"Bounds.{name} must be positive, got {value}")


class StrictDecodeError(ValueError):
    """An openai-dialect instance cannot be mapped back to proto3 JSON; names the field path."""


# --- patterns ---------------------------------------------------------------------------------

# [0-9] rather than \d: Python's \d matches every Unicode digit, which int() then accepts.
_D = "[0-9]"


def _same_length_le(limit: str) -> list[str]:
    """Regex alternatives for decimal numbers with len(limit) digits, no leading zero, <= limit."""
    alternatives = []
    for i, digit in enumerate(limit):
        low = "1" if i == 0 else "0"
        if digit > low:
            top = chr(ord(digit) - 1)
            rest = len(limit) - i - 1
            span = low if top == low else f"[{low}-{top}]"
            alternatives.append(limit[:i] + span + (f"{_D}{{{rest}}}" if rest else ""))
    alternatives.append(limit)
    return alternatives


def _positive_le(limit: int) -> str:
    """Regex (no anchors) for the integers 1..limit written without leading zeros."""
    digits = str(limit)
    alternatives = []
    if len(digits) > 1:
        shorter = len(digits) - 2
        alternatives.append("[1-9]" + (f"{_D}{{0,{shorter}}}" if shorter else ""))
    alternatives.extend(_same_length_le(digits))
    return "(?:" + "|".join(alternatives) + ")"


def _int_pattern(low: int, high: int, *, anchored: bool = True) -> str:
    """Regex for decimal strings of the integers in [low, high] (low <= 0 < high)."""
    body = "0|" + _positive_le(high)
    if low < 0:
        body += "|-" + _positive_le(-low)
    return f"^(?:{body})$" if anchored else f"(?:{body})"


_B64 = "[A-Za-z0-9+/_-]"
BYTES_PATTERN = f"^(?:{_B64}{{4}})*(?:{_B64}{{2}}(?:==)?|{_B64}{{3}}=?)?$"

_YEAR = f"(?:[1-9]{_D}{{3}}|0[1-9]{_D}{{2}}|00[1-9]{_D}|000[1-9])"
_MONTH_DAY = (
    f"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]{_D}|3[01])"
    f"|(?:0[469]|11)-(?:0[1-9]|[12]{_D}|30)"
    f"|02-(?:0[1-9]|1{_D}|2[0-8]))"
)
_LEAP_YEAR = f"(?:{_D}{{2}}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_TIME = (
    f"T(?:[01]{_D}|2[0-3]):[0-5]{_D}:[0-5]{_D}(?:\\.{_D}{{1,9}})?"
    f"(?:Z|[+-](?:[01]{_D}|2[0-3]):[0-5]{_D})"
)
TIMESTAMP_PATTERN = f"^(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29){_TIME}$"

_DURATION_SECONDS_MAX = 315_576_000_000
DURATION_PATTERN = (
    f"^-?{_int_pattern(0, _DURATION_SECONDS_MAX, anchored=False)}(?:\\.{_D}{{1,9}})?s$"
)

_MASK_PATH = "[a-z][a-zA-Z0-9]*(?:\\.[a-z][a-zA-Z0-9]*)*"
FIELD_MASK_PATTERN = f"^(?:{_MASK_PATH}(?:,{_MASK_PATH})*)?$"

_T = FieldDescriptor
_INT_RANGES: dict[int, tuple[int, int]] = {
    _T.TYPE_INT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _T.TYPE_UINT32: (0, 2**32 - 1),
    _T.TYPE_FIXED32: (0, 2**32 - 1),
    _T.TYPE_INT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _T.TYPE_UINT64: (0, 2**64 - 1),
    _T.TYPE_FIXED64: (0, 2**64 - 1),
}
_INT64_TYPES = {_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64, _T.TYPE_UINT64, _T.TYPE_FIXED64}
# protobuf's own float32 range check in ParseDict (type_checkers._FLOAT_MAX).
_FLOAT32_MAX = 3.4028234663852886e38
_FLOAT_WORDS = ["NaN", "Infinity", "-Infinity"]

_WRAPPERS = {
    f"google.protobuf.{n}Value"
    for n in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
}
# Types whose proto3 JSON form is open-ended; the openai dialect carries them as JSON strings.
_JSON_STRING_WKTS = {
    "google.protobuf.Struct",
    "google.protobuf.Value",
    "google.protobuf.ListValue",
    "google.protobuf.Any",
}
_NULL_VALUE = "google.protobuf.NullValue"


# --- helpers shared by the walk and the inverse ---------------------------------------------


def _message_of(field: FieldDescriptor) -> Descriptor:
    message = field.message_type
    assert message is not None, field.full_name
    return message


def _enum_of(field: FieldDescriptor) -> EnumDescriptor:
    enum = field.enum_type
    assert enum is not None, field.full_name
    return enum


def _is_map(field: FieldDescriptor) -> bool:
    message = field.message_type
    return bool(field.is_repeated and message is not None and message.GetOptions().map_entry)


def _behaviors(field: FieldDescriptor) -> set[int]:
    if not field.has_options:
        return set()
    return set(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])


def _synthetic_oneofs(descriptor: Descriptor) -> set[str]:
    """Names of the oneofs protoc made for proto3 ``optional`` fields (not real choices)."""
    proto = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(proto)
    return {
        proto.oneof_decl[f.oneof_index].name
        for f in proto.field
        if f.proto3_optional and f.HasField("oneof_index")
    }


def _real_oneof(field: FieldDescriptor, synthetic: set[str]) -> str | None:
    oneof = field.containing_oneof
    if oneof is None or oneof.name in synthetic:
        return None
    return str(oneof.name)


def _int_schema(field_type: int) -> dict[str, Any]:
    low, high = _INT_RANGES[field_type]
    number = {"type": "integer", "minimum": low, "maximum": high}
    if field_type in _INT64_TYPES:
        return {"anyOf": [{"type": "string", "pattern": _int_pattern(low, high)}, number]}
    return number


def _json_default(field: FieldDescriptor) -> Any:
    """A proto2 default value in its proto3 JSON form."""
    value = field.default_value
    if field.type == _T.TYPE_ENUM:
        named = _enum_of(field).values_by_number.get(value)
        return named.name if named is not None else value
    if field.type == _T.TYPE_BYTES:
        import base64

        return base64.b64encode(value).decode("ascii")
    if field.type in _INT64_TYPES:
        return str(value)
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return value


# --- the walk ---------------------------------------------------------------------------------


class _Walk:
    """One walk over a message graph; the dialect and direction are options, not separate code."""

    def __init__(
        self,
        root: Descriptor,
        dialect: Dialect,
        direction: Direction,
        comments: Mapping[str, str],
        bounds: Bounds,
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(
                f"unknown dialect {dialect!r}: use 'jsonschema', 'grammar' or 'openai'"
            )
        if direction not in ("input", "output"):
            raise ValueError(f"unknown direction {direction!r}: use 'input' or 'output'")
        self.root = root
        self.rules = DIALECTS[dialect]  # what differs between the dialects, as one table
        self.input = direction == "input"
        self.comments = comments
        self.bounds = bounds
        self.defs: dict[str, dict[str, Any]] = {}
        self.def_keys: dict[str, str] = {}
        self.path: list[str] = []
        self.cyclic: set[str] = (
            _cyclic_messages(root) if bounds.max_recursion_depth is not None else set()
        )
        self._synthetic: dict[str, set[str]] = {}

    # root and messages

    def build(self) -> dict[str, Any]:
        name = self.root.full_name
        if name in _WELL_KNOWN or name in _WRAPPERS:
            body = self.well_known(self.root)
            if self.rules.strict_objects and body.get("type") != "object":
                raise SchemaLimitError(name, "root_type_object", 1, 0)
        else:
            self.path.append(name)
            body = self.message_body(self.root)
            self.path.pop()
        schema: dict[str, Any] = {}
        if self.rules.schema_uri is not None:
            schema["$schema"] = self.rules.schema_uri
        schema.update(body)
        if self.defs:
            schema["$defs"] = dict(sorted(self.defs.items()))
        return schema

    def message_ref(self, message: Descriptor) -> dict[str, Any] | None:
        """A schema for a message-typed value; ``None`` when recursion bounds cut it off."""
        name = message.full_name
        if name in _WELL_KNOWN or name in _WRAPPERS:
            return self.well_known(message)
        if name in self.cyclic:
            assert self.bounds.max_recursion_depth is not None
            if self.path.count(name) >= self.bounds.max_recursion_depth:
                return None
            # Bounded recursion: inline, so each level can be cut on its own path.
            self.path.append(name)
            try:
                return self.message_body(message)
            finally:
                self.path.pop()
        if name == self.root.full_name:
            return {"$ref": "#"}
        key = self.def_keys.get(name)
        if key is None:
            key = _def_key(name, set(self.def_keys.values()))
            self.def_keys[name] = key
            self.defs[key] = {}  # placeholder, so a cycle back to it ends here
            self.defs[key] = self.message_body(message)
        return {"$ref": f"#/$defs/{key}"}

    def message_body(self, message: Descriptor) -> dict[str, Any]:
        synthetic = self._synthetic.get(message.full_name)
        if synthetic is None:
            synthetic = self._synthetic[message.full_name] = _synthetic_oneofs(message)
        properties: dict[str, Any] = {}
        required: list[str] = []
        oneofs: dict[str, list[str]] = {}
        for field in message.fields:
            behaviors = _behaviors(field)
            if self.input and (
                field_behavior_pb2.OUTPUT_ONLY in behaviors or field.GetOptions().deprecated
            ):
                continue
            oneof = _real_oneof(field, synthetic)
            must = field.is_required or (
                self.input and field_behavior_pb2.REQUIRED in behaviors and oneof is None
            )
            schema = self.field_schema(field, must=must, oneof=oneof)
            if schema is None:
                continue
            properties[field.json_name] = schema
            if must or self.rules.strict_objects:
                required.append(field.json_name)
            if oneof is not None:
                oneofs.setdefault(oneof, []).append(field.json_name)
        body: dict[str, Any] = {"type": "object", "title": message.name}
        text = self.comments.get(message.full_name)
        if text:
            body["description"] = text
        body["properties"] = properties
        if required:
            body["required"] = required
        elif self.rules.strict_objects:
            body["required"] = []
        body["additionalProperties"] = False
        if self.rules.oneofs == "branches" and message.full_name not in self.cyclic:
            # (A recursive message is inlined once per level; branching it at every level
            # would multiply the schema, so its oneofs are described, not enforced.)
            return _oneof_branches(body, [m for m in oneofs.values() if len(m) > 1])
        if self.rules.oneofs == "dependent":
            dependent = {
                member: {"properties": {other: False for other in members if other != member}}
                for members in oneofs.values()
                if len(members) > 1
                for member in members
            }
            if dependent:
                body["dependentSchemas"] = dependent
        return body

    # fields

    def field_schema(
        self, field: FieldDescriptor, *, must: bool, oneof: str | None
    ) -> dict[str, Any] | None:
        if _is_map(field):
            schema = self.map_schema(field)
        elif field.is_repeated:
            items = self.value_schema(field, element=True)
            if items is None:
                return None
            schema = {"type": "array", "items": items}
            if self.bounds.max_items is not None:
                schema["maxItems"] = self.bounds.max_items
        else:
            value = self.value_schema(field, element=False)
            if value is None:
                return None
            schema = value
        if schema is None:
            return None
        optional = self.rules.strict_objects and not must  # strict: null means absent
        wrapper = (
            field.message_type is not None
            and field.message_type.full_name in _WRAPPERS
            and not field.is_repeated
        )
        if optional or wrapper:
            schema = nullable(schema)
        description = self.field_description(field, oneof)
        if description:
            schema = _described(schema, description, strict=self.rules.strict_objects)
        if field.has_default_value and not field.is_repeated and field.type != _T.TYPE_MESSAGE:
            default = _json_default(field)
            if self.rules.default_keyword:
                schema = {**schema, "default": default}
            else:  # strict mode has no "default" keyword; tell the model instead
                schema = _described(schema, f"Default: {json.dumps(default)}.", strict=True)
        return schema

    def field_description(self, field: FieldDescriptor, oneof: str | None) -> str:
        parts = []
        text = self.comments.get(field.full_name)
        if text:
            parts.append(text)
        group = field.containing_oneof
        if oneof is not None and group is not None:
            members = ", ".join(f.json_name for f in group.fields if f.json_name != field.json_name)
            rule = self.rules.oneof_rule
            parts.append(f"Part of oneof '{oneof}': when setting this, {rule} ({members}).")
        if field.enum_type is not None and field.enum_type.full_name != _NULL_VALUE:
            parts.append(self.enum_note(field.enum_type))
        return " ".join(parts)

    def enum_note(self, enum: EnumDescriptor) -> str:
        parts = []
        text = self.comments.get(enum.full_name)
        if text:
            parts.append(text)
        zero = enum.values_by_number.get(0)
        if zero is not None:
            parts.append(
                f"{zero.name} (0) is the default: it means unspecified, the same as leaving "
                "the field out."
            )
        described = [
            f"{v.name}: {self.comments[f'{enum.full_name}.{v.name}']}"
            for v in enum.values
            if self.comments.get(f"{enum.full_name}.{v.name}")
        ]
        if described:
            parts.append("Values: " + "; ".join(described) + ".")
        return " ".join(parts)

    def map_schema(self, field: FieldDescriptor) -> dict[str, Any] | None:
        entry = _message_of(field)
        key_field = entry.fields_by_name["key"]
        value = self.value_schema(entry.fields_by_name["value"], element=True)
        if value is None:
            return None
        if self.rules.maps == "object":  # keys stay strings: no engine enforces propertyNames
            return {"type": "object", "additionalProperties": value}
        if self.rules.maps == "pairs":
            key = self.scalar_schema(key_field)
            pair = {
                "type": "object",
                "properties": {"key": key, "value": value},
                "required": ["key", "value"],
                "additionalProperties": False,
            }
            schema: dict[str, Any] = {
                "type": "array",
                "description": "Map entries as {key, value} objects; keys must be unique.",
                "items": pair,
            }
            if self.bounds.max_items is not None:
                schema["maxItems"] = self.bounds.max_items
            return schema
        schema = {"type": "object", "additionalProperties": value}
        if key_field.type in _INT_RANGES:
            low, high = _INT_RANGES[key_field.type]
            schema["propertyNames"] = {"pattern": _int_pattern(low, high)}
        elif key_field.type == _T.TYPE_BOOL:
            schema["propertyNames"] = {"enum": ["true", "false"]}
        elif self.bounds.max_string_length is not None:
            schema["propertyNames"] = {"maxLength": self.bounds.max_string_length}
        if self.bounds.max_items is not None and self.rules.max_properties:
            schema["maxProperties"] = self.bounds.max_items
        return schema

    def value_schema(self, field: FieldDescriptor, *, element: bool) -> dict[str, Any] | None:
        """One value of a field: the whole singular field, or one element of a list or map."""
        if field.type in (_T.TYPE_MESSAGE, _T.TYPE_GROUP):
            return self.message_ref(_message_of(field))
        if field.type == _T.TYPE_ENUM:
            return self.enum_schema(_enum_of(field), element=element)
        return self.scalar_schema(field)

    def scalar_schema(self, field: FieldDescriptor) -> dict[str, Any]:
        kind = field.type
        if kind in _INT_RANGES:
            return _int_schema(kind)
        if kind in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
            number: dict[str, Any] = {"type": "number"}
            if kind == _T.TYPE_FLOAT and self.rules.float_range:
                number.update(minimum=-_FLOAT32_MAX, maximum=_FLOAT32_MAX)
            return {"anyOf": [number, {"type": "string", "enum": list(_FLOAT_WORDS)}]}
        if kind == _T.TYPE_BOOL:
            return {"type": "boolean"}
        if kind == _T.TYPE_BYTES:
            schema: dict[str, Any] = {"type": "string", "pattern": BYTES_PATTERN}
            if self.rules.content_encoding:
                schema["contentEncoding"] = "base64"
            return self.bounded_string(schema)
        return self.bounded_string({"type": "string"})

    def enum_schema(self, enum: EnumDescriptor, *, element: bool) -> dict[str, Any]:
        if enum.full_name == _NULL_VALUE:
            # MessageToDict writes null; inside a list ParseDict wants the name instead.
            if element:
                return {"type": "string", "enum": ["NULL_VALUE"]}
            return {"type": "null"}
        names = [v.name for v in enum.values]
        by_name: dict[str, Any] = {"type": "string", "enum": names}
        if not self.rules.enum_numbers:
            return by_name
        if enum.is_closed:
            numbers: dict[str, Any] = {"type": "integer", "enum": sorted(enum.values_by_number)}
        else:
            low, high = _INT_RANGES[_T.TYPE_INT32]
            numbers = {"type": "integer", "minimum": low, "maximum": high}
        return {"anyOf": [by_name, numbers]}

    def bounded_string(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.bounds.max_string_length is not None:
            schema["maxLength"] = self.bounds.max_string_length
        return schema

    # well-known types

    def well_known(self, message: Descriptor) -> dict[str, Any]:
        name = message.full_name
        if name in _WRAPPERS:
            return self.scalar_schema(message.fields_by_name["value"])
        if self.rules.open_values_as_strings and name in _JSON_STRING_WKTS:
            return self.bounded_string({"type": "string", "description": _STRICT_JSON_NOTES[name]})
        make = _WELL_KNOWN[name]
        return make(self)

    def timestamp(self) -> dict[str, Any]:
        schema = {
            "type": "string",
            "format": "date-time",
            "pattern": TIMESTAMP_PATTERN,
            "description": "RFC 3339 date-time, e.g. 2024-05-01T12:30:00Z.",
        }
        if not self.rules.format_keyword:  # the pattern says it all; engines differ on it
            del schema["format"]
        return schema

    def duration(self) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": 'Seconds with up to 9 fractional digits and an "s" suffix, e.g. "1.5s".',
        }

    def field_mask(self) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": FIELD_MASK_PATTERN,
            "description": 'Comma-separated lowerCamelCase field paths, e.g. "name,address.city".',
        }

    def struct(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object"}
        if self.bounds.max_items is not None and self.rules.max_properties:
            schema["maxProperties"] = self.bounds.max_items
        return schema

    def value(self) -> dict[str, Any]:
        return {"description": "Any JSON value."}

    def list_value(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array"}
        if self.bounds.max_items is not None:
            schema["maxItems"] = self.bounds.max_items
        return schema

    def any(self) -> dict[str, Any]:
        if self.rules.any_requires_type:  # an empty Any is not worth a union here
            return {
                "type": "object",
                "description": 'A packed message: "@type" is its type URL beside its fields.',
                "properties": {"@type": self.bounded_string({"type": "string"})},
                "required": ["@type"],
            }
        return {
            "type": "object",
            "description": (
                'A packed message: "@type" is its type URL, e.g. '
                '"type.googleapis.com/pkg.Msg", beside the message\'s own fields (or "value" '
                "for a well-known type). Empty object for an empty Any."
            ),
            "properties": {"@type": {"type": "string"}},
            "anyOf": [{"maxProperties": 0}, {"required": ["@type"]}],
        }

    def empty(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object", "properties": {}}
        if self.rules.strict_objects:
            schema["required"] = []
        schema["additionalProperties"] = False
        return schema


_WELL_KNOWN: dict[str, Callable[[_Walk], dict[str, Any]]] = {
    "google.protobuf.Timestamp": _Walk.timestamp,
    "google.protobuf.Duration": _Walk.duration,
    "google.protobuf.FieldMask": _Walk.field_mask,
    "google.protobuf.Struct": _Walk.struct,
    "google.protobuf.Value": _Walk.value,
    "google.protobuf.ListValue": _Walk.list_value,
    "google.protobuf.Any": _Walk.any,
    "google.protobuf.Empty": _Walk.empty,
}

_STRICT_JSON_NOTES = {
    "google.protobuf.Struct": "A JSON object, encoded as a string.",
    "google.protobuf.Value": "Any JSON value, encoded as a string.",
    "google.protobuf.ListValue": "A JSON array, encoded as a string.",
    "google.protobuf.Any": (
        'A JSON object encoded as a string: "@type" (e.g. "type.googleapis.com/pkg.Msg") '
        "beside the packed message's fields."
    ),
}


def _def_key(full_name: str, taken: set[str]) -> str:
    """A ``$defs`` key from a full message name: safe characters only, unique."""
    base = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in full_name)
    key, n = base, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    return key


# More branches than this and a message's oneofs are described instead of enforced (the
# branches multiply across oneofs, and a grammar grows with them).
MAX_ONEOF_BRANCHES = 16


def _oneof_branches(body: dict[str, Any], groups: list[list[str]]) -> dict[str, Any]:
    """A message with oneofs as an ``anyOf`` of complete object schemas, one per choice.

    Each branch lists the fields outside the oneofs plus at most one member of each oneof, so
    a decoder that follows the grammar can never set two members. Without any oneof of two or
    more members, or past ``MAX_ONEOF_BRANCHES``, ``body`` is returned as it is.
    """
    count = 1
    for members in groups:
        count *= len(members) + 1
    if not groups or count > MAX_ONEOF_BRANCHES:
        return body
    grouped = {member for members in groups for member in members}
    choices: list[list[str | None]] = [[]]
    for members in groups:  # none or one member of each oneof
        choices = [[*chosen, m] for chosen in choices for m in [None, *members]]
    properties = body["properties"]
    branches = []
    for chosen in choices:
        keep = {name for name in chosen if name is not None}
        branch = {k: v for k, v in body.items() if k not in ("title", "description")}
        branch["properties"] = {
            name: schema
            for name, schema in properties.items()
            if name not in grouped or name in keep
        }
        branches.append(branch)
    wrapper: dict[str, Any] = {k: body[k] for k in ("title", "description") if k in body}
    return {**wrapper, "anyOf": branches}


def _described(schema: dict[str, Any], text: str, *, strict: bool) -> dict[str, Any]:
    """Attach a field description without giving a ``$ref`` siblings in strict mode."""
    if strict and "$ref" in schema:
        schema = {"anyOf": [schema]}
    existing = schema.get("description")
    return {**schema, "description": f"{text} {existing}" if existing else text}


def _message_edges(message: Descriptor) -> Iterator[Descriptor]:
    for field in message.fields:
        target = field.message_type
        if target is None:
            continue
        if _is_map(field):
            target = target.fields_by_name["value"].message_type
            if target is None:
                continue
        if target.full_name in _WELL_KNOWN or target.full_name in _WRAPPERS:
            continue
        yield target


def _cyclic_messages(root: Descriptor) -> set[str]:
    """Full names of the messages reachable from ``root`` that lie on a cycle (Tarjan's SCC)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cyclic: set[str] = set()

    def visit(message: Descriptor) -> None:
        name = message.full_name
        index[name] = low[name] = len(index)
        stack.append(name)
        on_stack.add(name)
        self_loop = False
        for target in _message_edges(message):
            if target.full_name == name:
                self_loop = True
            if target.full_name not in index:
                visit(target)
                low[name] = min(low[name], low[target.full_name])
            elif target.full_name in on_stack:
                low[name] = min(low[name], index[target.full_name])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == name:
                    break
            if len(component) > 1 or self_loop:
                cyclic.update(component)

    visit(root)
    return cyclic


# --- public API ---------------------------------------------------------------------------------


def message_schema(
    descriptor: Descriptor,
    *,
    dialect: Dialect = "jsonschema",
    direction: Direction = "input",
    comments: Mapping[str, str] | None = None,
    limits: StrictLimits | None = None,
    bounds: Bounds | None = None,
) -> dict[str, Any]:
    """The JSON Schema of ``descriptor``'s proto3 JSON form, self-contained (``$defs`` inside).

    ``direction="input"`` is for what a caller (or model) writes: OUTPUT_ONLY and deprecated
    fields are left out and REQUIRED fields are required. ``direction="output"`` describes what
    ``MessageToDict`` produces. ``comments`` (see ``toolgen.comments``) become descriptions.
    For the openai dialect the result is checked against ``limits`` (``StrictLimits()`` when
    ``None``) and ``SchemaLimitError`` names the message, the limit and the value.
    """
    walk = _Walk(descriptor, dialect, direction, comments or {}, bounds or Bounds())
    schema = walk.build()
    if walk.rules.strict_objects:
        check_strict_limits(schema, descriptor.full_name, limits or StrictLimits())
    return schema


def from_strict(instance: Any, descriptor: Descriptor) -> dict[str, Any]:
    """Map an instance of the openai-dialect INPUT schema back to proto3 JSON for ParseDict.

    Drops nulls (absent fields), turns ``[{key, value}]`` arrays back into objects with string
    keys, decodes the JSON strings that carry Struct/Value/ListValue/Any, and checks that at most
    one member of each oneof is set. Raises ``StrictDecodeError`` naming the field path otherwise.
    """
    if not isinstance(instance, dict):
        raise StrictDecodeError(
            f"{descriptor.full_name}: expected a JSON object, got {type(instance).__name__}"
        )
    if descriptor.full_name in _WELL_KNOWN or descriptor.full_name in _WRAPPERS:
        return dict(instance)  # only Empty (an object) can be a strict-mode root
    return _decode_message(instance, descriptor, descriptor.full_name)


def _decode_message(obj: dict[str, Any], message: Descriptor, path: str) -> dict[str, Any]:
    synthetic = _synthetic_oneofs(message)
    by_json = {f.json_name: f for f in message.fields}
    out: dict[str, Any] = {}
    chosen: dict[str, str] = {}
    for key, value in obj.items():
        field = by_json.get(key) or message.fields_by_name.get(key)
        where = f"{path}.{key}"
        if field is None:
            raise StrictDecodeError(f"{where}: {message.full_name} has no field {key!r}")
        if value is None:
            continue
        oneof = _real_oneof(field, synthetic)
        if oneof is not None:
            if oneof in chosen:
                raise StrictDecodeError(
                    f"{where}: oneof '{oneof}' of {message.full_name} allows one member, "
                    f"but both {chosen[oneof]!r} and {key!r} are set; set the others to null"
                )
            chosen[oneof] = key
        out[key] = _decode_field(field, value, where)
    return out


def _decode_field(field: FieldDescriptor, value: Any, path: str) -> Any:
    if _is_map(field):
        if not isinstance(value, list):
            raise StrictDecodeError(f"{path}: expected an array of {{key, value}} objects")
        value_field = _message_of(field).fields_by_name["value"]
        result: dict[str, Any] = {}
        for i, pair in enumerate(value):
            if not isinstance(pair, dict) or "key" not in pair or "value" not in pair:
                raise StrictDecodeError(f"{path}[{i}]: expected an object with key and value")
            key = pair["key"]
            text = ("true" if key else "false") if isinstance(key, bool) else str(key)
            if text in result:
                raise StrictDecodeError(f"{path}[{i}]: duplicate map key {text!r}")
            result[text] = _decode_value(value_field, pair["value"], f"{path}[{text}]")
        return result
    if field.is_repeated:
        if not isinstance(value, list):
            raise StrictDecodeError(f"{path}: expected an array")
        return [_decode_value(field, item, f"{path}[{i}]") for i, item in enumerate(value)]
    return _decode_value(field, value, path)


def _decode_value(field: FieldDescriptor, value: Any, path: str) -> Any:
    message = field.message_type
    if message is None or value is None:
        return value
    name = message.full_name
    if name in _JSON_STRING_WKTS:
        if not isinstance(value, str):
            raise StrictDecodeError(f"{path}: expected a JSON-encoded string")
        try:
            return json.loads(value)
        except ValueError as e:
            raise StrictDecodeError(f"{path}: not valid JSON: {e}") from e
    if name in _WELL_KNOWN or name in _WRAPPERS:
        return value
    if not isinstance(value, dict):
        raise StrictDecodeError(f"{path}: expected an object for {name}")
    return _decode_message(value, message, path)
