"""A per-task shortlist of the catalog, so a planner facing hundreds of tools reads a dozen.

Every planner call carries the catalog text and a plan grammar with every tool's arguments, so
both grow with the allowlist, and a small model drowns in a long one. Ranking the tools against
the task with BM25 (Robertson's Okapi weighting, k1 = 1.2, b = 0.75) over what the planner itself
would read of each tool (its name split into words, description, argument names and comments,
result fields) keeps the ones the task talks about. Lexical ranking is enough here: a task
names the thing it wants ("vendor", "invoice", "refund"), and proto names and comments say the
same words. Written here rather than taken from ``bm25s``: the scoring is a dozen lines, and
that package would bring NumPy and SciPy into the daemon.

A catalog no larger than ``k`` is offered whole and unchanged, so the planner's prompt prefix
stays the same bytes across runs and llama.cpp's prompt cache keeps working for it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from agentd.llm.schemas import IdentityCache
from agentd.loop.describe import DescribedTool, describe_tool

_K1 = 1.2
_B = 0.75
# A tool scoring below this share of the best one is not offered (see ``shortlist``).
_RELATIVE_FLOOR = 0.2
# camelCase and PascalCase humps, acronyms, digits: "GetVendorByID" -> get vendor by id
# (digits are left out: "30" in a phone number must not pick ``Service30``)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
# Words that occur in most tasks or most tool texts and tell nothing about which tool fits.
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "for",
        "from",
        "get",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "list",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "please",
        "set",
        "the",
        "this",
        "to",
        "v1",
        "was",
        "we",
        "what",
        "when",
        "which",
        "who",
        "with",
        "you",
        "string",
        "int",
        "bool",
        "returns",
        "any",
        "object",
    ]
)

T = TypeVar("T", bound=DescribedTool)


def words(text: str) -> list[str]:
    """Lower-case terms of ``text``: identifiers split at case changes, plural ``s`` dropped
    (so "vendors" finds ``GetVendor``), stop words left out."""
    terms = []
    for raw in _WORD.findall(text):
        word = raw.lower()
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        if word not in _STOP:
            terms.append(word)
    return terms


@dataclass(frozen=True)
class _Index:
    names: tuple[str, ...]
    terms: tuple[Counter[str], ...]
    lengths: tuple[int, ...]
    average: float
    idf: Mapping[str, float]

    @classmethod
    def build(cls, tools: Sequence[DescribedTool]) -> _Index:
        names = tuple(t.name for t in tools)
        return cls.of(names, tuple(Counter(words(describe_tool(t))) for t in tools))

    @classmethod
    def of(cls, names: tuple[str, ...], terms: tuple[Counter[str], ...]) -> _Index:
        lengths = tuple(sum(t.values()) for t in terms)
        average = sum(lengths) / len(lengths) if lengths else 0.0
        df: Counter[str] = Counter()
        for counts in terms:
            df.update(counts.keys())
        n = len(names)
        idf = {w: math.log(1 + (n - d + 0.5) / (d + 0.5)) for w, d in df.items()}
        return cls(names, terms, lengths, average, idf)

    def scores(self, query: Iterable[str]) -> list[float]:
        wanted = [w for w in set(query) if w in self.idf]
        return [self.score(c, n, wanted) for c, n in zip(self.terms, self.lengths, strict=True)]

    def score(self, counts: Counter[str], length: int, wanted: Iterable[str]) -> float:
        """BM25 of one tool's terms (indexed or not) for the query words ``wanted``."""
        norm = _K1 * (1 - _B + _B * length / (self.average or 1.0))
        score = 0.0
        for word in wanted:
            tf = counts.get(word, 0)
            if tf:  # a word in no indexed tool (only in this one) has the highest weight
                idf = self.idf.get(word) or math.log(1 + (len(self.names) + 0.5) / 0.5)
                score += idf * tf * (_K1 + 1) / (tf + norm)
        return score

    def matches(self, tool: DescribedTool, query: Iterable[str]) -> bool:
        """Whether a tool outside the index shares a weighted word with the query."""
        counts = Counter(words(describe_tool(tool)))
        return self.score(counts, sum(counts.values()), query) > 0


# Keyed by the ranked tools themselves: a run's mapping is new each time, but the upstream
# tools in it are the catalog snapshot's objects, so the index is built once per snapshot.
_INDEXES: IdentityCache[_Index] = IdentityCache(16)


def shortlist(tools: Mapping[str, T], task: str, k: int) -> Mapping[str, T]:
    """The ``k`` tools that best match ``task``, plus every tool marked ``always_offered``
    (the built-in memory tools: they are about the conversation, not the task's words; and
    the tools of upstreams configured ``always_offer``, utilities no task names).

    ``k <= 0``, or a catalog of at most ``k`` ranked tools, returns ``tools`` itself, so the
    planner's prompt is unchanged. Ties keep name order: the same task gets the same list.
    """
    kept = [n for n, t in tools.items() if getattr(t, "always_offered", False)]
    ranked = tuple(tools[n] for n in sorted(tools) if n not in kept)
    if k <= 0 or len(ranked) <= k:
        return tools
    index = _INDEXES.get(ranked, lambda: _Index.build(ranked))
    query = words(task)
    scores = index.scores(query)
    best = sorted(range(len(ranked)), key=lambda i: (-scores[i], i))[:k]
    if scores[best[0]] > 0:
        # Leave out what barely matches: a tool that shares only a word found in nearly every
        # tool ("name", "id") would cost the planner hundreds of tokens and tell it nothing.
        floor = scores[best[0]] * _RELATIVE_FLOOR
        best = [i for i in best if scores[i] >= floor]
        best += _siblings(ranked, best, k - len(best))
    elif any(index.matches(tools[n], query) for n in kept):
        best = []  # the task is about an always-offered tool alone ("... with the calculator")
    # else nothing matches at all: the first k by name, so the planner still sees some tools
    chosen = {index.names[i] for i in best} | set(kept)
    return {name: tools[name] for name in sorted(tools) if name in chosen}


def similarities(query: str, documents: Sequence[Counter[str]]) -> list[float]:
    """How well each document (its ``Counter(words(text))``) matches ``query``, from 0 to 1: its
    BM25 score over the score the query's own words would get as a document of the same index
    (so a threshold means the same for a library of three examples and of three hundred)."""
    if not documents:
        return []
    index = _Index.of(tuple(str(i) for i in range(len(documents))), tuple(documents))
    wanted = list(set(words(query)))
    own = Counter(words(query))
    best = index.score(own, sum(own.values()), wanted)
    if best <= 0:
        return [0.0] * len(documents)
    found = index.scores(wanted)
    return [min(1.0, score / best) for score in found]


def _siblings(ranked: Sequence[DescribedTool], best: list[int], room: int) -> list[int]:
    """Up to ``room`` more tools from the services of the chosen ones, best service first: a
    task that names one method of a service often needs another (search, then get) in words
    it does not use ("spend at Northwind" needs the vendor search)."""
    services = [s for s in dict.fromkeys(_service(ranked[i]) for i in best) if s]
    taken = set(best)
    more = [
        i for s in services for i, t in enumerate(ranked) if i not in taken and _service(t) == s
    ]
    return more[: max(room, 0)]


def _service(tool: DescribedTool) -> str:
    return str(getattr(tool, "method", "")).rpartition("/")[0]


__all__: Sequence[str] = ["shortlist", "similarities", "words"]
