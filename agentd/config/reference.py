"""docs/config.md, written from the models: every key with its type, default, environment
variable and description. ``python -m agentd.config --reference`` prints it; ``make
config-docs`` writes it and ``make config-docs-check`` fails when it is stale."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any

from agentd.config.load import ENV_SECTIONS
from agentd.config.models import EMBEDDED_LIMITS, EMBEDDED_LLM, ROLES, Config, ModelConfig

HEADER = """\
# Config reference

<!-- Generated from agentd/config/models.py by `make config-docs`; do not edit by hand. -->

One TOML file (see the commented `examples/agentd.toml`), checked when agentd starts and by
`agentd config check FILE`: an unknown key, a value of the wrong type (`"5"` is not an integer,
`"yes"` not a boolean) or out of bounds is an error naming the file and the key. Any key of the
single-table sections can be overridden by `AGENTD_<SECTION>_<KEY>`, its value read as TOML
(else as a bare string): `AGENTD_LIMITS_MAX_STEPS=6`, `AGENTD_LLM_PLANNER_MODEL=o4-mini`,
`AGENTD_SERVER_AUTH_CERT_ROLES_OPS='["admin"]'`. `[[upstreams]]`, `[pricing]` and
`[prompts]` are read from the file only.
"""


def reference() -> str:
    """The whole of docs/config.md."""
    parts = [HEADER]
    hints = typing.get_type_hints(Config, include_extras=True)
    for f in dataclasses.fields(Config):
        if f.name == "source":
            continue
        if f.name == "models":
            parts.append(_table("[llm]", ModelConfig, "llm"))
            parts.append(
                f"`[llm.{']`, `[llm.'.join(ROLES)}]`: the same keys, for that role only (they"
                " override `[llm]`; `AGENTD_LLM_<ROLE>_<KEY>`). A role on the embedded model"
                " (no `base_url`) defaults to "
                + ", ".join(f"`{k} = {v:g}`" for k, v in EMBEDDED_LLM.items())
                + ".\n"
            )
        elif f.name == "upstreams":
            parts.append(_table("[[upstreams]]", _item(hints[f.name]), "upstreams[]"))
        elif f.name == "pricing":
            parts.append(_table('[pricing."MODEL"]', _item(hints[f.name]), 'pricing."MODEL"'))
        elif f.name == "limits":
            parts.append(_table("[limits]", hints[f.name], "limits"))
            measured = ", ".join(f"`{k} = {v:g}`" for k, v in EMBEDDED_LIMITS.items())
            parts.append(
                "When the planner runs on the embedded model (no `base_url`), the keys that the"
                " file and the environment leave unset take the values the bundled models were"
                f" measured with instead: {measured}.\n"
            )
        elif f.name == "prompts":
            parts.append(f'## [prompts]\n\n{_doc(f)}: `NAME = "file.txt"`.\n')
        else:
            parts.append(_table(f"[{f.name}]", hints[f.name], f.name))
    return "\n".join(parts)


def _table(title: str, cls: Any, prefix: str) -> str:
    rows = "\n".join(_rows(cls, prefix))
    head = "| key | type | default | environment | description |\n| --- | --- | --- | --- | --- |"
    return f"## {title}\n\n{head}\n{rows}\n"


def _rows(cls: Any, prefix: str) -> Iterator[str]:
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        key, hint = f"{prefix}.{f.name}", hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from _rows(hint, key)
            continue
        env = "—"
        if prefix.split(".")[0] in ENV_SECTIONS:
            env = "AGENTD_" + key.replace(".", "_").upper()
            if typing.get_origin(_bare(hint)) is Mapping:
                env += "_<NAME>"
            env = f"`{env}`"
        cells = [f"`{key}`", _type(hint), _default(f), env, _doc(f)]
        yield "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _doc(f: dataclasses.Field[Any]) -> str:
    info = f.default  # pydantic keeps the Field(...) here
    return str(getattr(info, "description", None) or "")


def _default(f: dataclasses.Field[Any]) -> str:
    info = f.default
    factory = getattr(info, "default_factory", None)
    value = factory() if factory else getattr(info, "default", info)
    if value is None:
        return "unset"
    if type(value).__name__ == "PydanticUndefinedType":
        return "required"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _bare(hint: Any) -> Any:
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return hint


def _item(hint: Any) -> Any:
    """The item type of ``tuple[X, ...]`` or ``Mapping[str, X]``."""
    return typing.get_args(_bare(hint))[-1 if typing.get_origin(_bare(hint)) is Mapping else 0]


def _bounds(hint: Any) -> str:
    """`≥ 0`, `> 0`: the bounds an Annotated hint carries (directly or in a Field)."""
    if typing.get_origin(hint) is not typing.Annotated:
        return ""
    found = []
    for meta in typing.get_args(hint)[1:]:
        for item in [meta, *getattr(meta, "metadata", [])]:
            if getattr(item, "ge", None) is not None:
                found.append(f"≥ {item.ge}")
            if getattr(item, "gt", None) is not None:
                found.append(f"> {item.gt}")
    return " " + ", ".join(found) if found else ""


def _type(hint: Any) -> str:
    bare = _bare(hint)
    origin, args = typing.get_origin(bare), typing.get_args(bare)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in args if a is not type(None))
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is tuple:
        return f"list of {_type(args[0])}"
    if origin is Mapping:
        return f"table of {_type(args[-1])}"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return names.get(bare, getattr(bare, "__name__", str(bare))) + _bounds(hint)
