"""Plan checks, references and schema embedding, without servers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentd.llm.schemas import validator
from agentd.loop.plan import (
    check_plan,
    decode_plan,
    embed,
    find_cycle,
    merge_repeats,
    plan_schema,
    without_bad_steps,
)
from agentd.loop.references import Unresolved, references, resolve
from agentd.loop.state import PlanStep, StepRecord


@dataclass
class FakeTool:
    name: str
    input_schema: dict[str, Any]
    method: str = "/pkg.S/M"
    description: str = "a tool"
    side_effects: str = "none"
    policy: str = "allow"
    model_schema: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.model_schema = self.model_schema or self.input_schema

    async def invoke(
        self, arguments: dict[str, Any], *, metadata: Any, timeout: float
    ) -> dict[str, Any]:
        return {}


NODE = {
    "$defs": {
        "Node": {
            "type": "object",
            "properties": {"child": {"$ref": "#/$defs/Node"}, "id": {"type": "string"}},
            "additionalProperties": False,
        }
    },
    "type": "object",
    "properties": {"root": {"$ref": "#/$defs/Node"}, "id": {"type": "string"}},
    "required": ["id"],
    "additionalProperties": False,
}
TOOLS = {
    "Get": FakeTool("Get", NODE),
    "Sum": FakeTool(
        "Sum",
        {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
            "additionalProperties": False,
        },
    ),
}


def step(
    id: str, tool: str, arguments: dict[str, Any], depends_on: list[str] | None = None
) -> dict[str, Any]:
    return {
        "id": id,
        "call": {"tool": tool, "arguments": arguments},
        "depends_on": depends_on or [],
    }


def test_plan_schema_allows_any_number_of_steps_up_to_the_limit() -> None:
    schema = plan_schema(TOOLS, max_steps=3)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "prefixItems" not in json.dumps(schema)  # grammar engines make it a fixed tuple
    good = {
        "rationale": "r",
        "answer": None,
        "steps": [
            step("s1", "Get", {"root": {"child": {"id": "x"}}}),
            step("s2", "Sum", {}, ["s1"]),  # partial arguments are fine
        ],
    }
    jsonschema.validate(good, schema)
    jsonschema.validate({**good, "steps": [step("s1", "Get", {"id": "x"})]}, schema)  # one step
    jsonschema.validate({**good, "steps": [], "answer": "42"}, schema)  # no step at all
    bad_cases = [
        [step("s1", "Nope", {})],  # unknown tool
        [step("s4", "Get", {"id": "x"})],  # ids are the next free ones
        [step("s1", "Get", {"id": "x"}, ["s9"])],  # depends_on names a possible step
        [step("s1", "Get", {"wrong": 1})],  # arguments follow the tool's schema
        [step(f"s{i}", "Get", {}) for i in range(1, 5)],  # more than max_steps
    ]
    for steps in bad_cases:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**good, "steps": steps}, schema)


def test_what_no_grammar_can_forbid_is_checked_after_decoding() -> None:
    plan = decode_plan(
        {
            "steps": [
                step("s1", "Get", {"id": "x"}, ["s1"]),
                step("s2", "Get", {"id": "y"}, ["s3", "s3"]),
                step("s3", "Get", {"id": "z"}, ["s2"]),
            ]
        },
        revision=0,
    )
    assert plan.steps[1].depends_on == ["s3"]  # a repeated dependency is harmless
    errors = check_plan(plan, TOOLS, [])
    assert "step 's1': depends on itself" in errors
    assert any(e.startswith("steps depend on each other in a cycle") for e in errors)


def test_plan_schema_numbers_on_after_earlier_revisions() -> None:
    schema = plan_schema(TOOLS, max_steps=2, done=["s1", "s2"])
    jsonschema.validate(
        {"rationale": "", "answer": None, "steps": [step("s3", "Get", {"id": "$s1.id"}, ["s1"])]},
        schema,
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"rationale": "", "answer": None, "steps": [step("s1", "Get", {})]}, schema
        )


def test_embed_rewrites_refs_and_moves_defs() -> None:
    defs: dict[str, Any] = {}
    body = embed(NODE, "t0_", defs)
    assert body["properties"]["root"] == {"$ref": "#/$defs/t0_Node"}
    assert defs["t0_Node"]["properties"]["child"] == {"$ref": "#/$defs/t0_Node"}
    assert "$defs" in NODE  # the original is untouched


def test_check_plan_reports_every_problem() -> None:
    plan = decode_plan(
        {
            "steps": [
                step("s1", "Get", {}),
                step("s1", "Ghost", {}, ["s9"]),
                step("s3", "Sum", {"expression": "$s1.id"}),
            ]
        },
        revision=0,
    )
    errors = "\n".join(check_plan(plan, TOOLS, []))
    assert "arguments: 'id' is a required property" in errors
    assert "id is already used" in errors
    assert "unknown tool 'Ghost'" in errors
    assert "unknown step 's9'" in errors
    assert "refers to $s1 but does not list it in depends_on" in errors


def test_ids_of_earlier_steps_cannot_be_reused_but_can_be_depended_on() -> None:
    done = [
        StepRecord("s1", "Get", "/pkg.S/M", {"id": "a"}, 0, status="succeeded", result={"id": "a"})
    ]
    plan = decode_plan(
        {
            "steps": [
                step("s1", "Get", {"id": "b"}),
                step("s2", "Sum", {"expression": "$s1.id"}, ["s1"]),
            ]
        },
        revision=1,
    )
    assert check_plan(plan, TOOLS, done) == ["step 's1': id is already used; pick a new one"]


def test_a_placeholder_in_an_answer_without_steps_goes_back() -> None:
    # Seen on the embedded model for "what is my access token?": the placeholder would have
    # reached the caller as written.
    said = {"steps": [], "answer": "Your access token is ${DirectoryService_GetPerson.token}"}
    errors = check_plan(decode_plan(said, revision=0), TOOLS, [])
    assert len(errors) == 1 and "placeholder but no step returns anything" in errors[0]
    for other in ("It is ${s1.phone}.", "It is $s1.phone.", "It is s1.phone."):  # same class
        stepless = {"steps": [], "answer": other}
        assert check_plan(decode_plan(stepless, revision=0), TOOLS, []), other
    plain = {"steps": [], "answer": "I cannot give you credentials: no listed tool does that."}
    assert check_plan(decode_plan(plain, revision=0), TOOLS, []) == []
    # After steps ran, an answer-only replan fills its references from their results.
    done = [StepRecord("s1", "Get", "/pkg.S/M", {}, 0, status="succeeded", result={"id": "a"})]
    replan = {"steps": [], "answer": "It is ${s1.id}."}
    assert check_plan(decode_plan(replan, revision=1), TOOLS, done) == []


def test_cycles_are_found() -> None:
    steps = [
        PlanStep("a", "Get", {}, ["c"]),
        PlanStep("b", "Get", {}, ["a"]),
        PlanStep("c", "Get", {}, ["b"]),
    ]
    cycle = find_cycle(steps)
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert find_cycle([PlanStep("a", "Get", {}, []), PlanStep("b", "Get", {}, ["a"])]) == []


def test_references_resolve_whole_values_and_text() -> None:
    results = {"s1": {"vendors": [{"id": "ven_001", "n": 3}]}, "s2": {"value": 4.5}}
    args = {
        "vendorId": "$s1.vendors.0.id",
        "vendor": "$s1.vendors.0",
        "expression": "${s1.vendors.0.n} ${s2.value} +",
        "price": "$100",  # not a step id: left alone
    }
    assert references(args) == {"s1", "s2"}
    assert resolve(args, results) == {
        "vendorId": "ven_001",
        "vendor": {"id": "ven_001", "n": 3},
        "expression": "3 4.5 +",
        "price": "$100",
    }
    with pytest.raises(Unresolved, match="no 'missing'"):
        resolve({"x": "$s2.missing"}, results)
    # Past a list's end the advice is not "index it" (seen: a search that found nothing).
    with pytest.raises(Unresolved, match="no item 1: the list in the result of step s1 has 1"):
        resolve({"x": "$s1.vendors.1.id"}, results)
    with pytest.raises(Unresolved, match="no item 0: the list in the result of step s3 is empty"):
        resolve({"x": "$s3.tickets[0].id"}, {"s3": {"tickets": []}})


def test_root_union_only_for_grammar_planners() -> None:
    one = {"rationale": "", "answer": None, "steps": [step("s1", "Get", {"id": "x"})]}
    empty = {"rationale": "", "answer": None, "steps": []}
    direct = {"rationale": "", "answer": "42", "steps": []}
    union = plan_schema(TOOLS, max_steps=2, allow_empty=False)
    assert "anyOf" in union and "type" not in union
    jsonschema.validate(one, union)
    jsonschema.validate(direct, union)
    with pytest.raises(jsonschema.ValidationError):  # no steps and no answer: the lazy way out
        jsonschema.validate(empty, union)
    # Steps and an answer beside them: a template over their results ("${s1.name}"), used
    # only when it refers to them (agentd.loop.template).
    jsonschema.validate({**one, "answer": "The name is ${s1.name}."}, union)
    with pytest.raises(jsonschema.ValidationError):  # an empty answer is no template
        jsonschema.validate({**one, "answer": ""}, union)
    with pytest.raises(jsonschema.ValidationError):  # a template is short
        jsonschema.validate({**one, "answer": "${s1.name} " * 30}, union)
    no_template = plan_schema(TOOLS, max_steps=2, allow_empty=False, template=False)
    with pytest.raises(jsonschema.ValidationError):  # a structured answer: null beside steps
        jsonschema.validate({**one, "answer": "${s1.name}"}, no_template)
    jsonschema.validate(empty, plan_schema(TOOLS, max_steps=2, allow_empty=True))
    flat = plan_schema(TOOLS, max_steps=2, union=False)  # an object root, as OpenAI wants
    assert flat["type"] == "object"
    for plan in (one, empty, direct):
        jsonschema.validate(plan, flat)


def test_references_as_models_write_them() -> None:
    results = {"s1": {"groups": [{"totalMinor": "-3217200"}]}}
    assert resolve("$s1.groups[0].totalMinor", results) == "-3217200"
    assert resolve("$s1.groups.0.totalMinor 100 /", results) == "-3217200 100 /"
    plan = decode_plan(
        {
            "steps": [
                step("s1", "Get", {"id": "x"}),
                step("s2", "Sum", {"expression": "s1.totalMinor 100 /"}, ["s1"]),
            ]
        },
        revision=0,
    )
    errors = check_plan(plan, TOOLS, [])
    assert errors == [
        "step 's2': 's1.totalMinor' is not a reference; write $s1.totalMinor "
        "(or ${s1.totalMinor} inside text)"
    ]


def test_a_path_past_a_single_value_is_caught_at_plan_time() -> None:
    @dataclass
    class Search(FakeTool):
        output_schema: dict[str, Any] = field(default_factory=dict)

    search = Search(
        "Search",
        {"type": "object", "properties": {}},
        output_schema={
            "type": "object",
            "properties": {
                "vendors": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                }
            },
        },
    )
    tools = {**TOOLS, "Search": search}
    plan = decode_plan(
        {
            "steps": [
                step("s1", "Search", {}),
                step("s2", "Sum", {"expression": "$s1.vendors.0.name.length"}, ["s1"]),
            ]
        },
        revision=0,
    )
    assert check_plan(plan, tools, []) == [
        "step 's2': $s1.vendors.0.name.length: 'length' follows a single value (string) "
        "in the result of Search"
    ]


def test_repeated_read_only_steps_are_made_once() -> None:
    plan = decode_plan(
        {
            "steps": [
                step("s1", "Get", {"id": "ven_001"}),
                step("s2", "Get", {"id": "ven_001"}),
                step("s3", "Sum", {"expression": "${s2.n} 1 +"}, ["s2", "s1"]),
                step("s4", "Get", {"id": "$s2.id"}, ["s2"]),
            ],
            "answer": "${s2.name} has ${s4.n}; $s2.id",
        },
        revision=0,
    )
    merged = merge_repeats(plan, TOOLS)
    assert merged.direct_answer == "${s1.name} has ${s4.n}; $s1.id"  # the template follows
    assert [s.id for s in merged.steps] == ["s1", "s3", "s4"]
    assert merged.steps[1].depends_on == ["s1"]
    assert merged.steps[1].arguments == {"expression": "${s1.n} 1 +"}
    assert merged.steps[2].arguments == {"id": "$s1.id"}
    assert check_plan(merged, TOOLS, []) == []
    # Seen on the people suite: "again to check the phone number", depending on the first.
    again = decode_plan(
        {"steps": [step("s1", "Get", {"id": "e7"}), step("s2", "Get", {"id": "e7"}, ["s1"])]},
        revision=0,
    )
    assert [s.id for s in merge_repeats(again, TOOLS).steps] == ["s1"]
    writes = {**TOOLS, "Get": FakeTool("Get", NODE, side_effects="idempotent")}
    twice = decode_plan({"steps": [step("s1", "Get", {}), step("s2", "Get", {})]}, revision=0)
    assert len(merge_repeats(twice, writes).steps) == 2  # side effects: left as written


def test_steps_named_by_errors_and_their_dependents_can_be_dropped() -> None:
    plan = decode_plan(
        {
            "steps": [
                step("s1", "Get", {"id": "x"}),
                step("s2", "Sum", {"expression": "$s1.id.length"}, ["s1"]),
                step("s3", "Get", {"id": "$s2.value"}, ["s2"]),
            ]
        },
        revision=0,
    )
    pruned = without_bad_steps(plan, ["step 's2': $s1.id.length: bad"])
    assert pruned is not None and [s.id for s in pruned.steps] == ["s1"]
    assert without_bad_steps(plan, ["steps depend on each other in a cycle: a -> a"]) is None
    assert without_bad_steps(plan, ["step 's1': bad"]) is None  # nothing would be left


# --- the validator's fast is_valid on the plan's tagged union ---------------------------------

_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["", "1 2 +", "x" * 70]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["id", "root", "expression", "child", "z"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)
_CALLS = st.fixed_dictionaries(
    {"tool": st.sampled_from(["Get", "Sum", "Other", 3])},
    optional={
        "arguments": st.one_of(
            _VALUES,
            st.fixed_dictionaries({"id": st.sampled_from(["a", 1])}, optional={"root": _VALUES}),
            st.fixed_dictionaries({"expression": st.sampled_from(["1 2 +", 5])}),
        ),
        "extra": st.just(1),
    },
)
_PLANS = st.fixed_dictionaries(
    {
        "steps": st.lists(
            st.fixed_dictionaries(
                {
                    "id": st.sampled_from(["s1", "s2", "s9"]),
                    "call": _CALLS | _VALUES,
                    "depends_on": st.lists(st.sampled_from(["s1", "s2"]), max_size=2),
                }
            ),
            max_size=3,
        ),
        "answer": st.none() | st.sampled_from(["", "done"]),
        "rationale": st.sampled_from(["", "r"]),
    }
)


# Plans that are valid, or one field off: tools late in the union, wrong or missing arguments.
_GOOD_CALLS = st.sampled_from(
    [
        {"tool": "Sum", "arguments": {"expression": "1 2 +"}},
        {"tool": "Get", "arguments": {"id": "a", "root": {"child": {}}}},
        {"tool": "T5", "arguments": {}},
        {"tool": "Sum", "arguments": {"expression": 5}},
        {"tool": "Get", "arguments": {"root": {"child": {"z": 1}}}},
        {"tool": "Sum"},
    ]
)
_NEAR_PLANS = st.builds(
    lambda calls, answer: {
        "steps": [{"id": f"s{i + 1}", "call": c, "depends_on": []} for i, c in enumerate(calls)],
        "answer": answer,
        "rationale": "r",
    },
    st.lists(_GOOD_CALLS, min_size=1, max_size=3),
    st.none() | st.just("done"),
)


@settings(max_examples=300, deadline=None)
@given(plan=_NEAR_PLANS | _PLANS)
def test_fast_is_valid_agrees_with_jsonschema_on_plans(plan: dict[str, Any]) -> None:
    """Trying only the branch a step's tool names gives jsonschema's own verdict."""
    many = {f"T{i}": FakeTool(f"T{i}", TOOLS["Sum"].input_schema) for i in range(6)}
    for tools in (TOOLS, {**many, **TOOLS}):
        schema = plan_schema(tools, max_steps=3)
        expected = jsonschema.Draft202012Validator(schema).is_valid(plan)
        assert validator(schema).is_valid(plan) == expected
        if not expected:  # and the errors are jsonschema's own
            assert list(validator(schema).iter_errors(plan))
