"""The one scrubber: a run's secrets, and the forms they travel in, replaced by ``[REDACTED]``.

A run's secrets are its inbound credential, every value of metadata forwarded to an upstream,
and the values of config keys that hold secrets (model API keys). An upstream may echo any of
them back (in a result, an error message); the executor passes what comes back through the
run's ``Redactor`` before it enters the run, so records, events, prompts, alerts and exports
derive from redacted data. Spans and logs use the same ``Redactor`` as a second line.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

MARKER = "[REDACTED]"
# Shorter values would scrub ordinary words; real credentials are longer.
MIN_SECRET_CHARS = 6


def _forms(value: str) -> set[str]:
    """``value`` as sent, its bare token after "Bearer ", and the encodings an echo may use:
    base64 (standard and URL-safe, with and without padding), URL-encoded, JSON-escaped."""
    values = {value}
    scheme, _, bare = value.partition(" ")
    if bare and scheme.lower() in ("bearer", "basic", "token"):
        values.add(bare.strip())
    forms = set(values)
    for item in values:
        raw = item.encode()
        for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            text = encoded.decode()
            forms |= {text, text.rstrip("=")}
        forms.add(quote(item, safe=""))
        forms.add(json.dumps(item)[1:-1])
    return {f for f in forms if len(f) >= MIN_SECRET_CHARS}


@dataclass(frozen=True)
class Redactor:
    """Replaces every form of a run's secrets; empty (a no-op) when the run has none."""

    secrets: tuple[str, ...] = ()
    _pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, values: Iterable[str]) -> Redactor:
        forms: set[str] = set()
        for value in values:
            if value and len(value) >= MIN_SECRET_CHARS:
                forms |= _forms(value)
        # Longest first, so a value is replaced whole before any of its parts.
        ordered = tuple(sorted(forms, key=lambda f: (-len(f), f)))
        pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        return cls(ordered, pattern)

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        """``text`` with every secret replaced."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MARKER, text)

    def value(self, value: Any) -> Any:
        """A JSON-like value (dicts, lists, strings) with every secret replaced, keys included."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


NONE = Redactor()

__all__ = ["MARKER", "NONE", "Redactor"]
