"""``embedded_decoding``: which llama.cpp settings make the embedded default's runs fastest.

Each variant starts its own llama.cpp server (the 1.5B default; 1 or 2 threads; speculative
decoding by n-gram lookup in the prompt, or with the 0.5B model of the same family as draft)
and runs the same ledger cases through a daemon started from ``examples/agentd.toml``, pointed
at that server. The figure is the median run per variant, with the cases passed, so a faster
variant that answers worse shows it. Variants run one after another on the same cores; the
load average is recorded before and after. ``python -m bench --only embedded_decoding``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentd.evals.runner import Deployment, evaluate
from agentd.evals.suite import load_suite
from agentd.llm import DEFAULT_MODEL, EmbeddedModel
from agentd.llm.bundled import resolve_model
from bench._common import Result, load

_ROOT = Path(__file__).resolve().parent.parent
_CASES = (  # ledger dev cases of every kind but approvals (their runs end by waiting)
    "vendor-phone",
    "vendor-website-ven_016",
    "search-coffee",
    "spend-march",
    "rpn-35",
    "search-then-spend",
)
_DRAFT = "qwen2.5-coder-0.5b"


@dataclass(frozen=True)
class Variant:
    name: str
    threads: int
    speculative: str = ""  # "", "ngram" or "draft"


_VARIANTS = (
    Variant("threads_1", 1),
    Variant("threads_2", 2),
    Variant("threads_2_ngram", 2, "ngram"),
    Variant("threads_2_draft_0.5b", 2, "draft"),
)


class _Tuned(EmbeddedModel):
    """The embedded model with a variant's speculative decoding switched on."""

    def __init__(self, variant: Variant) -> None:
        super().__init__(DEFAULT_MODEL, threads=variant.threads)
        self.variant = variant

    def _params(self, xllamacpp: Any, path: Path) -> Any:
        params = super()._params(xllamacpp, path)
        kinds = xllamacpp.common_speculative_type
        if self.variant.speculative == "ngram":
            params.speculative.types = [kinds.COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE]
        elif self.variant.speculative == "draft":
            params.speculative.types = [kinds.COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE]
            params.speculative.draft.mparams.path = str(resolve_model(_DRAFT)[1])
            params.speculative.draft.cpuparams.n_threads = self.threads
            params.speculative.draft.cpuparams_batch.n_threads = self.threads
        return params


def _config(directory: Path, base_url: str, model: str) -> Path:
    """examples/agentd.toml with its model roles pointed at ``base_url``."""
    text = (_ROOT / "examples" / "agentd.toml").read_text()
    llm = f'[llm]\nbase_url = "{base_url}"\nmodel = "{model}"\n'
    text = re.sub(r"^\[llm\]\n", lambda _: llm, text, count=1, flags=re.MULTILINE)
    text = text.replace('descriptor_set = "examples/', f'descriptor_set = "{_ROOT}/examples/')
    path = directory / "agentd.toml"
    path.write_text(text)
    return path


async def _variant(variant: Variant, quick: bool) -> dict[str, Any]:
    suite = load_suite(_ROOT / "evals" / "ledger.yaml").select(_CASES[:1] if quick else _CASES)
    with tempfile.TemporaryDirectory(prefix="agentd-bench-") as name:
        async with _Tuned(variant) as model:
            config = _config(Path(name), model.base_url, model.model)
            deployment = Deployment(variant.name, config_path=str(config))
            # One warm-up pass fills the prompt caches (the catalog); the second is measured.
            await evaluate(suite.select(_CASES[:1]), [deployment], concurrency=1)
            results = await evaluate(suite, [deployment], concurrency=1)
    latencies = [r.latency_s for r in results]
    return {
        "median_run_s": round(statistics.median(latencies), 2),
        "runs_s": {r.case: round(r.latency_s, 2) for r in results},
        "passed": sum(r.passed for r in results),
        "cases": len(results),
        "model_calls": sum(r.model_calls for r in results),
    }


async def run(quick: bool, only: Sequence[str] = ()) -> list[Result]:
    if importlib.util.find_spec("xllamacpp") is None:
        why = "xllamacpp is not installed"
        return [
            Result("embedded_decoding", 0.0, "s", "report", quick=quick, details={"skipped": why})
        ]
    # --quick proves the row runs: one variant, one case
    variants: tuple[Variant, ...] = _VARIANTS[:1] if quick else _VARIANTS
    try:
        resolve_model(_DRAFT)
    except Exception as exc:  # the draft model is optional: `agentd models install` it
        variants = tuple(v for v in variants if v.speculative != "draft")
        missing = f"{_DRAFT} not installed ({exc}); `agentd models install {_DRAFT}`"
    else:
        missing = ""
    load_before = load()
    figures: dict[str, Any] = {}
    async with asyncio.timeout(1200 if quick else 3600):
        for variant in variants:
            figures[variant.name] = await _variant(variant, quick)
    baseline = figures["threads_1"]["median_run_s"]
    best = min(figures, key=lambda n: figures[n]["median_run_s"])
    return [
        Result(
            name="embedded_decoding",
            value=figures[best]["median_run_s"],
            unit=f"s median run ({best})",
            goal="report",
            baseline=baseline,
            quick=quick,
            details={
                "model": DEFAULT_MODEL,
                "cases": list(_CASES[:1] if quick else _CASES),
                "variants": figures,
                "draft_missing": missing,
                "load_before": load_before,
                "load_after": load(),
            },
        )
    ]
