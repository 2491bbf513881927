"""The agentd command's layout: real sub-commands, the older spellings as aliases, the
connection options declared once, help on every command and docs/cli.md kept current.

The commands' behaviour against a daemon is tested where the feature is (test_feedback,
test_approvals, test_identity, test_evals, ...); here each new spelling and its old one run
against a real daemon and must do the same thing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentd import cli
from agentd.cli.channel import connection, target
from agentd.cli.reference import reference
from agentd.v1 import agent_pb2
from tests.test_agent import Stack, plan, start_stack
from tests.test_identity import agentd_cli  # python -m agentd ARGS, as a user runs it
from tests.test_reflection import free_port

ROOT = Path(__file__).resolve().parent.parent


def parsed(argv: list[str]) -> dict[str, Any]:
    """What ``agentd ARGV`` runs: the parsed arguments (the function included), without the
    names of the chosen actions (``models`` alone and ``models list`` set them apart)."""
    parser = cli.build_parser()
    args = parser.parse_args(cli.with_implied_action(argv, parser))
    return {k: v for k, v in vars(args).items() if not k.endswith("_command")}


def commands(
    parser: argparse.ArgumentParser | None = None, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command and sub-command: (its words after ``agentd``, its parser)."""
    parser = parser or cli.build_parser()
    yield path, parser
    for name, child in cli.sub_commands(parser).items():
        yield from commands(child, (*path, name))


def leaves() -> list[tuple[str, ...]]:
    return [path for path, parser in commands() if path and not cli.sub_commands(parser)]


# --- old spellings are aliases of the sub-commands -------------------------------------------

OLD_AND_NEW = [
    (
        ["feedback", "RUN", "--rating", "1", "--comment", "ok", "--label", "a"],
        ["feedback", "rate", "RUN", "--rating", "1", "--comment", "ok", "--label", "a"],
    ),
    (["feedback", "--rating", "-1", "RUN"], ["feedback", "rate", "RUN", "--rating", "-1"]),
    (
        ["feedback", "-H", "x-a: b", "--target", "h:1", "RUN", "--rating", "5"],
        ["feedback", "rate", "RUN", "--rating", "5", "-H", "x-a: b", "--target", "h:1"],
    ),
    (["feedback", "export", "--db", "a.db"], ["feedback", "export", "--db", "a.db"]),
    (["feedback", "--db", "a.db", "export"], ["feedback", "export", "--db", "a.db"]),
    (
        ["feedback", "--target", "h:1", "--with-reward", "--weight", "cost=2", "export"],
        ["feedback", "export", "--target", "h:1", "--with-reward", "--weight", "cost=2"],
    ),
    (["eval", "s.yaml", "-c", "a.toml", "-k", "2"], ["eval", "run", "s.yaml", "-c", "a.toml", "-k", "2"]),
    (
        ["eval", "-c", "a.toml", "--target", "h:1", "--target", "h:2", "s.yaml"],
        ["eval", "run", "s.yaml", "-c", "a.toml", "--target", "h:1", "--target", "h:2"],
    ),
    (["eval", "compare", "a.json", "b.json"], ["eval", "compare", "a.json", "b.json"]),
    (["models"], ["models", "list"]),
    (["models", "install", "qwen"], ["models", "install", "qwen"]),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new"), OLD_AND_NEW, ids=lambda argv: " ".join(argv))
def test_an_old_spelling_runs_what_its_sub_command_runs(old: list[str], new: list[str]) -> None:
    assert parsed(old) == parsed(new)


def test_the_sub_commands_are_real() -> None:
    assert parsed(["feedback", "rate", "R", "--rating", "1"])["func"].__name__ == "submit_feedback"
    assert parsed(["feedback", "export"])["func"].__name__ == "export_feedback"
    assert parsed(["eval", "run", "s.yaml"])["func"].__name__ == "run_suite"
    assert parsed(["eval", "compare", "a", "b"])["func"].__name__ == "compare_results"
    assert parsed(["models", "list"])["func"].__name__ == "list_models"
    assert parsed(["models", "install", "x"])["func"].__name__ == "install_model"
    # A run id that looks like an option's value is not taken for one.
    assert parsed(["feedback", "--comment", "export", "R", "--rating", "1"])["run_id"] == "R"


@pytest.mark.parametrize(
    "argv",
    [
        ["feedback"],  # no action
        ["feedback", "rate", "RUN"],  # --rating is required
        ["feedback", "rate", "RUN", "--rating", "1", "--db", "x"],  # export's option
        ["feedback", "export", "--rating", "1"],  # rate's option
        ["eval"],
        ["eval", "-c", "a.toml"],  # no suite
        ["eval", "run", "s.yaml", "extra.json"],
        ["models", "remove"],
    ],
)
def test_usage_errors_exit_2_with_the_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: agentd ") and "error:" in err


def test_eval_compare_still_names_what_it_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["eval", "compare", str(tmp_path / "a.json")]) == 2
    assert "compare needs two or more evaluation JSON files" in capsys.readouterr().err


def test_models_and_models_list_print_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["models"]) == 0
    alone = capsys.readouterr().out
    assert cli.main(["models", "list"]) == 0
    assert capsys.readouterr().out == alone
    assert "qwen2.5-coder-1.5b" in alone and "(default)" in alone
    assert cli.main(["models", "install"]) == 2  # the message names the models
    assert "models install: name one of qwen2.5-coder-1.5b" in capsys.readouterr().err


# --- against a daemon: the new spelling and the old one do the same ----------------------------


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in start_stack(tmp_path):
        yield s


async def test_feedback_rate_and_export_spelled_both_ways(stack: Stack) -> None:
    runs = []
    for answer in ("4", "5"):
        stack.llm.reply(when="plan", content=plan(answer=answer))
        run = await stack.run("What is 2+2?")
        assert run.status == agent_pb2.RUN_STATUS_SUCCEEDED, run.error
        runs.append(run)
    good, bad = runs
    target = ["--target", stack.daemon.address]

    code, _, err = await agentd_cli("feedback", "rate", good.run_id, "--rating", "1", *target)
    assert (code, err) == (0, f"feedback stored for run {good.run_id}\n")
    code, _, err = await agentd_cli(
        "feedback", *target, bad.run_id, "--rating", "-1", "--label", "x"
    )
    assert (code, err) == (0, f"feedback stored for run {bad.run_id}\n")
    code, _, err = await agentd_cli("feedback", "rate", bad.run_id, "--rating", "9", *target)
    assert code == 4 and err.startswith("agentd: INVALID_ARGUMENT")
    stored = await stack.stub.GetRun(agent_pb2.GetRunRequest(run_id=bad.run_id))
    assert [(f.rating, list(f.labels)) for f in stored.feedback] == [(-1, ["x"])]

    db = str(stack.daemon.config.storage.path)
    exports = [
        await agentd_cli("feedback", "export", *target),
        await agentd_cli("feedback", *target, "export"),
        await agentd_cli("feedback", "export", "--format", "jsonl", "--db", db),
        await agentd_cli("feedback", "--db", db, "export"),
    ]
    assert [code for code, _, _ in exports] == [0, 0, 0, 0]
    assert len({out for _, out, _ in exports}) == 1
    lines = [json.loads(line) for line in exports[0][1].splitlines()]
    assert {x["run_id"] for x in lines if x["kind"] == "chat"} == {good.run_id, bad.run_id}
    assert [x["kind"] for x in lines].count("preference") == 1


async def test_an_unreachable_daemon_exits_3_in_one_line_for_every_client_command() -> None:
    address = f"127.0.0.1:{free_port()}"
    for command in (
        ["feedback", "rate", "R", "--rating", "1"],
        ["feedback", "R", "--rating", "1"],
        ["feedback", "export"],
        ["get", "R"],
        ["runs", "--status", "failed"],
        ["approve", "R"],
        ["reject", "R", "--reason", "no"],
        ["trace", "R"],
        ["tools"],
        ["run", "hello"],
    ):
        code, _, err = await agentd_cli(*command, "--target", address)
        assert code == 3, (command, err)
        assert err.startswith(f"agentd: {address} is unreachable") and err.count("\n") == 1, err
    code, _, err = await agentd_cli("health", "--target", address, "--timeout", "2")
    assert code == 3 and err.startswith(f"agentd: {address} is unreachable"), err


# --- the connection options, declared once ------------------------------------------------------

CLIENT_COMMANDS = {  # the words of each client command, and the arguments it needs
    ("run",): ["TASK"], ("tools",): [], ("health",): [], ("get",): ["R"],
    ("runs",): ["--status", "failed"], ("approve",): ["R"], ("reject",): ["R", "--reason", "no"],
    ("trace",): ["R"], ("feedback", "rate"): ["R", "--rating", "1"], ("feedback", "export"): [],
    ("eval", "run"): ["s.yaml"], ("watch",): ["R"],
}  # fmt: skip
CONNECTION = ["--tls", "--ca", "ca.pem", "--cert", "c.pem", "--key", "c.key", "-H", "x-a: b"]


@pytest.mark.parametrize("path", CLIENT_COMMANDS, ids=" ".join)
def test_every_client_command_takes_the_same_connection_options(path: tuple[str, ...]) -> None:
    args = parsed([*path, *CLIENT_COMMANDS[path], *CONNECTION, "--target", "h:1"])
    assert (args["tls"], args["ca"], args["cert"], args["key"]) == (
        True,
        "ca.pem",
        "c.pem",
        "c.key",
    )
    assert args["header"] == ["x-a: b"]
    # One address, or several for eval (it compares daemons).
    assert args["target"] == (["h:1"] if path[0] == "eval" else "h:1")


def test_the_connection_options_are_declared_once() -> None:
    groups = {}
    for path, parser in commands():
        for group in parser._action_groups:
            if group.title == "connection":
                groups[path] = sorted(f for a in group._group_actions for f in a.option_strings)
    assert set(groups) == set(CLIENT_COMMANDS)
    assert {tuple(flags) for flags in groups.values()} == {
        ("--ca", "--cert", "--header", "--key", "--target", "--tls", "-H")
    }
    # Nowhere else: no command declares one of them itself.
    source = "".join(p.read_text() for p in (ROOT / "agentd" / "cli").glob("*.py"))
    for flag in ("--tls", "--ca", "--cert", "--key", "-H"):
        assert len(re.findall(rf'add_argument\(\s*"{flag}"', source)) == 1, flag
    assert len(re.findall(r'add_argument\(\s*"--target"', source)) == 2  # one, or several


def test_the_environment_gives_the_target_and_the_token() -> None:
    args = argparse.Namespace(**parsed(["get", "R"]))
    assert target(args, env={}) == "127.0.0.1:50051"
    assert target(args, env={"AGENTD_TARGET": "h:9"}) == "h:9"
    args.target = "h:1"
    assert target(args, env={"AGENTD_TARGET": "h:9"}) == "h:1"  # --target wins
    assert connection(args, env={"AGENTD_TOKEN": "tok"}).metadata == (
        ("authorization", "Bearer tok"),
    )
    args.header = ["Authorization: Bearer mine"]
    assert connection(args, env={"AGENTD_TOKEN": "tok"}).metadata == (
        ("authorization", "Bearer mine"),
    )  # -H wins


# --- help ---------------------------------------------------------------------------------------


def test_agentd_help_lists_every_command_with_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agentd", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0
    for name in cli.sub_commands(cli.build_parser()):
        assert re.search(rf"^    {name} +\S", result.stdout, re.M), name
    for section in ("examples:", "exit status:", "AGENTD_TARGET", "AGENTD_TOKEN"):
        assert section in result.stdout


@pytest.mark.parametrize("path", leaves(), ids=" ".join)
def test_every_command_explains_itself(path: tuple[str, ...]) -> None:
    parser = dict(commands())[path]
    assert parser.description, path
    text = parser.format_help()
    assert f"usage: agentd {' '.join(path)}" in text
    for action in parser._actions:
        assert action.help, (path, action.dest)
    examples = text.partition("examples:\n")[2]
    assert examples.startswith(f"  agentd {path[0]}"), path  # an example of the command itself


def test_a_group_lists_its_actions_and_the_old_spelling(capsys: pytest.CaptureFixture[str]) -> None:
    for group, actions, old in (
        ("feedback", ("rate", "export"), "agentd feedback RUN_ID --rating N"),
        ("eval", ("run", "compare"), "agentd eval SUITE"),
    ):
        with pytest.raises(SystemExit) as exited:
            cli.main([group, "--help"])
        assert exited.value.code == 0
        out = " ".join(capsys.readouterr().out.split())
        assert all(f" {a} " in out for a in actions) and old in out


# --- docs/cli.md ----------------------------------------------------------------------------------


def test_docs_cli_md_is_the_parsers_reference() -> None:
    """Regenerate with `python -m agentd.cli --reference > docs/cli.md`. Compared by content,
    not layout: another Python's argparse wraps and spells usage lines differently."""
    written = (ROOT / "docs" / "cli.md").read_text()
    sections = dict(
        (m.group(1), m.group(2))
        for m in re.finditer(r"^## (agentd[^\n]*)\n\n```text\n(.*?)```", written, re.M | re.S)
    )
    assert list(sections) == [" ".join(("agentd", *path)) for path, _ in commands()]
    for path, parser in commands():
        section = " ".join(sections[" ".join(("agentd", *path))].split())
        for text in (parser.description, *(a.help for a in parser._actions)):
            if text and text != argparse.SUPPRESS:
                assert " ".join(text.split()) in section, (path, text)
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in section, (path, flag)
    if sys.version_info[:2] == (3, 11):  # the Python it is generated with: the same text
        assert written == reference()


def test_python_m_agentd_cli_reference_prints_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agentd.cli", "--reference"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == reference()


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    """`agentd models | head -1`: when the pipe's reader is gone before the command writes,
    the command stops with exit 0 and no traceback (as cat and grep do)."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # gone before the child's first write
    try:
        done = subprocess.run(
            [sys.executable, "-m", "agentd", "models"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
