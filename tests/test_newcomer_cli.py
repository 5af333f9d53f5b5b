"""A newcomer's first hour on the command line (issue 17): options where they type them, the demo's store found,
`curator runs` as the README promises it, `T` writing only what was chosen, and a README that works from a clone."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Iterator

import click
import pytest
from data_helpers import run_cli
from tui_fixtures import make_store, wait_until

from conftest import REPO
from curator.app import CuratorApp
from curator.cli import cli
from curator.screens.runs import RunsScreen
from curator.screens.train_form import TrainForm
from curator.settings import Config, load
from store import Store
from textual.widgets import Input

README = (REPO / "README.md").read_text()
XLAM = REPO / "tests" / "data" / "xlam" / "xlam_examples.json"


# -- 1. --db, --config and --annotator after the command's name ---------------------------------------------
def command_paths(group: click.Group, ctx: click.Context, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and subcommand of ``group``, as the words that name it."""
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from command_paths(command, ctx, (*prefix, name))


def test_every_command_takes_the_shared_options_after_its_name(tmp_path: Path) -> None:
    root_ctx = cli.make_context("curator", [], resilient_parsing=True)
    paths = list(command_paths(cli, root_ctx))
    assert {("import",), ("export",), ("stats",), ("runs",), ("train", "sft"), ("toolset", "list")} <= set(paths)
    given = {"db": str(tmp_path / "x.db"), "config": str(tmp_path / "c.toml"), "annotator": "ana"}
    after = [word for name, value in given.items() for word in (f"--{name}", value)]
    for path in paths:
        ctx = cli.make_context("curator", [], resilient_parsing=True)
        command: click.Command = cli
        for i, name in enumerate(path):
            command = command.get_command(ctx, name)  # type: ignore[attr-defined]
            words = list(after) if i == len(path) - 1 else []  # click consumes the list it parses
            ctx = command.make_context(name, words, parent=ctx, resilient_parsing=True)
        assert {k: ctx.find_root().obj[k] for k in given} == given, f"curator {' '.join(path)} --db … is not taken"


def test_db_after_the_name_is_the_store_each_command_uses(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "x.db")
    assert run_cli(capsys, "import", str(XLAM), "--db", db)[0] == 0
    code, out, _ = run_cli(capsys, "stats", "--json", "--db", db)
    assert code == 0 and json.loads(out)["trajectories"] == 2
    code, out, _ = run_cli(capsys, "export", "all.jsonl", "--db", db, "--status", "all")
    assert code == 0 and len((tmp_path / "all.jsonl").read_text().splitlines()) == 2
    for args in (["flag"], ["runs"], ["toolset", "list"], ["train", "sft", "--help"]):
        assert run_cli(capsys, *args, "--db", db)[0] == 0, args
    assert not (tmp_path / "curator.db").exists()  # nothing fell back to the default store


def test_the_value_after_the_name_wins(tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "x.db")
    assert run_cli(capsys, "--db", str(tmp_path / "other.db"), "import", str(XLAM), "--db", db)[0] == 0
    assert Path(db).is_file() and not (tmp_path / "other.db").exists()
    code, _, err = run_cli(capsys, "stats", "--annotator", " ", "--db", db)
    assert code == 1 and err == "error: --annotator: must name the annotator, got an empty string\n"


# -- 2. after `curator demo`, the other commands find its store ---------------------------------------------
@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[CuratorApp]:
    """The apps the CLI would run, captured instead of run."""
    apps: list[CuratorApp] = []
    monkeypatch.setattr(CuratorApp, "run", lambda app: apps.append(app))
    return apps


def test_after_the_demo_the_other_commands_say_where_its_store_is(tmp_path: Path, capsys, monkeypatch,
                                                                   opened: list[CuratorApp]) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "demo")[0] == 0
    assert opened.pop().store.path == "curator-demo.db" and (tmp_path / "curator-demo.db").is_file()
    for args in (["stats"], ["export", "out.jsonl"], ["runs"], ["flag"], ["agreement"]):
        code, out, err = run_cli(capsys, *args)
        assert (code, out) == (1, ""), args
        assert err == "error: no store at curator.db; the demo wrote curator-demo.db: pass --db curator-demo.db\n"
    code, out, _ = run_cli(capsys, "stats", "--db", "curator-demo.db")
    assert code == 0 and out.startswith("curator-demo.db: ")
    assert run_cli(capsys, "demo", "--db", "mine.db")[0] == 0  # --db after the name chooses the demo's store too
    assert opened.pop().store.path == "mine.db"


def test_without_a_demo_store_a_missing_store_is_named_alone(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "stats")[1:] == ("", "error: curator.db: no such store\n")


# -- 3. `curator runs`: the README's columns, and the final loss ------------------------------------------
def test_runs_lists_data_start_duration_and_the_last_logged_loss(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    db = tmp_path / "runs.db"
    with Store.open(db) as store:
        sft = store.create_run("train", "sft", "tiny", {"max_steps": 3}, dataset={"trajectories": 7})
        store.update_run(sft, status="completed", started_at="2026-01-01T10:00:05.000Z",
                         finished_at="2026-01-01T10:01:17.000Z", summary={"steps": 3, "train_loss": 6.55})
        for step, loss in ((1, 6.94), (2, 6.47), (3, 6.24)):
            store.add_run_metrics(sft, step, {"loss": loss, "learning_rate": 2e-4})
        ev = store.create_run("eval", "eval", "tiny", {})
        store.update_run(ev, status="completed", started_at="2026-01-01T10:02:00.000Z",
                         finished_at="2026-01-01T10:02:09.000Z", dataset={"items": 4},
                         summary={"metrics": {"ts": 0.75, "pi": 0.5, "cf": 0.25, "n": 4}})
    try:
        code, out, _ = run_cli(capsys, "runs", "--db", str(db))
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["id", "kind", "algo", "status", "model", "dataset", "started", "duration", "result"]
    by_kind = {row.split()[1]: row for row in rows}
    assert "7 traj" in by_kind["train"] and "01-01 10:00" in by_kind["train"] and "1m 12s" in by_kind["train"]
    assert by_kind["train"].endswith("loss 6.240 after 3 steps")  # the last logged loss, not the run's mean 6.55
    assert "4 gold" in by_kind["eval"] and "9s" in by_kind["eval"] and by_kind["eval"].endswith(
        "TS 75%  PI 50%  CF 25%  (n=4)")
    listed = [json.loads(line) for line in run_cli(capsys, "runs", "--json", "--db", str(db))[1].splitlines()]
    assert [run["final_loss"] for run in listed] == [None, 6.24]


# -- 4. the first T saves only what the user chose ---------------------------------------------------------
async def choose_and_start(tmp_path: Path, monkeypatch, **fields: str) -> Config:
    """T on an accepted store, the dialog's fields set, Enter; the run's start is recorded, not made."""
    started: list[str] = []
    monkeypatch.setattr("curator.app.export_and_train", lambda db, settings, policy: started.append(db) or "run")
    store = make_store(tmp_path / "c.db")
    store.decide("traj-01", "accept", annotator="ann")
    config = load(tmp_path / "curator.toml") if (tmp_path / "curator.toml").exists() else Config(
        path=tmp_path / "curator.toml")
    app = CuratorApp(store, config, screen="review", annotator="ann")
    async with app.run_test(size=(130, 40)) as pilot:
        await pilot.press("T")
        await wait_until(pilot, lambda: isinstance(app.screen, TrainForm))
        for name, value in fields.items():
            app.screen.query_one(f"#{name}", Input).value = value
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen) and started)
    return config


async def test_the_first_T_writes_only_the_keys_chosen(tmp_path: Path, monkeypatch) -> None:
    await choose_and_start(tmp_path, monkeypatch, max_steps="3", lora_r="4")
    assert tomllib.loads((tmp_path / "curator.toml").read_text()) == {"train": {"max_steps": 3, "lora_r": 4}}


async def test_T_with_the_defaults_writes_no_file(tmp_path: Path, monkeypatch) -> None:
    await choose_and_start(tmp_path, monkeypatch)
    assert not (tmp_path / "curator.toml").exists()


async def test_T_keeps_the_other_tables_of_the_file_as_they_were(tmp_path: Path, monkeypatch) -> None:
    mine = {"simulate": {"backend": "scripted", "n": 20}, "review": {"annotator": "ana"}, "team": {"x": 1},
            "train": {"algorithm": "sft", "epochs": 2.0}, "flag": {"mask_instability": False}}
    (tmp_path / "curator.toml").write_text(
        "[simulate]\nbackend = 'scripted'\nn = 20\n[review]\nannotator = 'ana'\n[team]\nx = 1\n"
        "[train]\nalgorithm = 'sft'\nepochs = 2.0\n[flag]\nmask_instability = false\n")
    await choose_and_start(tmp_path, monkeypatch, max_steps="5")
    saved = tomllib.loads((tmp_path / "curator.toml").read_text())
    assert saved == {**mine, "train": {"epochs": 2.0, "max_steps": 5}}  # default-valued keys the user wrote: kept


# -- 5. the README's training options are the ones --help lists --------------------------------------------
def code_lines(text: str) -> list[str]:
    """The lines of the README's ```sh blocks, comments cut."""
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    return [re.sub(r"\s+#.*", "", line).strip() for block in blocks for line in block.splitlines() if line.strip()]


def command_help(words: tuple[str, ...], capsys) -> str:
    if words[0] == "python":
        return subprocess.run([sys.executable, *words[1:], "--help"], capture_output=True, text=True,
                              check=True, cwd=REPO).stdout
    code, out, _ = run_cli(capsys, *words[1:], "--help")
    assert code == 0, words
    return out


#: A training command the README shows (not a placeholder such as <algorithm>), and the rest of its line.
TRAINING_COMMAND = re.compile(r"(curator train \w+|curator eval|python -m training \w+)\b(.*)")


def training_examples() -> dict[tuple[str, ...], set[str]]:
    """Each `curator train ALG` / `curator eval` / `python -m training CMD` the README shows, with its options:
    the examples, the inline commands, and the options the SFT paragraph names."""
    inline = re.findall(r"`((?:curator (?:train|eval)|python -m training) [^`]*)`", README)
    sft = README[README.index("- **SFT**"):README.index("- **GRPO**")]
    examples: dict[tuple[str, ...], set[str]] = {}
    for line in [*code_lines(README), *inline, *(f"curator train sft {o}" for o in re.findall(r"`(--[^`]+)`", sft))]:
        if found := TRAINING_COMMAND.fullmatch(line):
            examples.setdefault(tuple(found[1].split()), set()).update(re.findall(r"--[a-z][a-z0-9-]*", found[2]))
    return examples


def test_the_readme_training_examples_use_options_their_help_lists(capsys) -> None:
    examples = training_examples()
    assert {"--w-max", "--no-mae", "--curriculum", "--resume"} <= examples[("curator", "train", "sft")]
    assert ("python", "-m", "training", "preview") in examples
    for command, options in examples.items():
        listed = set(re.findall(r"--[a-z][a-z0-9-]*", command_help(command, capsys)))
        assert options <= listed, f"{' '.join(command)} --help lacks {sorted(options - listed)}"


# -- 6. the README works from a fresh clone -----------------------------------------------------------------
def test_no_readme_example_depends_on_files_outside_the_clone() -> None:
    assert not [line for line in code_lines(README) if "../" in line]


def test_the_readme_data_examples_run_from_a_clone(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "tests").symlink_to(REPO / "tests")  # the clone's files, the outputs in a directory of their own
    monkeypatch.chdir(tmp_path)
    section = README[README.index("## Data in and out"):README.index("### Formats")]
    lines = [line for line in code_lines(section) if line.split()[1] != "eval"]  # eval asks a model server
    assert len(lines) >= 8
    for line in lines:
        code, out, err = run_cli(capsys, *shlex.split(line)[1:])
        assert code == 0, f"{line}: {err}"


def test_the_quickstart_makes_a_virtualenv_in_two_commands() -> None:
    quickstart = README[README.index("## Quickstart"):README.index("<!-- manual -->")]
    install, tests = code_lines(quickstart)
    steps = install.split(" && ")
    assert steps[0].startswith("python3.11 -m venv ") and steps[1].startswith(". ") and "activate" in steps[1]
    assert steps[2:] == ["pip install -e .", "curator demo"]
    assert tests.endswith("pytest -q")
