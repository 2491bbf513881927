"""Which methods may become tools: allow and deny entries over ``package.Service/Method``."""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from toolgen._errors import AllowlistError

__all__ = ["Allowlist", "Skipped"]

_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Skipped:
    """A method the allowlist selected that did not become a tool, and why."""

    #: ``package.Service/Method``.
    method: str
    reason: str

    def __str__(self) -> str:
        return f"{self.method}: {self.reason}"


def _normalize(entry: str) -> str:
    entry = entry.strip().lstrip("/")
    if not entry:
        raise AllowlistError([("", ())])
    # A bare service name means all of its methods: the common case, spelt naturally.
    if "/" not in entry and not _GLOB_CHARS.search(entry):
        return f"{entry}/*"
    return entry


@dataclass(frozen=True)
class Allowlist:
    """Allow and deny entries; deny wins.

    An entry is ``package.Service/Method``, ``package.Service/*``, a bare
    ``package.Service`` (all its methods), or any shell-style glob (``fnmatch``,
    case-sensitive) matched against ``package.Service/Method``. A leading ``/``
    is ignored, so gRPC method paths can be pasted as they are.
    """

    allow: tuple[str, ...]
    deny: tuple[str, ...] = ()

    def __init__(self, allow: Iterable[str], deny: Iterable[str] = ()) -> None:
        object.__setattr__(self, "allow", tuple(_normalize(e) for e in allow))
        object.__setattr__(self, "deny", tuple(_normalize(e) for e in deny))

    def denied_by(self, method: str) -> str | None:
        """The first deny entry matching ``method``, if any."""
        return next((d for d in self.deny if fnmatch.fnmatchcase(method, d)), None)

    def allowed_by(self, method: str) -> str | None:
        """The first allow entry matching ``method``, if any (deny not considered)."""
        return next((a for a in self.allow if fnmatch.fnmatchcase(method, a)), None)

    def allows(self, method: str) -> bool:
        """True when an allow entry matches ``method`` and no deny entry does."""
        return self.allowed_by(method) is not None and self.denied_by(method) is None

    def may_select_service(self, service: str) -> bool:
        """Whether some method of ``service`` could be allowed.

        Lets discovery fetch only the files it needs. Conservative: an entry
        without a ``/`` (a glob over the whole path) may match any service.
        """
        for entry in self.allow:
            service_part, slash, _ = entry.partition("/")
            if not slash or fnmatch.fnmatchcase(service, service_part):
                return True
        return False

    def check(self, methods: Sequence[str]) -> None:
        """Raise ``AllowlistError`` for allow entries that match none of ``methods``.

        The error names the closest existing methods so a typo is quick to fix.
        """
        unmatched = []
        for entry in self.allow:
            if not any(fnmatch.fnmatchcase(m, entry) for m in methods):
                unmatched.append((entry, closest(entry, methods)))
        if unmatched:
            raise AllowlistError(unmatched)


def closest(entry: str, methods: Sequence[str], n: int = 3) -> list[str]:
    """The methods most similar to ``entry``, best first."""
    # Glob characters would only lower the similarity of an otherwise good match.
    plain = _GLOB_CHARS.sub("", entry).removesuffix("/")
    found = difflib.get_close_matches(plain, methods, n=n, cutoff=0.5)
    if found:
        return found
    # A service-level entry ("pkg.Svc/*") compares better with service names.
    services = sorted({m.partition("/")[0] for m in methods})
    close = difflib.get_close_matches(plain, services, n=1, cutoff=0.5)
    if close:
        return [m for m in methods if m.startswith(close[0] + "/")][:n]
    return []
