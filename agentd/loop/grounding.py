"""Arguments a plan may not make up: filters the task never asked for, ids from nowhere.

A grammar lets a model fill every field, and a small model fills many. The evaluations of
2026-12-07 traced most wrong multi-step answers, on all three example services, to a first call
that asked something else than the task: ``includeIncome: true`` for "spend on travel",
``priority: PRIORITY_NORMAL`` for "how many tickets did cus_005 file", ``personId: emp_007``
guessed for "Ana". A replan over that call's result repeats the mistake, so plans are checked
against the task before anything runs:

- ``drop_unasked``, on read-only calls: an optional enum filter or a bool set to true whose
  words the task does not contain, a size limit (``limit``, ``pageSize``, ``topN``) whose
  number it does not contain, and an optional id filter the run does not know ("dept_sales"
  for "who knows Python") are dropped; each takes its default (all values, false, the
  method's page). Only the argument's own words count (``includeIncome`` is asked for by
  "income", ``TICKET_STATUS_IN_PROGRESS`` by "progress"), not its description, which shares
  words with most tasks. Enums that shape a result rather than filter it (``groupBy``,
  ``orderBy``, ``view``) stay, and so do side-effect calls' arguments: they are the action.
- ``invented_ids``: any other id argument (``id``, ``...Id``, ``..._id``) whose value appears
  nowhere in the task, its context, the conversation or an earlier result is an error the
  planner must fix, by looking the id up with a tool first and referring to that result.
- ``unasked_side_effects``: a call with side effects standing in for a destruction the task
  asks for (a time-off request for "terminate"), or in the plan of a question that does not
  name its action (a title update for "what is Oskar's salary?"), is an error the planner
  must fix: to refuse, or to read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from agentd.loop.describe import deref
from agentd.loop.plan import LoopTool
from agentd.loop.references import references
from agentd.loop.shortlist import words as _terms
from agentd.loop.state import Plan

# Words that say how to ask, not what: "includeIncome" is asked for by "income" alone.
_HOW_WORDS = frozenset(["include", "only", "show", "return", "add", "use", "all", "enable", "want"])
_STEM = 5  # "incom" matches income and incomes; shorter words must match whole
# An enum named so shapes the result (AIP's order_by, view; group_by): it is not a filter.
_SHAPE = frozenset(["by", "order", "sort", "group", "view", "format", "mode", "unit", "units"])
# An integer argument named so limits how much comes back.
_LIMITS = frozenset(["limit", "size", "top", "max"])
# A task that asks for one of these is not done by a method whose name says something else.
_DESTRUCTIVE = frozenset(
    ["delete", "remove", "terminate", "erase", "purge", "destroy", "wipe", "fire", "revoke"]
)
# A task that starts so orders a destruction.
_ORDER = re.compile(rf"\s*(?:please\s+)?({'|'.join(sorted(_DESTRUCTIVE))})\b", re.IGNORECASE)
# A task that starts so is a question: it is answered by reading, unless it names the action.
# ("Can you", "could you", "will you" start requests, and are left out.)
_QUESTION = re.compile(
    r"\s*(what|who|whom|whose|which|how|when|where|why|is|are|was|were|do|does|did|has|have)\b",
    re.IGNORECASE,
)
_ID_FIELD = re.compile(r"^(id|ids|.*[a-z0-9]Ids?|.*_ids?)$")


def words(text: str) -> set[str]:
    """The shortlist's terms of ``text`` (identifiers split, plurals folded, stop words out)."""
    return set(_terms(text))


def _mentions(asked: set[str], said: set[str]) -> bool:
    """Whether any word of ``asked`` (three letters or more) is in ``said``, by stem."""
    for word in asked:
        if len(word) < 3:
            continue
        if len(word) >= _STEM:
            if any(w.startswith(word[:_STEM]) for w in said):
                return True
        elif word in said or f"{word}s" in said:
            return True
    return False


def drop_unasked(plan: Plan, tools: Mapping[str, LoopTool], said: str, ids: Known) -> list[str]:
    """Drop, in place, what ``plan``'s read-only calls filter by that ``said`` (the task and
    its context) does not name, and optional id filters ``ids`` (``said`` and the results so
    far) does not hold; returns one line per argument dropped."""
    told = words(said)
    numbers = {int(n) for n in re.findall(r"\d+", said)}
    dropped = []
    for step in plan.steps:
        tool = tools.get(step.tool)
        if tool is None or tool.side_effects != "none":
            continue
        schema = tool.input_schema
        required = set(schema.get("required") or [])
        for name, value in list(step.arguments.items()):
            if name in required or references(value):
                continue
            field = deref(schema, (schema.get("properties") or {}).get(name, {}))
            if isinstance(value, str) and _ID_FIELD.match(name) and not ids.has(value):
                kept = None  # a guessed filter ("dept_sales" for "people who know Python")
            else:
                kept = _asked(name, value, field, schema, told, numbers)
            if kept is None:
                del step.arguments[name]
            elif kept == value:
                continue
            else:
                step.arguments[name] = kept
            dropped.append(f"{step.id}: {step.tool}.{name}")  # names only: values are the model's
    return dropped


def _asked(
    name: str, value: Any, field: Any, root: Mapping[str, Any], told: set[str], numbers: set[int]
) -> Any:
    """``value`` as far as the task asks for it: itself, fewer list items, or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        # A size limit the task does not state ("limit: 1" for "do we have tickets about X?")
        # hides what the answer needs; the method's default is there for that.
        return value if not _name_parts(name) & _LIMITS or value in numbers else None
    if value is True:
        return value if _mentions(words(name) - _HOW_WORDS, told) else None
    if _SHAPE & _name_parts(name):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        values = _enum_values(deref(root, field.get("items", {})) if field else {}, root)
        if not values:
            return value
        kept = [v for v in value if _mentions(_value_words(v, values), told)]
        return kept or None
    if isinstance(value, str):
        values = _enum_values(field, root)
        if values and value in values and not _mentions(_value_words(value, values), told):
            return None
    return value


def _name_parts(name: str) -> set[str]:
    """Every lowercase word of a field name, "by" and "top" included (``words`` drops stop
    words): ``groupBy`` -> group, by; ``topN`` -> top."""
    return {w.lower() for w in re.findall(r"[A-Z]?[a-z]+", name)}


def _enum_values(field: Any, root: Mapping[str, Any]) -> list[str]:
    """The names of an enum field (an enum may arrive as names or numbers: ``anyOf``)."""
    if not isinstance(field, Mapping):
        return []
    for node in [field, *(deref(root, b) for b in field.get("anyOf", []))]:
        if isinstance(node, Mapping) and "enum" in node:
            return [str(v) for v in node["enum"] if isinstance(v, str)]
    return []


def _value_words(value: str, values: list[str]) -> set[str]:
    """The words of an enum value after its type's prefix (``TICKET_STATUS_IN_PROGRESS`` ->
    in, progress): the prefix all the enum's values share names the type, not the value."""
    parts = [v.split("_") for v in values if v]
    shared = 0
    while all(len(p) > shared + 1 and p[shared] == parts[0][shared] for p in parts):
        shared += 1
    return words(" ".join(value.split("_")[shared:]))


def unasked_side_effects(
    plan: Plan, tools: Mapping[str, LoopTool], said: str, task: str = ""
) -> list[str]:
    """Problems, one per side-effect call the task does not ask for: one standing in for a
    destruction ``said`` asks for (the task says "delete" or "terminate" and the method's name
    does not), and one in the plan of a question (``task`` asks what, who, how many, is, does...)
    whose method's verb the task does not say. A task that orders a destruction ("Delete all ...")
    no listed tool can do has one problem, whatever the plan's steps: it is to be refused.

    Seen on the example services: "terminate the employment of emp_018" planned as a time-off
    request, "delete ticket tkt_1011" as closing it, "what is Oskar's salary?" as a title
    update. Such a call would wait for an approver who never asked for it; the task is one to
    refuse or to answer by reading, in seconds. (Words cannot tell that "tell ops hello" asks
    for ``Send``: an imperative task's side effects are not checked beyond destruction.)"""
    undoing = {verb for verb in _DESTRUCTIVE if _mentions({verb}, words(said))}
    question = bool(_QUESTION.match(task))
    ordered = _ORDER.match(task)
    order = ordered.group(1).lower() if ordered else ""
    able = any(_mentions({order}, words(t.method)) for t in tools.values()) if order else True
    if plan.steps and not able:
        # "Delete all transactions": no listed tool deletes, so no plan can do it.
        return [
            f"the task asks to {order}, and no listed tool can {order}: give no steps and "
            "answer that you cannot"
        ]
    problems = []
    for step in plan.steps:
        tool = tools.get(step.tool)
        if tool is None or tool.side_effects == "none":
            continue
        verb = _verb(tool.method)
        if undoing and not _mentions(undoing, words(tool.method)):
            problems.append(
                f"step {step.id!r}: the task asks to {' or '.join(sorted(undoing))}, which "
                f"{step.tool} does not do; when no listed tool does what the task asks, give "
                "no steps and answer that you cannot"
            )
        elif question and not undoing and not _mentions({verb}, words(task)):
            problems.append(
                f"step {step.id!r}: the task asks a question and does not ask to {verb}, but "
                f"{step.tool} changes data; plan only calls that read, or, when no listed tool "
                "gives the answer, give no steps and answer that you cannot"
            )
    return problems


def _verb(method: str) -> str:
    """The verb a method's name starts with: ``.../UpdateTitle`` -> "update"."""
    found = re.match(r"[A-Z]?[a-z]+", method.rsplit("/", 1)[-1])
    return found.group(0).lower() if found else method.lower()


def invented_ids(plan: Plan, ids: Known) -> list[str]:
    """Problems, one per id argument of ``plan`` that ``ids`` (the task, its context, the
    conversation and the results so far) does not hold, phrased for the planner."""
    return [
        f"step {step.id!r}: {p}" for step in plan.steps for p in unknown_ids(step.arguments, ids)
    ]


def unknown_ids(arguments: Any, ids: Known) -> list[str]:
    """One problem per id in ``arguments`` that ``ids`` does not hold: the planner's plans and
    the executor's filled-in arguments are checked alike."""
    return [
        f"{path} {value!r} is in neither the task nor a result; do not guess ids: find it with "
        "a tool first (a search or list by name) and refer to that step's result"
        for path, value in _id_values(arguments, "arguments")
        if not ids.has(value)
    ]


class Known:
    """What a run knows (its task, context, conversation and results), to look ids up in."""

    def __init__(self, text: str) -> None:
        self.text = text.lower()
        self.letters = set(re.findall(r"[a-z]+", self.text))
        self.numbers = {int(n) for n in re.findall(r"\d+", self.text)}

    def has(self, value: str) -> bool:
        """Whether ``value`` appears whole, or every part of it after its type prefix does: a
        number by its value ("ticket 1023" for tkt_1023), a word as the start of a known word
        ("Engineering" for dept_eng, the scheme the catalog shows); a part mixing letters and
        digits must appear whole."""
        if value.lower() in self.text:
            return True
        parts = re.findall(r"[a-z0-9]+", value.lower())
        for part in parts[1:] if len(parts) > 1 else parts:
            if part.isdigit():
                if int(part) not in self.numbers:
                    return False
            elif part.isalpha():
                if part not in self.letters and (
                    len(part) < 3 or not any(w.startswith(part) for w in self.letters)
                ):
                    return False
            else:
                return False
        return True


def _id_values(value: Any, path: str, name: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _id_values(inner, f"{path}/{key}", str(key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _id_values(inner, f"{path}/{index}", name)
    elif isinstance(value, str) and _ID_FIELD.match(name) and _literal(value):
        yield path, value


def _literal(value: str) -> bool:
    """A value written in the plan (a reference is filled from an earlier step's result)."""
    return bool(value.strip()) and not references(value)


__all__ = ["Known", "drop_unasked", "invented_ids", "unasked_side_effects", "unknown_ids"]
