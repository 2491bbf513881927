"""The bound of every field of every request AgentService takes, and the checks that read it.

One table, :data:`BOUNDS`, keyed by field path (``RunRequest.task``,
``ApproveRunRequest.decisions.arguments``); ``tests/test_request_bounds.py`` walks the proto
descriptors and fails when a request field has no row. A field out of bounds is
INVALID_ARGUMENT whose message names it (``decisions[2].reason: ...``) and quotes at most
:data:`ECHO_CHARS` characters of the value. Sizes and nesting are measured without recursion,
before anything recursive (``json_format``, ``json.loads``, jsonschema) sees the value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor, struct_pb2

from agentd.runs.errors import InvalidField, echo
from agentd.runs.service import MAX_FEEDBACK_PER_RUN
from toolgen.jsonschema_kit import resolve, subschemas

#: Nesting levels of a ``context``, an argument edit or a response schema (JSON objects and
#: arrays; the outermost object is level 1).
MAX_DEPTH = 32
#: Feedback entries one run keeps: each is bounded, so a rated run stays readable.
#: Characters of a bad value an error message quotes.
_ID = 128


@dataclass(frozen=True)
class Bound:
    """Limits of one field; ``None`` is "not applicable"."""

    reason: str
    chars: int | None = None  # length of a string, in characters
    items: int | None = None  # entries of a repeated field
    item_chars: int | None = None  # length of each entry of a repeated string
    bytes: int | None = None  # serialized size of a Struct
    depth: int | None = None  # nesting levels of a Struct or a JSON document
    minimum: int | None = None
    maximum: int | None = None

    def describe(self) -> str:
        parts = []
        if self.chars is not None:
            parts.append(f"≤ {self.chars:,} characters")
        if self.items is not None:
            parts.append(f"≤ {self.items:,} entries")
        if self.item_chars is not None:
            parts.append(f"each ≤ {self.item_chars:,} characters")
        if self.bytes is not None:
            parts.append(f"≤ {self.bytes:,} bytes")
        if self.depth is not None:
            parts.append(f"≤ {self.depth} levels deep")
        if self.minimum is not None or self.maximum is not None:
            parts.append(
                f"{self.minimum if self.minimum is not None else '…'} to "
                f"{self.maximum if self.maximum is not None else '…'}"
            )
        return ", ".join(parts) or "-"


_LIMIT = "at least 0; above the server's limit it is capped to it"

BOUNDS: dict[str, Bound] = {
    # RunRequest
    "RunRequest.task": Bound("the prompt's size", chars=32_000),
    "RunRequest.context": Bound(
        "goes into prompts and the stored record", bytes=256 * 1024, depth=MAX_DEPTH
    ),
    "RunRequest.response_schema": Bound(
        "JSON Schema text; only local '#/$defs/NAME' refs, no cycles, RE2 patterns "
        "(≤ 1,000 characters each)",
        chars=64_000,
        depth=2 * MAX_DEPTH,  # JSON levels: a schema level is two (properties, then a name)
    ),
    "RunRequest.tools": Bound("names or shell patterns", items=256, item_chars=256),
    "RunRequest.limits.max_steps": Bound(_LIMIT, minimum=0),
    "RunRequest.limits.max_replans": Bound(_LIMIT, minimum=0),
    "RunRequest.limits.max_model_calls": Bound(_LIMIT, minimum=0),
    "RunRequest.limits.max_tokens": Bound(_LIMIT, minimum=0),
    "RunRequest.conversation_id": Bound("an id, stored and indexed", chars=256),
    "RunRequest.user_id": Bound("an id, stored and indexed", chars=256),
    "RunRequest.mode": Bound("a LoopMode value"),
    # GetRunRequest, SubmitFeedbackRequest, ApproveRunRequest
    "GetRunRequest.run_id": Bound("an id from RunResponse.run_id; required", chars=_ID),
    "SubmitFeedbackRequest.run_id": Bound("an id from RunResponse.run_id; required", chars=_ID),
    "SubmitFeedbackRequest.rating": Bound(
        "-1, +1 (thumbs) or 1 to 5 (stars)", minimum=-1, maximum=5
    ),
    "SubmitFeedbackRequest.comment": Bound("stored with the run", chars=10_000),
    "SubmitFeedbackRequest.labels": Bound(
        f"stored with the run; a run keeps ≤ {MAX_FEEDBACK_PER_RUN} feedback entries",
        items=32,
        item_chars=64,
    ),
    "ApproveRunRequest.run_id": Bound("an id from RunResponse.run_id; required", chars=_ID),
    "ApproveRunRequest.request_id": Bound("a client-chosen id (a UUID)", chars=_ID),
    "ApproveRunRequest.decisions": Bound("one per pending call", items=64),
    "ApproveRunRequest.decisions.step_id": Bound("a plan step id", chars=64),
    "ApproveRunRequest.decisions.approve": Bound("a boolean"),
    "ApproveRunRequest.decisions.arguments": Bound(
        "checked against the tool's input schema", bytes=256 * 1024, depth=MAX_DEPTH
    ),
    "ApproveRunRequest.decisions.reason": Bound("shown to the model", chars=2_000),
    # WatchRunRequest
    "WatchRunRequest.run_id": Bound("an id from RunResponse.run_id; required", chars=_ID),
    "WatchRunRequest.after": Bound("a RunEvent.sequence; 0: from the first event", minimum=0),
    # ListRunsRequest (ListToolsRequest has no fields)
    "ListRunsRequest.with_feedback": Bound("a boolean; this or status"),
    "ListRunsRequest.limit": Bound("0 means 1,000", minimum=0, maximum=1_000),
    "ListRunsRequest.status": Bound("a RunStatus value; this or with_feedback"),
    "ListRunsRequest.page_token": Bound(
        "ListRunsResponse.next_page_token as received (a run id)", chars=_ID
    ),
}

_LEAVES = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}


def field_paths(message: descriptor.Descriptor, prefix: str = "") -> Iterator[str]:
    """``Message.field`` for every field of ``message``, nested messages entered (a Struct is
    one field: its size and depth are its bounds)."""
    prefix = prefix or message.name
    for field in message.fields:
        path = f"{prefix}.{field.name}"
        kind = field.message_type
        if kind is not None and kind.full_name not in _LEAVES:
            yield from field_paths(kind, path)
        else:
            yield path


class BadField(InvalidField):
    """A field out of its bound; the message names it."""


def text(path: str, value: str, name: str | None = None) -> None:
    """``value`` of field ``path`` (named ``name`` in the message) within its length."""
    bound = BOUNDS[path]
    assert bound.chars is not None
    if len(value) > bound.chars:
        raise BadField(
            f"{name or path.rsplit('.', 1)[1]}: {len(value):,} characters; "
            f"the limit is {bound.chars:,}"
        )


def strings(path: str, values: Any, name: str | None = None) -> None:
    """A repeated string field within its count and each entry within its length."""
    bound = BOUNDS[path]
    name = name or path.rsplit(".", 1)[1]
    if bound.items is not None and len(values) > bound.items:
        raise BadField(f"{name}: {len(values):,} entries; the limit is {bound.items:,}")
    for i, value in enumerate(values):
        if bound.item_chars is not None and len(value) > bound.item_chars:
            raise BadField(
                f"{name}[{i}]: {len(value):,} characters; the limit is {bound.item_chars:,}"
            )


def count(path: str, values: Any, name: str | None = None) -> None:
    bound = BOUNDS[path]
    assert bound.items is not None
    if len(values) > bound.items:
        name = name or path.rsplit(".", 1)[1]
        raise BadField(f"{name}: {len(values):,} entries; the limit is {bound.items:,}")


def struct(path: str, value: struct_pb2.Struct, name: str | None = None) -> None:
    """A Struct within its serialized size and nesting depth (measured iteratively)."""
    bound = BOUNDS[path]
    name = name or path.rsplit(".", 1)[1]
    size = value.ByteSize()
    if bound.bytes is not None and size > bound.bytes:
        raise BadField(f"{name}: {size:,} bytes; the limit is {bound.bytes:,}")
    if bound.depth is not None:
        depth = struct_depth(value, bound.depth)
        if depth > bound.depth:
            raise BadField(f"{name}: nested {depth} levels deep; the limit is {bound.depth}")


def struct_depth(value: struct_pb2.Struct, stop: int) -> int:
    """Nesting levels of ``value`` (1 for a flat object), or the first level past ``stop``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > stop:
            return deepest
        children = node.fields.values() if isinstance(node, struct_pb2.Struct) else node.values
        for child in children:
            kind = child.WhichOneof("kind")
            if kind == "struct_value":
                stack.append((child.struct_value, level + 1))
            elif kind == "list_value":
                stack.append((child.list_value, level + 1))
    return deepest


def json_depth(source: str, stop: int) -> int:
    """Nesting levels of the JSON text ``source`` (objects and arrays), without parsing it, or
    the first level past ``stop``: so that a deep document never reaches a recursive parser."""
    depth = deepest = 0
    in_string = escaped = False
    for char in source:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def check_int(path: str, value: int, name: str | None = None) -> None:
    bound = BOUNDS[path]
    name = name or path.rsplit(".", 1)[1]
    if bound.minimum is not None and value < bound.minimum:
        raise BadField(f"{name}: {value} is below the minimum {bound.minimum}")
    if bound.maximum is not None and value > bound.maximum:
        raise BadField(f"{name}: {value} is above the maximum {bound.maximum}")


def run_id(path: str, value: str) -> None:
    """A required run id within its length (never echoed when too long)."""
    if not value:
        raise BadField("run_id: required")
    text(path, value)


def table() -> str:
    """The bounds as a Markdown table."""
    rows = ["| field | bound | why |", "| --- | --- | --- |"]
    rows += [f"| `{path}` | {b.describe()} | {b.reason} |" for path, b in BOUNDS.items()]
    return "\n".join(rows)


def reference() -> str:
    """docs/request-bounds.md: the table with a header saying where it comes from."""
    return (
        "# Request bounds\n\n"
        "Every field of every request of `agentd.v1.AgentService`, its bound and why. Generated"
        " from\n`agentd/api/bounds.py` (`tests/test_request_bounds.py` fails when this file is"
        " stale; rewrite it\nwith `python -c 'from agentd.api import bounds;"
        ' print(bounds.reference(), end="")\' > docs/request-bounds.md`).\n\n'
        f"{table()}\n"
    )


# --- RunRequest.response_schema ---------------------------------------------------------------

# Keywords that change how references resolve, or resolve by name at run time: the schema is
# embedded in bigger documents (the answer's), where only '#/$defs/NAME' keeps its meaning.
_REFUSED = ("$id", "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor")
_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_DEFS = "#/$defs/"


def response_schema(source: str) -> dict[str, Any]:
    """The caller's response schema, parsed and checked: size and depth before parsing, then
    only local ``#/$defs/NAME`` references that resolve, without cycles (a constrained decoder
    cannot hold an unbounded recursion, and a reference to ``#`` cannot be embedded), patterns
    RE2 runs in linear time, and a valid Draft 2020-12 schema. Raises BadField."""
    import json

    import jsonschema

    from toolgen.validation import pattern_problem

    path = "RunRequest.response_schema"
    text(path, source)
    most = BOUNDS[path].depth or 0
    depth = json_depth(source, most)
    if depth > most:
        raise BadField(f"response_schema: JSON nested {depth} levels deep; the limit is {most}")
    try:
        schema = json.loads(source)
    except ValueError as exc:
        raise BadField(f"response_schema: not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(schema, dict):
        raise BadField("response_schema: must be a JSON object (a JSON Schema)")
    if schema.get("$schema", _DRAFT).rstrip("#") != _DRAFT:
        raise BadField(f"response_schema: $schema {echo(str(schema['$schema']))}: only {_DRAFT}")
    refs: list[tuple[tuple[str, ...], tuple[str, ...]]] = []  # (where, target)
    patterns_by_key = unevaluated = ""
    stack: list[tuple[Any, tuple[str, ...]]] = [(schema, ())]
    while stack:
        node, where = stack.pop()
        if not isinstance(node, dict):
            continue
        at = "/" + "/".join(where)
        for keyword in _REFUSED:
            if keyword in node:
                raise BadField(
                    f"response_schema: {keyword} at {at}: not supported; refer to shared parts "
                    "with $ref '#/$defs/NAME'"
                )
        if "$ref" in node:
            refs.append((where, _target(schema, node["$ref"], at)))
        if "pattern" in node:
            problem = pattern_problem(node["pattern"])
            if problem:
                raise BadField(f"response_schema: pattern at {at}/pattern: {problem}")
        if isinstance(node.get("patternProperties"), dict):
            patterns_by_key = patterns_by_key or at
            for key in node["patternProperties"]:
                problem = pattern_problem(key)
                if problem:
                    raise BadField(
                        f"response_schema: patternProperties at {at}/patternProperties "
                        f"key {echo(key)}: {problem}"
                    )
        if "unevaluatedProperties" in node:
            unevaluated = unevaluated or at
        stack += [(sub, (*where, *segments)) for sub, segments in subschemas(node)]
    if patterns_by_key and unevaluated:
        raise BadField(
            f"response_schema: unevaluatedProperties at {unevaluated} with patternProperties "
            f"(at {patterns_by_key}): not supported together; use additionalProperties"
        )
    _acyclic(refs)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        at = "/".join(str(p) for p in exc.absolute_path)
        raise BadField(
            f"response_schema: invalid JSON Schema at /{at}: {exc.message[:300]}"
        ) from None
    return schema


def _target(schema: dict[str, Any], ref: Any, at: str) -> tuple[str, ...]:
    """The pointer segments of a local ``#/$defs/...`` reference, checked to resolve."""
    from urllib.parse import unquote

    if not isinstance(ref, str):
        raise BadField(f"response_schema: $ref at {at}: must be a string")
    if ref == "#":
        raise BadField(
            f"response_schema: $ref '#' at {at} refers to the whole schema (a recursive "
            "schema); refer to a part under $defs instead"
        )
    if not ref.startswith(_DEFS):
        raise BadField(
            f"response_schema: $ref {echo(ref)} at {at}: only local references "
            "'#/$defs/NAME' are supported (nothing is ever fetched)"
        )
    node = resolve(schema, ref)
    if node is None:
        raise BadField(f"response_schema: $ref {echo(ref)} at {at}: resolves to nothing")
    if not isinstance(node, dict | bool):
        raise BadField(f"response_schema: $ref {echo(ref)} at {at}: not a schema")
    return tuple(unquote(s).replace("~1", "/").replace("~0", "~") for s in ref[2:].split("/"))


def _acyclic(refs: list[tuple[tuple[str, ...], tuple[str, ...]]]) -> None:
    """Refuses references that lead back to themselves (a recursive schema)."""

    def inside(where: tuple[str, ...], target: tuple[str, ...]) -> bool:
        return where[: len(target)] == target

    targets = {target for _, target in refs}
    # From a target, the targets of the references written inside it.
    edges = {t: {u for where, u in refs if inside(where, t)} for t in targets}
    done: set[tuple[str, ...]] = set()
    for start in targets:
        if start in done:
            continue
        # Iterative depth-first search; a target met again on the current path is a cycle.
        path: list[tuple[str, ...]] = [start]
        on_path = {start}
        pending = [iter(sorted(edges[start]))]
        while pending:
            following = next(pending[-1], None)
            if following is None:
                finished = path.pop()
                done.add(finished)
                on_path.discard(finished)
                pending.pop()
                continue
            if following in on_path:
                raise BadField(
                    "response_schema: $ref '#/"
                    + "/".join(following)
                    + "' is recursive (refers back to itself); a schema the answer is "
                    "decoded under must be finite"
                )
            if following not in done:
                path.append(following)
                on_path.add(following)
                pending.append(iter(sorted(edges[following])))
