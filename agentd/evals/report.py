"""Summaries of an evaluation: the side-by-side table, the JSON file and comparisons.

Everything here works on plain result dicts (``RunResult.as_dict``), so an evaluation read
back from its JSON file compares exactly like a fresh one.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from agentd.evals.suite import Suite

FORMAT = "agentd.eval/v1"


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats drifting
    return ordered[int(rank) - 1]


def outcome(runs: Sequence[Mapping[str, Any]]) -> str:
    """``pass`` when every repeat passed, ``fail`` when none did, else ``flaky i/k``."""
    passed = sum(1 for r in runs if r["passed"])
    if passed == len(runs):
        return "pass"
    return "fail" if passed == 0 else f"flaky {passed}/{len(runs)}"


def by_case(results: Sequence[Mapping[str, Any]], label: str) -> dict[str, list[Mapping[str, Any]]]:
    cases: dict[str, list[Mapping[str, Any]]] = {}
    for result in results:
        if result["config"] == label:
            cases.setdefault(result["case"], []).append(result)
    return cases


def summarize(results: Sequence[Mapping[str, Any]], label: str) -> dict[str, Any]:
    """The figures of one deployment: pass rate, pass^k, latency, calls, tokens, cost, reward."""
    runs = [r for r in results if r["config"] == label]
    cases = by_case(results, label)
    latencies = [float(r["latency_s"]) for r in runs]
    n_runs = max(1, len(runs))  # "per case" figures are per run of a case
    versions: dict[str, set[str]] = {}
    for r in runs:
        for name, version in r.get("prompt_versions", {}).items():
            versions.setdefault(name, set()).add(version)
    return {
        "runs": len(runs),
        "cases": len(cases),
        "passed_runs": sum(1 for r in runs if r["passed"]),
        "pass_rate": _ratio(sum(1 for r in runs if r["passed"]), len(runs)),
        "passed_all_repeats": sum(1 for c in cases.values() if all(r["passed"] for r in c)),
        "pass_hat_k": _ratio(
            sum(1 for c in cases.values() if all(r["passed"] for r in c)), len(cases)
        ),
        "latency_median_s": round(statistics.median(latencies), 4) if latencies else 0.0,
        "latency_p95_s": round(percentile(latencies, 95), 4),
        "model_calls_total": sum(int(r["model_calls"]) for r in runs),
        "tokens_total": sum(int(r["tokens"]) for r in runs),
        "cost_usd_total": round(sum(float(r["cost_usd"]) for r in runs), 6),
        "model_calls_per_case": round(sum(int(r["model_calls"]) for r in runs) / n_runs, 2),
        "tokens_per_case": round(sum(int(r["tokens"]) for r in runs) / n_runs, 1),
        "cost_usd_per_case": round(sum(float(r["cost_usd"]) for r in runs) / n_runs, 6),
        "reward_mean": round(statistics.fmean(float(r["reward"]) for r in runs), 4)
        if runs
        else 0.0,
        "prompt_versions": {k: sorted(v) for k, v in sorted(versions.items())},
    }


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def differences(
    results: Sequence[Mapping[str, Any]], labels: Sequence[str]
) -> list[dict[str, Any]]:
    """Cases whose outcome differs between deployments, with the first failure of each."""
    per_label = {label: by_case(results, label) for label in labels}
    case_ids: list[str] = []
    for cases in per_label.values():
        case_ids += [c for c in cases if c not in case_ids]
    diffs = []
    for case_id in case_ids:
        outcomes = {}
        for label in labels:
            runs = per_label[label].get(case_id, [])
            if not runs:
                outcomes[label] = {"outcome": "missing", "why": ""}
                continue
            failed = next((r for r in runs if not r["passed"]), None)
            outcomes[label] = {"outcome": outcome(runs), "why": _why(failed) if failed else ""}
        if len({o["outcome"] for o in outcomes.values()}) > 1:
            diffs.append({"case": case_id, "outcomes": outcomes})
    return diffs


def _why(result: Mapping[str, Any]) -> str:
    for check in result.get("checks", []):
        if not check["passed"]:
            return f"{check['name']}: {check['detail']}".strip()
    return str(result.get("error") or result.get("status", ""))


def document(
    suite: Suite,
    deployments: Sequence[Mapping[str, Any]],
    results: Sequence[Mapping[str, Any]],
    repeat: int,
) -> dict[str, Any]:
    """The JSON written by ``--json``: enough to compare two evaluations later."""
    labels = [d["label"] for d in deployments]
    return {
        "format": FORMAT,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "suite": {"name": suite.name, "source": suite.source, "cases": len(suite.cases)},
        "repeat": repeat,
        "reward_weights": suite.reward.as_dict(),
        "configs": [{**d, "summary": summarize(results, d["label"])} for d in deployments],
        "differences": differences(results, labels),
        "results": list(results),
    }


def render(doc: Mapping[str, Any], *, width: int = 110) -> str:
    """The side-by-side table of a document (one column per deployment)."""
    configs = doc["configs"]
    labels = [c["label"] for c in configs]
    k = doc["repeat"]
    col = max(18, *(len(label) + 2 for label in labels))
    rows: list[tuple[str, list[str]]] = []

    def row(name: str, fmt: Any) -> None:
        rows.append((name, [fmt(c["summary"]) for c in configs]))

    row("pass rate", lambda s: f"{s['pass_rate']:.1%} ({s['passed_runs']}/{s['runs']})")
    row(f"pass^{k}", lambda s: f"{s['pass_hat_k']:.1%} ({s['passed_all_repeats']}/{s['cases']})")
    row("latency median", lambda s: f"{s['latency_median_s']:.2f} s")
    row("latency p95", lambda s: f"{s['latency_p95_s']:.2f} s")
    row("model calls / case", lambda s: f"{s['model_calls_per_case']:g}")
    row("tokens / case", lambda s: f"{s['tokens_per_case']:g}")
    row("cost / case", lambda s: f"${s['cost_usd_per_case']:.6f}")
    row("model calls total", lambda s: str(s["model_calls_total"]))
    row("tokens total", lambda s: str(s["tokens_total"]))
    row("cost total", lambda s: f"${s['cost_usd_total']:.6f}")
    row("reward mean", lambda s: f"{s['reward_mean']:.3f}")
    if any("ready_s" in c for c in configs):  # in-process: start-up, model and warm-up
        rows.append(
            (
                "ready after start",
                [f"{c['ready_s']:.1f} s" if "ready_s" in c else "-" for c in configs],
            )
        )
    names = sorted({n for c in configs for n in c["summary"]["prompt_versions"]})
    for name in names:
        row(
            f"prompt {name}",
            lambda s, n=name: ",".join(s["prompt_versions"].get(n, [])) or "-",
        )
    suite = doc["suite"]
    lines = [f"suite {suite['name']} · {suite['cases']} cases × {k} repeat(s)", ""]
    lines.append(" " * 20 + "".join(f"{label:<{col}}" for label in labels))
    for name, values in rows:
        lines.append(f"{name:<20}" + "".join(f"{v:<{col}}" for v in values))
    diffs = doc["differences"]
    if len(labels) > 1:
        lines.append("")
        lines.append(f"cases that differ ({len(diffs)}):" if diffs else "no case differs")
        case_width = max((len(d["case"]) for d in diffs), default=0) + 2
        for diff in diffs:
            parts = []
            for label in labels:
                o = diff["outcomes"][label]
                why = f" ({o['why']})" if o["why"] else ""
                parts.append(f"{label.split(':')[0]}: {o['outcome']}{why}")
            lines.append(_cut(f"  {diff['case']:<{case_width}}" + " | ".join(parts), width))
    else:
        failing = [
            (case, runs)
            for case, runs in by_case(doc["results"], labels[0]).items()
            if outcome(runs) != "pass"
        ]
        if failing:
            lines.append("")
            lines.append(f"failing cases ({len(failing)}):")
            for case, runs in failing:
                first = next(r for r in runs if not r["passed"])
                lines.append(_cut(f"  {case}: {outcome(runs)} ({_why(first)})", width))
    return "\n".join(lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def merge_for_compare(docs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """One document holding the first deployment of each evaluation file, for ``compare``."""
    configs: list[dict[str, Any]] = []
    results: list[Mapping[str, Any]] = []
    for i, (doc, name) in enumerate(zip(docs, names, strict=True)):
        first = doc["configs"][0]
        label = f"{chr(ord('A') + i)}:{name}"
        configs.append({**first, "label": label})
        results += [{**r, "config": label} for r in doc["results"] if r["config"] == first["label"]]
    labels = [c["label"] for c in configs]
    for config in configs:
        config["summary"] = summarize(results, config["label"])
    repeat = max(int(d["repeat"]) for d in docs)
    return {
        "format": FORMAT,
        "suite": docs[0]["suite"],
        "repeat": repeat,
        "configs": configs,
        "differences": differences(results, labels),
        "results": results,
    }


def dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False)
