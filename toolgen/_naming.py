"""Tool names: readable, unique in a catalog, stable across runs, within LLM limits.

OpenAI, Anthropic and MCP clients accept ``^[a-zA-Z0-9_-]{1,64}$`` (some allow
128; 64 fits all). A name starts as ``Service_Method``; names that collide take
package parts from the right (``v1_``, then ``ledger_v1_``...) until they differ;
names still colliding or too long end in a short hash of the method's full key.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping

__all__ = ["MAX_NAME_LENGTH", "NAME_PATTERN", "assign_names", "sanitize"]

MAX_NAME_LENGTH = 64
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_INVALID = re.compile(r"[^a-zA-Z0-9_-]+")
_HASH_LENGTH = 8


def sanitize(text: str) -> str:
    """Replace every run of characters a tool name cannot hold by one ``_``."""
    return _INVALID.sub("_", text).strip("_") or "tool"


def _split(method: str) -> tuple[list[str], str, str]:
    """``pkg.sub.Service/Method`` to ``(["pkg", "sub"], "Service", "Method")``."""
    service, _, name = method.lstrip("/").partition("/")
    *package, short = service.split(".")
    return package, short, name


def _candidate(method: str, depth: int) -> str:
    package, service, name = _split(method)
    parts = [*package[len(package) - depth :], service, name] if depth else [service, name]
    return sanitize("_".join(parts))


def _hashed(method: str, key: str) -> str:
    """The fallback: the readable name cut short, then a hash of the unique key."""
    suffix = hashlib.sha256(key.encode()).hexdigest()[:_HASH_LENGTH]
    _package, service, name = _split(method)
    head = sanitize(f"{service}_{name}")[: MAX_NAME_LENGTH - _HASH_LENGTH - 1].rstrip("_")
    return f"{head}_{suffix}"


def assign_names(methods: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    """Name every method; the result maps each key to its tool name.

    ``methods`` is either an iterable of ``package.Service/Method`` strings (each
    its own key) or a mapping from a unique key (e.g. ``"address|pkg.Svc/M"``,
    when several targets serve the same method) to ``package.Service/Method``.
    The outcome depends only on the set of inputs, never on their order.
    """
    by_key: dict[str, str] = (
        dict(methods) if isinstance(methods, Mapping) else {m: m for m in methods}
    )
    keys = sorted(by_key)
    depth = dict.fromkeys(keys, 0)
    hashed: set[str] = set()

    def name_of(key: str) -> str:
        method = by_key[key]
        if key in hashed:
            return _hashed(method, key)
        return _candidate(method, depth[key])

    # Each round lengthens only the names that still collide; depth is bounded by
    # the package length, after which the hash settles it, so this terminates.
    while True:
        names = {k: name_of(k) for k in keys}
        for k, n in names.items():
            if len(n) > MAX_NAME_LENGTH and k not in hashed:
                hashed.add(k)
                names[k] = name_of(k)
        counts = Counter(names.values())
        colliding = [k for k in keys if counts[names[k]] > 1]
        if not colliding:
            return names
        for k in colliding:
            package, _, _ = _split(by_key[k])
            if k in hashed:
                continue  # a sha256 prefix collision: practically impossible
            if depth[k] < len(package):
                depth[k] += 1
            else:
                hashed.add(k)
        if all(k in hashed for k in colliding) and len({name_of(k) for k in colliding}) < len(
            colliding
        ):
            raise ValueError(f"cannot name {colliding} uniquely")  # pragma: no cover
