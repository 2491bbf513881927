"""toolgen.schema and toolgen.comments: golden files, metaschema, limits, bounds, patterns."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc_tools
import jsonschema
import pytest
from google.api import http_pb2
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    field_mask_pb2,
    json_format,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor
from google.rpc import status_pb2
from google.type import date_pb2, datetime_pb2, interval_pb2, latlng_pb2, money_pb2
from grpc_health.v1 import health_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from agentd.v1 import agent_pb2
from examples.calculator.v1 import calculator_pb2
from examples.ledger.v1 import ledger_pb2
from toolgen.comments import comments_from_files
from toolgen.schema import (
    BYTES_PATTERN,
    DURATION_PATTERN,
    FIELD_MASK_PATTERN,
    TIMESTAMP_PATTERN,
    Bounds,
    SchemaLimitError,
    StrictDecodeError,
    StrictLimits,
    _int_pattern,
    from_strict,
    message_schema,
)

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
PROTOS = HERE / "protos"
VARIANTS = [(d, w) for d in ("jsonschema", "openai") for w in ("input", "output")]
# The big published protos exceed the default strict limits; they are exercised, not judged.
ROOMY = StrictLimits(max_depth=50, max_properties=100_000, max_enum_values=10_000, max_chars=10**7)


@functools.cache
def zoo() -> tuple[descriptor_pool.DescriptorPool, dict[str, str]]:
    """Compile tests/protos/zoo with source info into a FileDescriptorSet; load it into a pool."""
    site = Path(json_format.__file__).parents[2]
    out = Path(os.environ.get("PYTEST_TMPDIR", "/tmp")) / f"zoo-{os.getpid()}.pb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{site}",
            f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            "zoo/v1/wkt_zoo.proto",
            "zoo/v1/legacy.proto",
        ],
        check=True,
    )
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    out.unlink()
    pool = descriptor_pool.DescriptorPool()
    for file in files:
        pool.Add(file)
    return pool, comments_from_files(files)


def zoo_message(name: str) -> Descriptor:
    return zoo()[0].FindMessageTypeByName(f"zoo.v1.{name}")


def _file_messages(module: Any) -> list[Descriptor]:
    return list(module.DESCRIPTOR.message_types_by_name.values())


# Golden file name -> root messages. Examples in full; published protos by their hard roots.
def targets() -> dict[str, list[Descriptor]]:
    return {
        "examples_ledger_v1": _file_messages(ledger_pb2),
        "examples_calculator_v1": _file_messages(calculator_pb2),
        "agentd_v1": _file_messages(agent_pb2),
        "zoo_v1_wkt_zoo": [
            zoo_message(n) for n in ("Scalars", "WellKnown", "Maps", "Animal", "Visit")
        ],
        "zoo_v1_legacy": [zoo_message("Legacy")],
        "google_protobuf_descriptor": [descriptor_pb2.FileDescriptorSet.DESCRIPTOR],
        "google_protobuf_struct": [struct_pb2.Struct.DESCRIPTOR, struct_pb2.ListValue.DESCRIPTOR],
        "opentelemetry_trace_v1": [trace_pb2.TracesData.DESCRIPTOR],
        "opentelemetry_common_v1": [common_pb2.AnyValue.DESCRIPTOR],
        "google_rpc_status": [status_pb2.Status.DESCRIPTOR],
        "google_api_http": [http_pb2.Http.DESCRIPTOR],
        "google_type": [
            date_pb2.Date.DESCRIPTOR,
            datetime_pb2.DateTime.DESCRIPTOR,
            interval_pb2.Interval.DESCRIPTOR,
            latlng_pb2.LatLng.DESCRIPTOR,
            money_pb2.Money.DESCRIPTOR,
        ],
        "grpc_health_v1": _file_messages(health_pb2),
    }


def comments_for(descriptor: Descriptor) -> dict[str, str]:
    return zoo()[1] if descriptor.full_name.startswith("zoo.") else {}


def schema_for(descriptor: Descriptor, dialect: Any, direction: Any, **kw: Any) -> dict[str, Any]:
    kw.setdefault("limits", ROOMY)
    return message_schema(
        descriptor,
        dialect=dialect,
        direction=direction,
        comments=comments_for(descriptor),
        **kw,
    )


def variants_for(root: Descriptor) -> list[tuple[Any, Any]]:
    """Struct and ListValue are not objects in proto3 JSON, so strict mode cannot be their root."""
    if root.full_name in ("google.protobuf.Struct", "google.protobuf.ListValue"):
        return [v for v in VARIANTS if v[0] == "jsonschema"]
    return VARIANTS


def _golden_doc(roots: list[Descriptor]) -> dict[str, Any]:
    return {
        root.full_name: {
            f"{dialect}/{direction}": schema_for(root, dialect, direction)
            for dialect, direction in variants_for(root)
        }
        for root in roots
    }


@pytest.mark.parametrize("name", sorted(targets()))
def test_golden(name: str) -> None:
    """Output changes show up as a reviewed diff; UPDATE_GOLDEN=1 rewrites the files."""
    text = json.dumps(_golden_doc(targets()[name]), indent=1, sort_keys=False) + "\n"
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 and review it"
    assert path.read_text() == text, f"{path} is stale: rerun with UPDATE_GOLDEN=1 and review"


@pytest.mark.parametrize("name", sorted(targets()))
def test_every_schema_is_valid_draft_2020_12(name: str) -> None:
    for root in targets()[name]:
        for dialect, direction in variants_for(root):
            for bounds in (None, Bounds(max_string_length=40, max_items=4, max_recursion_depth=2)):
                schema = schema_for(root, dialect, direction, bounds=bounds)
                jsonschema.Draft202012Validator.check_schema(schema)
                if dialect == "openai":
                    _assert_strict_shape(schema, root.full_name)


_FORBIDDEN_STRICT = {"allOf", "not", "if", "then", "else", "oneOf", "dependentSchemas"}


def _assert_strict_shape(schema: dict[str, Any], where: str) -> None:
    assert schema["type"] == "object", where

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            assert not _FORBIDDEN_STRICT & node.keys(), (where, node)
            kinds = node.get("type")
            if kinds == "object" or (isinstance(kinds, list) and "object" in kinds):
                assert node.get("additionalProperties") is False, (where, node)
                assert sorted(node["required"]) == sorted(node["properties"]), (where, node)
            if "$ref" in node:
                assert set(node) == {"$ref"}, (where, node)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)


def test_input_schema_drops_output_only_and_deprecated_and_requires_required() -> None:
    animal = zoo_message("Animal")
    schema = message_schema(animal, direction="input")
    assert "id" not in schema["properties"]
    assert "legacyName" not in schema["properties"]
    assert set(schema["required"]) == {"name", "born"}
    output = message_schema(animal, direction="output")
    assert {"id", "legacyName"} <= output["properties"].keys()
    assert "required" not in output
    # json_name is what MessageToDict writes.
    assert "customJsonName" in schema["properties"]


def test_oneof_jsonschema_rejects_two_members() -> None:
    schema = message_schema(zoo_message("Animal"))
    validator = jsonschema.Draft202012Validator(schema)
    base = {"name": "x", "born": "2024-01-01T00:00:00Z"}
    assert validator.is_valid({**base, "meatGrams": "5"})
    assert not validator.is_valid({**base, "meatGrams": "5", "plants": "grass"})
    assert validator.is_valid({**base, "plants": "grass", "enclosure": "A"})  # other oneof


def test_from_strict_rejects_two_oneof_members_naming_the_field() -> None:
    animal = zoo_message("Animal")
    with pytest.raises(StrictDecodeError, match=r"Animal\.plants.*oneof 'diet'"):
        from_strict({"meatGrams": "5", "plants": "grass"}, animal)
    assert from_strict({"meatGrams": None, "plants": "grass"}, animal) == {"plants": "grass"}


def test_from_strict_maps_keys_json_strings_and_duplicates() -> None:
    maps = zoo_message("Maps")
    instance = {
        "byInt32": [{"key": 1, "value": "7"}],
        "byBool": [{"key": True, "value": {"name": "a", "born": "2024-01-01T00:00:00Z"}}],
        "byValue": [{"key": "k", "value": '{"a": [1, null]}'}],
        "byString": None,
    }
    decoded = from_strict(instance, maps)
    assert decoded["byInt32"] == {"1": "7"}
    assert decoded["byBool"]["true"]["name"] == "a"
    assert decoded["byValue"] == {"k": {"a": [1, None]}}
    json_format.ParseDict(decoded, message_factory.GetMessageClass(maps)())
    with pytest.raises(StrictDecodeError, match="duplicate map key '1'"):
        from_strict({"byInt32": [{"key": 1, "value": 1}, {"key": 1, "value": 2}]}, maps)
    with pytest.raises(StrictDecodeError, match="not valid JSON"):
        from_strict({"byValue": [{"key": "k", "value": "{"}]}, maps)


def test_strict_limits_error_names_message_limit_and_value() -> None:
    with pytest.raises(SchemaLimitError) as info:
        message_schema(
            descriptor_pb2.FileDescriptorSet.DESCRIPTOR,
            dialect="openai",
            limits=StrictLimits(max_properties=10),
        )
    error = info.value
    assert (error.message_name, error.limit, error.allowed) == (
        "google.protobuf.FileDescriptorSet",
        "max_properties",
        10,
    )
    assert error.actual > 10 and "max_properties=10" in str(error)
    with pytest.raises(SchemaLimitError, match="max_depth=1"):
        message_schema(zoo_message("Visit"), dialect="openai", limits=StrictLimits(max_depth=1))
    with pytest.raises(SchemaLimitError, match="max_enum_values"):
        message_schema(
            zoo_message("Scalars"), dialect="openai", limits=StrictLimits(max_enum_values=2)
        )
    # The jsonschema dialect is not judged by strict limits.
    message_schema(zoo_message("Visit"), limits=StrictLimits(max_depth=1))


def test_default_limits_accept_the_examples() -> None:
    for module in (ledger_pb2, calculator_pb2, agent_pb2):
        for root in _file_messages(module):
            for direction in ("input", "output"):
                message_schema(root, dialect="openai", direction=direction)


def test_openai_root_must_be_an_object() -> None:
    with pytest.raises(SchemaLimitError, match="root_type_object"):
        message_schema(struct_pb2.Value.DESCRIPTOR, dialect="openai")


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.mark.parametrize("dialect", ["jsonschema", "openai"])
def test_bounds_cap_strings_arrays_and_recursion(dialect: Any) -> None:
    bounds = Bounds(max_string_length=30, max_items=3, max_recursion_depth=2)
    schema = message_schema(zoo_message("Animal"), dialect=dialect, bounds=bounds)
    for node in _walk(schema):
        kinds = node.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if "string" in kinds and "pattern" not in node and "enum" not in node:
            assert node.get("maxLength") == 30, node
        if "array" in kinds:
            assert node.get("maxItems") == 3, node
        assert node.get("$ref") != "#"
    assert not any("Animal" in key for key in schema.get("$defs", {}))
    # Level 1 is the root, level 2 its parent; the grandparent field is cut.
    parent = schema["properties"]["parent"]
    parent = next(s for s in parent.get("anyOf", [parent]) if s.get("type") != "null")
    assert "properties" in parent and "parent" not in parent["properties"]
    validator = jsonschema.Draft202012Validator(schema)
    base = {"name": "x", "born": "2024-01-01T00:00:00Z"}
    if dialect == "jsonschema":
        assert validator.is_valid({**base, "parent": base})
        assert not validator.is_valid({**base, "parent": {**base, "parent": base}})
        assert not validator.is_valid({**base, "nickname": "x" * 31})


def test_unbounded_recursion_uses_refs() -> None:
    schema = message_schema(zoo_message("Animal"))
    assert schema["properties"]["parent"] == {"$ref": "#"}
    tag = schema["$defs"]["zoo.v1.Animal.Tag"]
    assert tag["properties"]["next"] == {"$ref": "#/$defs/zoo.v1.Animal.Tag"}


def test_scalar_forms() -> None:
    schema = message_schema(zoo_message("Scalars"))
    validator = jsonschema.Draft202012Validator(schema)
    good = {
        "fInt64": "-9223372036854775808",
        "fUint64": 18446744073709551615,
        "fFloat": "NaN",
        "fDouble": "-Infinity",
        "fBytes": "_-8=",
        "fEnum": 2,
        "fInt32": -2147483648,
    }
    assert validator.is_valid(good)
    json_format.ParseDict(good, message_factory.GetMessageClass(zoo_message("Scalars"))())
    for bad in (
        {"fInt64": "9223372036854775808"},
        {"fUint64": "-1"},
        {"fInt32": 2147483648},
        {"fFloat": 3.5e38},
        {"fBytes": "abcde"},
        {"fEnum": "LOUD"},
        {"fInt64": "01"},
        {"fBool": "true"},
        {"unknown": 1},
        {"f_int32": 1},  # proto names are not listed: the schema speaks json_name only
    ):
        assert not validator.is_valid(bad), bad


def test_proto2_required_defaults_and_closed_enum() -> None:
    legacy = zoo_message("Legacy")
    schema = message_schema(legacy)
    props = schema["properties"]
    assert schema["required"] == ["code"]
    assert props["count"]["default"] == 7
    assert props["big"]["default"] == "-9000000000"
    assert props["size"]["default"] == "SIZE_LARGE"
    assert props["blob"]["default"] == "AQI="
    assert props["ratio"]["default"] == "Infinity"
    assert props["nanFloat"]["default"] == "NaN"
    assert props["size"]["anyOf"][1] == {"type": "integer", "enum": [1, 2]}
    strict = message_schema(legacy, dialect="openai")
    assert strict["properties"]["code"] == {"type": "string"}  # required: not nullable
    assert "Default: 7." in strict["properties"]["count"]["description"]


def test_comments_become_descriptions() -> None:
    comments = zoo()[1]
    assert comments["zoo.v1.Animal"].startswith("An animal in the zoo")
    assert comments["zoo.v1.Animal.name"] == "Display name."
    assert comments["zoo.v1.Animal.Tag"] == "A nested message."
    assert comments["zoo.v1.Loudness.LOUDNESS_LOUD"] == "Wakes the keeper."
    assert comments["zoo.v1.Animal.meat_grams"] == "Grams of meat a day."
    schema = message_schema(zoo_message("Animal"), comments=comments)
    assert schema["description"].startswith("An animal in the zoo")
    assert schema["properties"]["name"]["description"] == "Display name."
    loud = schema["properties"]["loudness"]["description"]
    assert "LOUDNESS_UNSPECIFIED (0) is the default" in loud
    assert "LOUDNESS_LOUD: Wakes the keeper." in loud
    assert "oneof 'diet'" in schema["properties"]["plants"]["description"]


def test_comments_of_services_and_no_source_info() -> None:
    plain = descriptor_pb2.FileDescriptorProto()
    ledger_pb2.DESCRIPTOR.CopyToProto(plain)
    assert comments_from_files([plain]) == {}
    plain.source_code_info.location.add(path=[6, 0], leading_comments=" Svc.\n")
    plain.source_code_info.location.add(path=[6, 0, 2, 1], trailing_comments=" Method.\n")
    plain.source_code_info.location.add(path=[5, 0, 2, 1], leading_comments=" Rent.\n")
    found = comments_from_files([plain])
    assert found == {
        "examples.ledger.v1.LedgerService": "Svc.",
        "examples.ledger.v1.LedgerService.SummarizeTransactions": "Method.",
        "examples.ledger.v1.Category.CATEGORY_RENT": "Rent.",
    }


# --- the patterns agree with what ParseDict accepts --------------------------------------------

_RANGES = [(-(2**31), 2**31 - 1), (0, 2**32 - 1), (-(2**63), 2**63 - 1), (0, 2**64 - 1)]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(_RANGES), st.data())
def test_int_pattern_matches_exactly_the_range(bounds: tuple[int, int], data: Any) -> None:
    low, high = bounds
    pattern = re.compile(_int_pattern(low, high))
    near = st.sampled_from([low, high, low - 1, high + 1, 0, -1, 10 * high])
    value = data.draw(st.integers(low - 10, high + 10) | near)
    assert bool(pattern.match(str(value))) == (low <= value <= high)
    text = data.draw(st.from_regex(pattern, fullmatch=True))
    assert low <= int(text) <= high and str(int(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.from_regex(BYTES_PATTERN, fullmatch=True))
def test_bytes_pattern_parses(text: str) -> None:
    json_format.ParseDict(text, wrappers_pb2.BytesValue())  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(st.from_regex(DURATION_PATTERN, fullmatch=True))
def test_duration_pattern_parses(text: str) -> None:
    json_format.ParseDict(text, duration_pb2.Duration())  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(st.from_regex(TIMESTAMP_PATTERN, fullmatch=True))
def test_timestamp_pattern_parses(text: str) -> None:
    # Known gap: an offset can move 0001-01-01 or 9999-12-31 out of Timestamp's range.
    if text[:10] in ("0001-01-01", "9999-12-31") and not text.endswith("Z"):
        return
    json_format.ParseDict(text, timestamp_pb2.Timestamp())  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(st.from_regex(FIELD_MASK_PATTERN, fullmatch=True))
def test_field_mask_pattern_parses(text: str) -> None:
    json_format.ParseDict(text, field_mask_pb2.FieldMask())  # type: ignore[arg-type]
