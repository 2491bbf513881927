"""Round-trip properties of toolgen.schema against protobuf's own json_format.

(1) random message -> MessageToDict -> valid under the output schema, and (minus OUTPUT_ONLY and
    deprecated fields, with REQUIRED fields set) under the input schema;
(2) random instance in every form the input schema allows (64-bit as number or string, enum as
    name or number, URL-safe unpadded bytes) -> valid -> ParseDict gives the same message;
(3) openai dialect: random strict instance -> valid -> from_strict -> ParseDict, same message.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
from typing import Any

import jsonschema
import pytest
from google.api import field_behavior_pb2
from google.protobuf import duration_pb2, empty_pb2, json_format, message_factory, struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_schema import ROOMY, comments_for, targets
from toolgen.schema import from_strict, message_schema

# Imported for their side effect: Any candidates must be in the default pool.
assert duration_pb2 and empty_pb2 and struct_pb2
MAX_DEPTH = 3
_FLT_MAX = 3.4028234663852886e38
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
_T = FieldDescriptor
_INTS = {
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
_INT64 = {_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64, _T.TYPE_UINT64, _T.TYPE_FIXED64}
_JSON_WKT = {"Struct", "Value", "ListValue"}
_JSON_STRING_WKTS = {f"google.protobuf.{n}" for n in ("Struct", "Value", "ListValue", "Any")}
_WKTS = _JSON_STRING_WKTS | {
    f"google.protobuf.{n}"
    for n in [
        "Timestamp",
        "Duration",
        "FieldMask",
        "Empty",
        "DoubleValue",
        "FloatValue",
        "Int64Value",
        "UInt64Value",
        "Int32Value",
        "UInt32Value",
        "BoolValue",
        "StringValue",
        "BytesValue",
    ]
}

ROOTS = [root for roots in targets().values() for root in roots]
IDS = [root.full_name for root in ROOTS]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def _is_map(field: FieldDescriptor) -> bool:
    return bool(field.message_type is not None and field.message_type.GetOptions().map_entry)


def _hidden_on_input(field: FieldDescriptor) -> bool:
    options = field.GetOptions()
    behaviors = options.Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.OUTPUT_ONLY in behaviors or options.deprecated


def _required(field: FieldDescriptor, input_mode: bool) -> bool:
    if field.is_required:
        return True
    behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    return input_mode and field_behavior_pb2.REQUIRED in behaviors


# --- random messages ---------------------------------------------------------------------------


def _scalar(field: FieldDescriptor, names_only: bool = False) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in _INTS:
        low, high = _INTS[kind]
        return st.integers(low, high) | st.sampled_from([low, high, 0])
    if kind == _T.TYPE_FLOAT:
        # Known protobuf gap: MessageToDict writes +-FLT_MAX as 3.4028235e+38, which its own
        # ParseDict rejects as too large; the schema sides with ParseDict.
        return st.floats(width=32).filter(lambda x: abs(x) != _FLT_MAX)
    if kind == _T.TYPE_DOUBLE:
        return st.floats()
    if kind == _T.TYPE_BOOL:
        return st.booleans()
    if kind == _T.TYPE_STRING:
        return st.text(max_size=6)
    if kind == _T.TYPE_BYTES:
        return st.binary(max_size=6)
    enum = field.enum_type
    assert enum is not None
    if enum.full_name == "google.protobuf.NullValue":
        return st.just(0)
    known = st.sampled_from([v.number for v in enum.values])
    # The openai dialect lists names only, so it cannot carry an open enum's unknown number.
    if enum.is_closed or names_only:
        return known
    return known | st.integers(-(2**31), 2**31 - 1)


@st.composite
def messages(
    draw: Any,
    descriptor: Descriptor,
    depth: int = 0,
    input_mode: bool = False,
    names_only: bool = False,
) -> Any:
    """A random message of ``descriptor``'s class, at most MAX_DEPTH messages deep."""
    message: Any = message_factory.GetMessageClass(descriptor)()
    name = descriptor.full_name
    if name == "google.protobuf.Timestamp":
        moment = draw(st.datetimes(min_value=datetime.datetime(1, 1, 1)))
        message.FromDatetime(moment.replace(tzinfo=datetime.UTC))
        message.nanos = draw(st.integers(0, 999_999_999))
        return message
    if name == "google.protobuf.Duration":
        seconds = draw(st.integers(-315_576_000_000, 315_576_000_000))
        nanos = draw(st.integers(0, 999_999_999))
        message.seconds, message.nanos = seconds, (-nanos if seconds < 0 else nanos)
        return message
    if name == "google.protobuf.FieldMask":
        segment = st.from_regex(r"[a-z][a-z0-9]{0,3}(_[a-z][a-z0-9]{0,2}){0,2}", fullmatch=True)
        paths = st.lists(st.lists(segment, min_size=1, max_size=2).map(".".join), max_size=3)
        message.paths.extend(draw(paths))
        return message
    if name.removeprefix("google.protobuf.") in _JSON_WKT:
        shapes: dict[str, st.SearchStrategy[Any]] = {
            "Struct": st.dictionaries(st.text(max_size=4), json_values, max_size=3)
        }
        shapes["ListValue"] = st.lists(json_values, max_size=3)
        return json_format.ParseDict(draw(shapes.get(name[16:], json_values)), message)
    if name == "google.protobuf.Any":
        if depth >= MAX_DEPTH or draw(st.booleans()):
            return message
        pool = descriptor.file.pool
        inner_name = draw(st.sampled_from(_any_candidates(pool)))
        message.Pack(draw(messages(pool.FindMessageTypeByName(inner_name), depth + 1)))
        return message
    oneofs_done: set[str] = set()
    for field in descriptor.fields:
        if input_mode and _hidden_on_input(field):
            continue
        group = field.containing_oneof
        if group is not None and len(group.fields) > 1:
            if group.name in oneofs_done:
                continue
            oneofs_done.add(group.name)
            members = [f for f in group.fields if not (input_mode and _hidden_on_input(f))]
            field = draw(st.sampled_from([None, *members]))
            if field is None or (field.message_type is not None and depth >= MAX_DEPTH):
                continue
        elif not _required(field, input_mode) and not draw(st.booleans()):
            continue
        _fill(draw, message, field, depth, input_mode, names_only)
    return message


@functools.cache
def _any_candidates(pool: Any) -> list[str]:
    names = []
    for extra in (
        "google.protobuf.Duration",
        "google.protobuf.Empty",
        "google.protobuf.Struct",
        "zoo.v1.Scalars",
        "google.rpc.Status",
        "google.type.Date",
    ):
        try:
            pool.FindMessageTypeByName(extra)
        except KeyError:
            continue
        names.append(extra)
    return names


def _fill(
    draw: Any,
    message: Message,
    field: FieldDescriptor,
    depth: int,
    input_mode: bool,
    names_only: bool,
) -> None:
    target = field.message_type
    deeper = depth + 1
    if _is_map(field):
        assert target is not None
        key_field, value_field = target.fields_by_name["key"], target.fields_by_name["value"]
        container = getattr(message, field.name)
        if value_field.message_type is not None:
            if depth >= MAX_DEPTH:
                return
            for key in draw(st.lists(_scalar(key_field), max_size=2, unique=True)):
                container[key].CopyFrom(
                    draw(messages(value_field.message_type, deeper, input_mode, names_only))
                )
        else:
            values = st.dictionaries(
                _scalar(key_field), _scalar(value_field, names_only), max_size=3
            )
            container.update(draw(values))
        return
    if field.is_repeated:
        container = getattr(message, field.name)
        if target is not None:
            if depth >= MAX_DEPTH:
                return
            for item in draw(
                st.lists(messages(target, deeper, input_mode, names_only), max_size=2)
            ):
                container.add().CopyFrom(item)
        else:
            container.extend(draw(st.lists(_scalar(field, names_only), max_size=3)))
        return
    if target is not None:
        if depth >= MAX_DEPTH and not _required(field, input_mode):
            return
        sub = getattr(message, field.name)
        sub.SetInParent()
        sub.CopyFrom(draw(messages(target, deeper, input_mode, names_only)))
        return
    setattr(message, field.name, draw(_scalar(field, names_only)))


# --- alternative and strict forms of a MessageToDict result -----------------------------------


def _json_field(descriptor: Descriptor, key: str) -> FieldDescriptor:
    for field in descriptor.fields:
        if field.json_name == key:
            return field
    raise KeyError(key)


def _reshape(js: Any, descriptor: Descriptor, visit: Any) -> Any:
    """Apply ``visit(field, value)`` to every field value below a message's JSON object."""
    if descriptor.full_name in _WKTS or not isinstance(js, dict):
        return js
    out = {}
    for key, value in js.items():
        field = _json_field(descriptor, key)
        result = visit(field, value)
        if result is not _DROP:
            out[key] = result
    return out


_DROP = object()


def _strip_hidden(js: Any, descriptor: Descriptor) -> Any:
    def visit(field: FieldDescriptor, value: Any) -> Any:
        if _hidden_on_input(field):
            return _DROP
        return _each(field, value, lambda d, v: _strip_hidden(v, d))

    return _reshape(js, descriptor, visit)


def _each(field: FieldDescriptor, value: Any, on_message: Any, on_scalar: Any = None) -> Any:
    """Map every element of a field's JSON value (singular, list or map values)."""
    element = field
    if _is_map(field):
        assert field.message_type is not None
        element = field.message_type.fields_by_name["value"]

    def one(item: Any) -> Any:
        if element.message_type is not None:
            return on_message(element.message_type, item)
        return on_scalar(element, item) if on_scalar else item

    if _is_map(field):
        return {k: one(v) for k, v in value.items()}
    if field.is_repeated:
        return [one(v) for v in value]
    return one(value)


def _alternative_forms(js: Any, descriptor: Descriptor, draw: Any) -> Any:
    """Rewrite scalars into the other forms ParseDict and the schema both accept."""

    def scalar(field: FieldDescriptor, value: Any) -> Any:
        if field.type in _INT64 and isinstance(value, str) and draw(st.booleans()):
            return int(value)
        if field.type == _T.TYPE_ENUM and isinstance(value, str) and draw(st.booleans()):
            assert field.enum_type is not None
            return field.enum_type.values_by_name[value].number
        if field.type == _T.TYPE_BYTES and draw(st.booleans()):
            return base64.urlsafe_b64encode(base64.b64decode(value)).decode().rstrip("=")
        return value

    def visit(field: FieldDescriptor, value: Any) -> Any:
        return _each(field, value, lambda d, v: _alternative_forms(v, d, draw), scalar)

    return _reshape(js, descriptor, visit)


def _to_strict(js: Any, descriptor: Descriptor, draw: Any) -> Any:
    """The openai-dialect instance for a proto3 JSON object: nulls, entry arrays, JSON strings."""
    out: dict[str, Any] = {}
    for field in descriptor.fields:
        if _hidden_on_input(field):
            continue
        if field.json_name not in js:
            out[field.json_name] = None
            continue
        value = js[field.json_name]

        def message(d: Descriptor, v: Any) -> Any:
            if d.full_name in _JSON_STRING_WKTS:
                return json.dumps(v)
            if d.full_name in _WKTS:
                return v
            return _to_strict(v, d, draw)

        converted = _each(field, value, message)
        if _is_map(field):
            assert field.message_type is not None
            key_field = field.message_type.fields_by_name["key"]
            converted = [
                {"key": _strict_key(key_field, k, draw), "value": v} for k, v in converted.items()
            ]
        out[field.json_name] = converted
    return out


def _strict_key(field: FieldDescriptor, key: str, draw: Any) -> Any:
    if field.type == _T.TYPE_BOOL:
        return key == "true"
    if field.type in _INT64:
        return int(key) if draw(st.booleans()) else key
    if field.type in _INTS:
        return int(key)
    return key


def _same(parsed: Message, original: Message, root: Descriptor) -> None:
    """Equal as proto3 JSON: bytes differ for NaN payloads and for maps packed inside an Any."""

    def canonical(message: Message) -> str:
        return json.dumps(json_format.MessageToDict(message, **_pool_kw(root)), sort_keys=True)

    assert canonical(parsed) == canonical(original)


@functools.cache
def _validator(root: Descriptor, dialect: str, direction: str) -> Any:
    schema = message_schema(
        root,
        dialect=dialect,  # type: ignore[arg-type]
        direction=direction,  # type: ignore[arg-type]
        comments=comments_for(root),
        limits=ROOMY,
    )
    return jsonschema.Draft202012Validator(schema)


def _pool_kw(root: Descriptor) -> dict[str, Any]:
    return {"descriptor_pool": root.file.pool}


# --- the properties ------------------------------------------------------------------------------


@pytest.mark.parametrize("root", ROOTS, ids=IDS)
@SETTINGS
@given(data=st.data())
def test_message_to_dict_validates_against_output_and_input(root: Descriptor, data: Any) -> None:
    message = data.draw(messages(root))
    for always in (False, True):
        js = json_format.MessageToDict(
            message, always_print_fields_with_no_presence=always, **_pool_kw(root)
        )
        _validator(root, "jsonschema", "output").validate(js)
    if root.full_name in ("google.protobuf.Struct", "google.protobuf.ListValue"):
        return
    given_input = data.draw(messages(root, input_mode=True))
    js = json_format.MessageToDict(
        given_input, always_print_fields_with_no_presence=True, **_pool_kw(root)
    )
    _validator(root, "jsonschema", "input").validate(_strip_hidden(js, root))


@pytest.mark.parametrize("root", ROOTS, ids=IDS)
@SETTINGS
@given(data=st.data())
def test_schema_valid_instances_parse(root: Descriptor, data: Any) -> None:
    message = data.draw(messages(root, input_mode=True))
    # Printing fields without presence keeps REQUIRED fields that hold their default.
    js = json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True, **_pool_kw(root)
    )
    js = _strip_hidden(js, root)
    instance = _alternative_forms(js, root, data.draw)
    _validator(root, "jsonschema", "input").validate(instance)
    parsed = json_format.ParseDict(
        instance, message_factory.GetMessageClass(root)(), **_pool_kw(root)
    )
    _same(parsed, message, root)


STRICT_ROOTS = [
    r for r in ROOTS if r.full_name not in ("google.protobuf.Struct", "google.protobuf.ListValue")
]


@pytest.mark.parametrize("root", STRICT_ROOTS, ids=[r.full_name for r in STRICT_ROOTS])
@SETTINGS
@given(data=st.data())
def test_strict_instances_map_back_and_parse(root: Descriptor, data: Any) -> None:
    message = data.draw(messages(root, input_mode=True, names_only=True))
    # Printing fields without presence keeps REQUIRED fields that hold their default.
    js = json_format.MessageToDict(
        message, always_print_fields_with_no_presence=True, **_pool_kw(root)
    )
    js = _strip_hidden(js, root)
    strict = _to_strict(js, root, data.draw)
    _validator(root, "openai", "input").validate(strict)
    proto_json = from_strict(strict, root)
    parsed = json_format.ParseDict(
        proto_json, message_factory.GetMessageClass(root)(), **_pool_kw(root)
    )
    _same(parsed, message, root)
