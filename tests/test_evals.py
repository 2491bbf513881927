"""Evaluations: the shipped suite on the scripted model, A against a weaker prompt B.

The scripted model (tests/support/eval_model.py) replays each case's reference plan and
fills its answer from the real tool results, so under config A the suite passes; config B
differs only by a planner prompt file, under which the model drops steps and approvals, so
the table shows those cases as differing.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from agentd import cli
from agentd.evals import RewardWeights, SuiteError, load_suite, parse_suite, reward, terms_of
from agentd.evals.checks import check_run
from agentd.evals.report import percentile
from agentd.evals.reward import with_rewards
from agentd.loop import prompts
from agentd.v1 import agent_pb2
from evals import make_helpdesk_suite, make_ledger_suite, make_people_suite, suite_kit
from tests.support.eval_model import WEAK_MARKER, SuiteModel
from tests.support.scripted_llm import ScriptedLLM

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "evals" / "ledger.yaml"


class BackgroundLLM:
    """A ScriptedLLM on its own loop in a thread, so the synchronous CLI can call it."""

    def __init__(self, responder: Any) -> None:
        self.llm = ScriptedLLM(model="scripted-model")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.llm.start(), self.loop).result(timeout=30)
        self.llm.responder(responder)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.llm.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedLLM]:
    background = BackgroundLLM(SuiteModel(load_suite(SUITE)))
    yield background.llm
    background.close()


def write_configs(tmp: Path, llm: ScriptedLLM) -> tuple[Path, Path]:
    """Config A: examples/agentd.toml on the scripted model. B: A plus a weaker planner prompt."""
    base = (ROOT / "examples" / "agentd.toml").read_text()
    llm_block = (
        f'[llm]\nbase_url = "{llm.base_url}"\nmodel = "scripted-model"\n'
        'tool_call_mode = "structured"\nmax_retries = 0\n'
    )
    base = base.replace("\n[llm]\n", "\n" + llm_block, 1)
    base += '\n[pricing."scripted-model"]\ninput_per_mtok = 0.4\noutput_per_mtok = 1.6\n'
    a = tmp / "agentd-a.toml"
    a.write_text(base)
    (tmp / "planner-b.txt").write_text(prompts.PLANNER.text + "\n" + WEAK_MARKER)
    b = tmp / "agentd-b.toml"
    b.write_text(base + '\n[prompts]\nplanner = "planner-b.txt"\n')
    return a, b


def test_eval_compares_two_prompt_versions(
    scripted: ScriptedLLM, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = write_configs(tmp_path, scripted)
    out = tmp_path / "eval.json"
    code = cli.main(
        ["eval", str(SUITE), "--config", str(a), "--config", str(b), "--json", str(out), "-j", "8"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    print(captured.out)  # the table, for the report (pytest -s)
    doc = json.loads(out.read_text())
    suite = load_suite(SUITE)
    assert len(suite.cases) >= 25

    # JSON shape: one summary per config, one result per case and config, the differences.
    assert doc["format"] == "agentd.eval/v1"
    assert [c["label"] for c in doc["configs"]] == ["A:agentd-a", "B:agentd-b"]
    # Each in-process daemon's start-up (services, discovery; the warm-up on the embedded
    # model), which the cases do not pay.
    assert all(c["ready_s"] > 0 for c in doc["configs"])
    assert "ready after start" in captured.out and "ready in " in captured.err
    assert len(doc["results"]) == 2 * len(suite.cases)
    first = doc["results"][0]
    for key in ("case", "config", "passed", "status", "checks", "latency_s", "model_calls"):
        assert key in first
    for key in ("tokens", "cost_usd", "reward", "run_id", "trace_id", "prompt_versions"):
        assert key in first

    summary_a = doc["configs"][0]["summary"]
    summary_b = doc["configs"][1]["summary"]
    failing_a = [
        r["case"] for r in doc["results"] if r["config"].startswith("A") and not r["passed"]
    ]
    assert failing_a == [], [
        (r["case"], [c for c in r["checks"] if not c["passed"]], r["error"])
        for r in doc["results"]
        if not r["passed"]
    ]
    assert summary_a["pass_rate"] == 1.0
    assert summary_b["pass_rate"] < 1.0
    assert summary_a["cost_usd_total"] > 0  # priced in the config
    # The prompt versions differ for the planner only.
    versions_a, versions_b = summary_a["prompt_versions"], summary_b["prompt_versions"]
    assert versions_a["planner"] == [prompts.PLANNER.version]
    assert versions_b["planner"] != versions_a["planner"]
    assert versions_b["responder"] == versions_a["responder"]

    differing = {d["case"] for d in doc["differences"]}
    multi = {c.id for c in suite.cases if {"multi-step", "approval"} & set(c.tags)}
    assert differing == multi
    assert all(d["outcomes"]["A:agentd-a"]["outcome"] == "pass" for d in doc["differences"])
    approval = next(d for d in doc["differences"] if d["case"].startswith("update-phone"))
    assert "status: got succeeded" in approval["outcomes"]["B:agentd-b"]["why"]
    # The table names both configs and the cases that differ.
    assert "pass rate" in captured.out and "cases that differ" in captured.out
    assert "update-phone-needs-approval" in captured.out
    assert "[A:agentd-a]" in captured.err  # progress

    # compare: two stored evaluations, side by side, same differences.
    single_a, single_b = tmp_path / "a.json", tmp_path / "b.json"
    for path, label in ((single_a, "A:agentd-a"), (single_b, "B:agentd-b")):
        part = {**doc, "configs": [c for c in doc["configs"] if c["label"] == label]}
        part["results"] = [r for r in doc["results"] if r["config"] == label]
        path.write_text(json.dumps(part))
    assert cli.main(["eval", "compare", str(single_a), str(single_b)]) == 0
    compared = capsys.readouterr().out
    assert f"cases that differ ({len(multi)})" in compared


def test_pass_hat_k_over_repeats(
    scripted: ScriptedLLM, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A case passes^k only when all k runs pass; a flaky case shows as flaky i/k."""
    a, _ = write_configs(tmp_path, scripted)
    calls: dict[str, int] = {}
    model = SuiteModel(load_suite(SUITE))

    def flaky(body: dict[str, Any]) -> Any:
        # The calculator case's planner fails every second time: 2 of 3 runs... or 1 of 3.
        reply = model(body)
        task = body["messages"][1]["content"].splitlines()[0]  # "Task: ..." (not the catalog)
        if (
            "3 4 + 5 *" in task
            and body.get("response_format", {}).get("json_schema", {}).get("name") == "plan"
        ):
            calls["n"] = calls.get("n", 0) + 1
            if calls["n"] == 2 and reply is not None:
                assert isinstance(reply.content, dict)
                reply.content["steps"][0]["call"]["arguments"] = {"expression": "3 4 +"}
        return reply

    scripted.responder(flaky)
    try:
        out = tmp_path / "k.json"
        args = ["eval", str(SUITE), "-c", str(a), "--cases", "rpn-*", "-k", "3", "-j", "1", "-q"]
        code = cli.main([*args, "--json", str(out)])
    finally:
        scripted.responder(model)
    assert code == 0
    doc = json.loads(out.read_text())
    summary = doc["configs"][0]["summary"]
    assert summary["runs"] == 6 and summary["cases"] == 2
    assert summary["passed_runs"] == 5
    assert summary["pass_rate"] == round(5 / 6, 4)
    assert summary["pass_hat_k"] == 0.5  # rpn-power passed 3/3, rpn-35 only 2/3
    table = capsys.readouterr().out
    assert "pass^3" in table and "rpn-35: flaky 2/3" in table


def test_shipped_suite_is_generated_from_the_data() -> None:
    assert SUITE.read_text() == make_ledger_suite.render()
    for name, module in (("people", make_people_suite), ("helpdesk", make_helpdesk_suite)):
        expected = suite_kit.render(f"evals.make_{name}_suite", module.suite())
        assert (ROOT / "evals" / f"{name}.yaml").read_text() == expected, (
            f"run: python -m evals.make_{name}_suite"
        )


@pytest.mark.parametrize("name", ["people", "helpdesk"])
def test_domain_suite_references_pass_against_the_real_service(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every case of a new domain's suite, replayed from its reference by the scripted model
    through a real daemon (examples/NAME.toml) and the real service the suite names, passes
    every check; the suite has every kind of case, each in both splits."""
    path = ROOT / "evals" / f"{name}.yaml"
    suite = load_suite(path)
    assert 20 <= len(suite.cases) <= 24
    kinds: dict[str, set[str]] = {}
    for case in suite.cases:
        assert case.reference is not None, case.id
        split = "dev" if "dev" in case.tags else "test"
        kinds.setdefault(case.tags[0], set()).add(split)
    assert {"lookup", "search", "multi-step", "approval", "refusal"} <= set(kinds)
    assert all(splits == {"dev", "test"} for splits in kinds.values()), kinds
    assert sum(c.tags[0] == "multi-step" for c in suite.cases) >= 5

    background = BackgroundLLM(SuiteModel(suite))
    try:
        config = (ROOT / "examples" / f"{name}.toml").read_text()
        llm_block = (
            f'[llm]\nbase_url = "{background.llm.base_url}"\nmodel = "scripted-model"\n'
            'tool_call_mode = "structured"\nmax_retries = 0\n'
        )
        config_path = tmp_path / f"{name}.toml"
        config_path.write_text(config.replace("\n[llm]\n", "\n" + llm_block, 1))
        out = tmp_path / "eval.json"
        args = ["eval", str(path), "--config", str(config_path), "-j", "4", "-q"]
        code = cli.main([*args, "--json", str(out)])
    finally:
        background.close()
    captured = capsys.readouterr()
    doc = json.loads(out.read_text())
    failing = [
        (r["case"], [c for c in r["checks"] if not c["passed"]], r["error"])
        for r in doc["results"]
        if not r["passed"]
    ]
    assert failing == [], failing
    assert code == 0, captured.err
    assert len(doc["results"]) == len(suite.cases)
    by_case = {r["case"]: r for r in doc["results"]}
    for case in suite.cases:
        if case.tags[0] == "approval":
            assert by_case[case.id]["status"] == "needs_approval", case.id


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"cases": [{"id": "a", "task": "t", "expect": {"status": "done"}}]},
            "case 'a' (#1): expect.status",
        ),
        ({"cases": [{"id": "a", "task": "t"}, {"id": "b", "task": ""}]}, "case 'b' (#2): task"),
        (
            {"cases": [{"id": "a", "task": "t", "expect": {"output_json": {"$.x[": 1}}}]},
            "expect.output_json.$.x[",
        ),
        (
            {"cases": [{"id": "a", "task": "t", "expect": {"budget": {"max_calls": 1}}}]},
            "expect.budget.max_calls",
        ),
        (
            {"cases": [{"id": "a", "task": "t", "expect": {"tools_called": [{"args": {}}]}}]},
            "expect.tools_called[0]",
        ),
        ({"cases": [{"id": "a", "task": "t", "oops": 1}]}, "case 'a' (#1): oops: unknown field"),
        (
            {"cases": [{"id": "a", "task": "t"}, {"id": "a", "task": "u"}]},
            "case 'a' (#2): id: duplicate",
        ),
        ({"cases": [{"task": "t"}]}, "case #1: id"),
        (
            {"reward": {"speed": 1}, "cases": [{"id": "a", "task": "t"}]},
            "reward.speed: unknown weight",
        ),
        (
            {"cases": [{"id": "a", "task": "t", "expect": {"output_json": {"$.n": {"min": "x"}}}}]},
            "$.n.min: must be a number",
        ),
    ],
)
def test_suite_errors_name_the_case_and_field(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SuiteError) as caught:
        parse_suite(raw, "s.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("s.yaml: ")


def test_jsonl_suite_and_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(
        json.dumps({"suite": {"name": "tiny", "reward": {"cost": 2}}})
        + "\n"
        + json.dumps({"id": "one", "task": "t", "expect": {"contains": ["x"]}})
        + "\n"
    )
    suite = load_suite(path)
    assert (
        suite.name == "tiny" and suite.reward.cost == 2 and suite.cases[0].expect.contains == ("x",)
    )
    path.write_text(json.dumps({"id": "one", "task": "t", "expect": {"status": "ok"}}) + "\n")
    assert cli.main(["eval", str(path), "--target", "127.0.0.1:1"]) == 2
    assert "case 'one' (#1): expect.status" in capsys.readouterr().err


def _run(**fields: Any) -> agent_pb2.RunResponse:
    run = agent_pb2.RunResponse(**fields)
    run.duration.FromMilliseconds(2500)
    return run


def test_reward_arithmetic() -> None:
    weights = RewardWeights(checks=1.0, feedback=0.5, guardrail=0.5, cost=10.0, latency=0.1)
    run = _run(
        cost_usd=0.01,
        feedback=[agent_pb2.Feedback(rating=5), agent_pb2.Feedback(rating=2)],  # 1.0, -0.5
        verdicts=[
            agent_pb2.GuardrailVerdict(verdict=agent_pb2.VERDICT_PASS),
            agent_pb2.GuardrailVerdict(verdict=agent_pb2.VERDICT_FLAG),
        ],
    )
    terms = terms_of(run, checks_passed=3, checks_total=4)
    assert terms.checks == 0.75 and terms.feedback == 0.25 and terms.guardrail == -0.5
    assert terms.latency_s == 2.5  # the run's own duration when no latency is given
    # 0.75 + 0.5*0.25 + 0.5*(-0.5) - 10*0.01 - 0.1*2.5 = 0.275
    assert reward(run, weights, checks_passed=3, checks_total=4) == pytest.approx(0.275)
    # A block outweighs flags; no checks and no feedback contribute nothing.
    blocked = _run(verdicts=[agent_pb2.GuardrailVerdict(verdict=agent_pb2.VERDICT_BLOCK)])
    assert reward(blocked, RewardWeights(latency=0.0)) == pytest.approx(-0.5)
    assert reward(_run(), RewardWeights()) == 0.0


def test_feedback_export_with_reward() -> None:
    run = _run(run_id="r1", task="t", output="o", cost_usd=0.5)
    run.feedback.append(agent_pb2.Feedback(rating=-1))
    lines = [json.dumps({"kind": "chat", "run_id": "r1"}), json.dumps({"kind": "preference"})]
    out = [json.loads(line) for line in with_rewards(lines, [run], ["cost=1", "latency=0"])]
    assert out[0]["reward"] == pytest.approx(-1.0 - 0.5)
    assert out[0]["reward_terms"]["feedback"] == -1.0
    assert "reward" not in out[1]
    with pytest.raises(ValueError, match="speed"):
        list(with_rewards(lines, [run], ["speed=1"]))


def test_checks_on_a_run() -> None:
    case = parse_suite(
        {
            "cases": [
                {
                    "id": "c",
                    "task": "t",
                    "expect": {
                        "status": ["succeeded", "needs_approval"],
                        "tools_called": [{"tool": "Ledger*", "args": {"vendor.id": "ven_001"}}],
                        "tools_not_called": ["*Delete*"],
                        "output_json": {
                            "$.total": -1200,  # int64 arrives as a string
                            "$.items[1].name": {"matches": "^Fig"},
                            "$.missing": {"exists": False},
                            "n": {"min": 1, "max": 3},
                        },
                        "contains": ["FIGMA"],
                        "not_contains": ["error"],
                        "budget": {"max_model_calls": 1, "max_latency_s": 5},
                    },
                }
            ]
        }
    ).cases[0]
    run = agent_pb2.RunResponse(status=agent_pb2.RUN_STATUS_SUCCEEDED, output="Figma it is")
    step = run.steps.add(tool="LedgerService_UpdateVendor")
    json_format.ParseDict({"vendor": {"id": "ven_001"}}, step.arguments)
    json_format.ParseDict(
        {"total": "-1200", "items": [{"name": "a"}, {"name": "Figma"}], "n": 2}, run.output_json
    )
    run.model_calls.add(role="planner")
    run.model_calls.add(role="responder")
    results = {r.name: r for r in check_run(case, run, latency_s=1.0)}
    failed = [name for name, r in results.items() if not r.passed]
    assert failed == ["budget model_calls"], results
    assert results["budget model_calls"].detail == "2 > 1"


def test_percentile_nearest_rank() -> None:
    assert percentile([], 95) == 0.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0


def test_a_suite_names_its_services_as_module_function() -> None:
    case = {"id": "a", "task": "t"}
    suite = parse_suite({"services": {"ledger": "examples.ledger.server:serve"}, "cases": [case]})
    assert suite.services == {"ledger": "examples.ledger.server:serve"}
    assert suite.select(["a"]).services == suite.services
    with pytest.raises(SuiteError, match=r"services\.ledger: must be 'module:function'"):
        parse_suite({"services": {"ledger": "examples/ledger.py"}, "cases": [case]})
