"""Issue 13: hostile data is shown inert, and hostile input is one error line.

Every string a model, a tool or a file wrote (message content, tool names and descriptions, arguments, tool
answers, notes, toolset names, trajectory ids, reasons, run fields and logs) carries every class of control
character and Rich markup. Wherever it is shown — the review, watch and runs screens, the call editor, the
`p` preview, notifications, the CLI and the real `curator` in a terminal — no raw control byte from it reaches
the terminal and its markup shows as written. Input no reader can take (nesting too deep, lone surrogates,
duplicate function names, non-finite numbers) is one line naming it, exit code ≠ 0, the store unchanged.
"""
from __future__ import annotations

import io
import json
import os
import re
import sys
import unicodedata
from pathlib import Path

import pexpect
import pytest
from click.testing import CliRunner
from data_helpers import run_cli, snapshot, write_jsonl
from rich.console import Console
from textual.widgets import Select, TextArea
from tui_fixtures import screen_text, wait_until

from curator.app import CuratorApp
from curator.cli import cli
from curator.screens.call_editor import CallEditor
from curator.screens.mask_preview import MaskPreview
from curator.settings import Config
from curator.widgets.conversation import ConversationView
from store import Message, Store, Tag, Tool, Toolset, Trajectory
from store.text import BREAK, SIGN, json_text, visible

CURATOR = Path(sys.executable).with_name("curator")

#: Escape sequences a terminal acts on: clear, title (OSC 0), a link (OSC 8), the clipboard (OSC 52), DCS, a
#: cursor report the terminal answers (it types into the app).
SEQUENCES = ["\x1b[2J", "\x1b]0;pwned\x07", "\x1b]8;;file:///etc/passwd\x1b\\here\x1b]8;;\x1b\\",
             "\x1b]52;c;aGFja2Vk\x1b\\", "\x1bP+q544e\x1b\\", "\x1b[6n"]
#: Other control and invisible characters: NUL, backspace, tab, return, DEL, C1 (CSI, NEL), bidi override,
#: zero-width joiner and space, a tag character.
CHARACTERS = ["\x00", "\x08", "\t", "\r", "\x7f", "\x9b31m", "\x85", "\u202e", "\u200d", "\u200b", "\U000e0041"]
MARKUP = ["[red]evil[/red]", "[link=file:///etc/passwd]x[/link]", ":skull:"]
HOSTILE = "".join(SEQUENCES + CHARACTERS) + " " + " ".join(MARKUP)
LONG = "long" * 2000  # one line of 8,000 characters

#: Raw characters that must never reach the terminal from the data.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\U000e0000-\U000e007f]")


def hostile(label: str) -> str:
    return f"{label} {HOSTILE}"


TOOL = "get\x1b[2JWeather[red]evil[/red]"  # a real tool of the toolset, named with an escape and markup
TOOLSET = Toolset(f"tools {HOSTILE}", [
    Tool(TOOL, hostile("description"), {
        "type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "integer"}}, "required": ["q"]}),
    Tool("plain", "A plain tool.", {"type": "object", "properties": {}}),
], hostile("toolset description"))
TRAJECTORY_ID = "traj\x1b]0;title\x07[red]id[/red]"


def call(name: str, arguments: str, call_id: str = "c1") -> dict[str, object]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def hostile_trajectory(trajectory_id: str = TRAJECTORY_ID) -> Trajectory:
    return Trajectory(trajectory_id, TOOLSET.name, hostile("instruction"), "failed", backend="scripted",
                      reason=hostile("reason"), tags=[Tag("other", "human", None, note=hostile("tag note"))],
                      messages=[
        Message("system", hostile("system") + "\n" + LONG),
        Message("user", hostile("user") + "\n" + LONG),
        Message("assistant", hostile("thought"), tool_calls=[call(TOOL, json.dumps({"q": HOSTILE}))]),
        Message("tool", json.dumps({"answer": HOSTILE, "n": [1, 2]}), tool_call_id="c1"),
        Message("assistant", None, tool_calls=[call(hostile("unknown tool"), "{not json " + HOSTILE, "c2")]),
        Message("tool", hostile("raw tool answer"), tool_call_id="c2"),
        Message("assistant", hostile("answer"), raw=hostile("raw output")),
    ])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.db"
    with Store.open(path) as store:
        store.add_toolset(TOOLSET)
        store.insert_trajectories([hostile_trajectory()])
        store.add_note(TRAJECTORY_ID, hostile("note"), 2, annotator="ann")
        store.add_note(TRAJECTORY_ID, hostile("whole note"), None, annotator="ann")
        run_dir = tmp_path / "run \x1b[2J\x1b]0;pwned\x07\x9b [red]evil"  # a path holds no NUL or slash
        run_dir.mkdir()
        (run_dir / "run.log").write_text("\n".join(hostile(f"log line {i}") for i in range(5)) + "\n")
        run_id = store.create_run("train", "sft", hostile("base model"), {"learning_rate": HOSTILE},
                                  output_dir=str(run_dir))
        store.update_run(run_id, status="failed", error=hostile("error"))
    return path


# -- what reaches the terminal ---------------------------------------------------------------------------------
def segments_text(app: CuratorApp) -> str:
    """Every character the app would write for its screen now, its own cursor moves aside."""
    console = Console(width=app.size.width, height=app.size.height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor")
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    return "".join(segment.text for segment in console.render(update) if not segment.control)


def assert_inert(app: CuratorApp, *shown: str) -> None:
    """No raw control byte from the data on screen; ``shown`` (visible forms, markup) appear as written."""
    written = segments_text(app)
    assert not RAW.search(written), repr(RAW.search(written))
    text = screen_text(app)  # an SVG of the screen: a raw control character would not even parse
    for expected in shown:
        assert expected in text, f"{expected!r} not on screen:\n{text}"


def assert_strips_inert(view: ConversationView) -> None:
    """The conversation's every line, scrolled into view or not."""
    written = "".join(segment.text for strip in view._strips for segment in strip)
    assert not RAW.search(written), repr(RAW.search(written))
    assert "\\x1b[2J" in written and "[red]evil[/red]" in written and "\\x9b31m" in written


SIZE = (160, 50)


async def test_the_review_screen_shows_everything_inert(db: Path) -> None:
    app = CuratorApp(Store.open(db), Config(), screen="review", annotator="ann")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        view = app.screen.query_one(ConversationView)
        assert_inert(app, "traj\\x1b]0;title\\x07[red]id[/red]", "reason", "[link=file:///etc/passwd]x[/link]")
        assert_strips_inert(view)
        for _ in range(len(view.shown.trajectory.messages)):  # every message under the cursor, scrolled to it
            await pilot.press("j")
            assert_inert(app)
        await pilot.press("a", "u")  # the undo notification names the trajectory
        await pilot.pause()
        assert_inert(app, "Undid the decision on traj\\x1b]0;title\\x07[red]id[/red]")


async def test_the_call_editor_shows_the_call_inert_and_saves_the_real_name(db: Path) -> None:
    app = CuratorApp(Store.open(db), Config(), screen="review", annotator="ann")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await app.workers.wait_for_complete()
        view = app.screen.query_one(ConversationView)
        view.cursor = 2  # the assistant's call of the hostile tool
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, CallEditor))
        editor = app.screen
        assert_inert(app, visible(TOOL, SIGN))
        arguments = editor.query_one("#arguments", TextArea)
        assert json.loads(arguments.text) == {"q": HOSTILE}  # escaped as JSON: the same value
        arguments.text = arguments.text.replace("{", '{"n": 2,', 1)
        await pilot.press("ctrl+s")
        await pilot.pause()
        [correction] = app.store.corrections(TRAJECTORY_ID)
        fixed = correction.tool_calls[0]["function"]
        assert fixed["name"] == TOOL and json.loads(fixed["arguments"]) == {"q": HOSTILE, "n": 2}
        assert_inert(app, "Saved the correction")


async def test_the_watch_screen_shows_everything_inert(db: Path) -> None:
    app = CuratorApp(Store.open(db), Config(), screen="watch", annotator="ann")
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert_inert(app, "instruction \\x1b[2J")
        assert_strips_inert(app.screen.query_one(ConversationView))


async def test_the_runs_screen_shows_everything_inert(db: Path) -> None:
    app = CuratorApp(Store.open(db), Config(), screen="runs", annotator="ann")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "log line 4" in screen_text(app))
        assert_inert(app, "error \\x1b[2J", "[link=file:///etc/passwd]x[/link]", "[red]evil[/red]")


async def test_the_filter_dialog_lists_toolset_names_inert(db: Path) -> None:
    app = CuratorApp(Store.open(db), Config(), screen="review", annotator="ann")
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("slash")
        await pilot.pause()
        app.screen.query_one("#toolset", Select).expanded = True  # the toolset names, listed
        await pilot.pause()
        assert_inert(app, "toolset", "\\x1b[2J\\x1b]0;pwned")  # the label, then the names listed


@pytest.mark.slow
async def test_the_mask_preview_shows_the_tokens_inert(db: Path) -> None:
    app = CuratorApp(Store.open(db), Config(), screen="review", annotator="ann")
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, MaskPreview) and app.screen.shown is not None, 120)
        assert_inert(app, "traj\\x1b]0;title\\x07[red]id[/red]", "\\x1b[2J")


# -- the CLI -------------------------------------------------------------------------------------------------------
def invoke(db: Path, *args: str) -> str:
    """``curator --db DB ARGS`` through click, output kept as it would reach a terminal (``color``: nothing
    stripped), with the width of a wide one."""
    result = CliRunner().invoke(cli, ["--db", str(db), *args], color=True, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("args, shown", [
    (["stats"], ["tools \\x1b[2J", "[red]evil[/red]", ":skull:"]),
    (["stats", "--json"], ["\\u001b[2J", "\\u009b31m", "[red]evil[/red]"]),
    (["toolset", "list"], ["tools \\x1b[2J", "[link=file:///etc/passwd]x[/link]"]),
    (["toolset", "show", TOOLSET.name], ["get\\x1b[2JWeather[red]evil[/red]", "description \\x1b[2J"]),
    (["runs"], ["base model \\x1b[2J", "error \\x1b[2J"]),
])
def test_cli_output_is_inert(db: Path, args: list[str], shown: list[str]) -> None:
    out = invoke(db, *args)
    assert not RAW.search(out) and "\x1b" not in out, repr(out)
    for expected in shown:
        assert expected in out, out


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``curator ARGS`` through its entry point: (exit code, everything printed)."""
    code, out, err = run_cli(capsys, *args)
    return code, out + err


def test_an_error_naming_a_record_is_one_inert_line(db: Path, tmp_path: Path, capsys) -> None:
    before = snapshot(db)
    record = {"id": TRAJECTORY_ID, "messages": [{"role": "user", "content": "hi"}]}
    path = write_jsonl(tmp_path / "twice.jsonl", [{**record, "id": "new"}, record, record])
    code, out = run(capsys, "--db", str(db), "import", str(path))
    assert code == 1 and out.count("\n") == 1 and "Traceback" not in out
    assert not RAW.search(out) and "traj\\x1b]0;title\\x07[red]id[/red]" in out
    assert snapshot(db) == before


def test_the_real_curator_in_a_terminal_prints_data_inert(db: Path) -> None:
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "200", "LINES": "50"}
    child = pexpect.spawn(str(CURATOR), ["--db", str(db), "toolset", "list"], env=env,
                          dimensions=(50, 200), timeout=60, encoding="utf-8", codec_errors="replace")
    out = child.read()
    child.close()
    assert child.exitstatus == 0, out
    for sequence in SEQUENCES:  # Rich styles the table itself with ESC [ … m; nothing of the data's is raw
        assert sequence not in out
    assert "\x1b]" not in out and "\x1bP" not in out and "\x9b" not in out and "\u202e" not in out
    assert "\\x1b]0;pwned\\x07" in out and "[red]evil[/red]" in out


# -- the one helper ----------------------------------------------------------------------------------------------
def test_visible_escapes_every_class_and_keeps_the_rest() -> None:
    assert visible("a\x1b[2Jb\x9b\x7f\x00") == "a\\x1b[2Jb\\x9b\\x7f\\x00"
    assert visible("\u202e\u200d\ud800\U000e0041") == "\\u202e\\u200d\\ud800\\U000e0041"
    assert visible("x\ty\rz\nw") == "x⇥y␍z↵\nw"
    assert (visible("a\nb", BREAK), visible("a\nb", SIGN)) == ("a\nb", "a↵b")
    assert visible("Zoë 東京 ☀ [red]x[/red]") == "Zoë 東京 ☀ [red]x[/red]"
    invisible = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) in ("Cc", "Cf", "Cs", "Zl", "Zp")]
    assert all(visible(ch, BREAK) != ch for ch in invisible if ch != "\n"), "store/text.py's list is behind"


def test_json_text_escapes_as_json_so_the_value_is_the_same() -> None:
    value = {"q": HOSTILE + "\ud800"}
    text = json_text(json.dumps(value, ensure_ascii=False, indent=2))
    assert not RAW.search(text.replace("\n", "").replace("  ", "")) and json.loads(text) == value
    assert json.loads(json_text('{"raw": "a\x1bb"}')) == {"raw": "a\x1bb"}  # a raw ESC JSON forbids, now escaped


# -- tracebacks and silent acceptance --------------------------------------------------------------------------
DEEP = "[" * 100000


def openapi(**extra: object) -> dict[str, object]:
    return {"openapi": "3.0.0", "info": {"title": "t"}, "paths": {"/x": {"get": {"operationId": "getX"}}}, **extra}


@pytest.mark.parametrize("name, content, command", [
    ("deep.jsonl", '{"messages": ' + DEEP + "\n", ["import"]),
    ("deep.json", DEEP, ["import", "--format", "toolalpaca"]),
    ("doc.json", json.dumps([{"Name": "A", "Documentation": DEEP}]), ["import", "--format", "toolalpaca"]),
    ("deep-openapi.json", json.dumps(openapi())[:-1] + ', "x-deep": ' + DEEP + "}", ["toolset", "add"]),
    ("deep-openapi.json", '{"paths": ' + DEEP, ["simulate", "-n", "1", "--openapi"]),
    ("surrogate.jsonl", '{"messages": [{"role": "user", "content": "\\ud800"}]}\n', ["import"]),
    ("surrogate-id.jsonl", '{"id": "\\udfff", "messages": [{"role": "user", "content": "x"}]}\n', ["import"]),
    ("twice.json", json.dumps([{"name": "f"}, {"name": "g"}, {"name": "f"}]), ["toolset", "add"]),
    ("twice.json", json.dumps([{"name": "f"}, {"name": "f"}]), ["simulate", "-n", "1", "--functions"]),
    ("twice.jsonl", json.dumps({"messages": [{"role": "user", "content": "x"}],
                                "tools": [{"name": "f"}, {"name": "f"}]}) + "\n", ["import"]),
])
def test_bad_files_are_one_line_and_change_nothing(db: Path, tmp_path: Path, capsys, name: str, content: str,
                                                   command: list[str]) -> None:
    path = tmp_path / name
    path.write_text(content)
    before = snapshot(db)
    code, out = run(capsys, "--db", str(db), *command, str(path))
    assert code == 1 and "Traceback" not in out, out
    [line] = out.splitlines()
    assert line.startswith(f"error: {path}") and not RAW.search(line)
    assert ("nested deeper than 100 levels" in line or "lone surrogate" in line or "named 'f'" in line), line
    assert snapshot(db) == before


@pytest.mark.parametrize("mix", ["wrong_tool=nan", "wrong_tool=inf", "wrong_tool=-inf"])
def test_a_non_finite_error_mix_is_refused(db: Path, capsys, mix: str) -> None:
    before = snapshot(db)
    code, out = run(capsys, "--db", str(db), "simulate", "--toolset", "weather", "-n", "1", "--error-mix", mix)
    assert code == 1 and out.splitlines() == ["error: simulate: error_mix: weights must be finite, ≥ 0 and not all 0"]
    assert snapshot(db) == before


@pytest.mark.parametrize("argv, problem", [
    (["--lr", "nan"], "--learning-rate: must be a finite number, got nan"),
    (["--lr", "inf"], "--learning-rate: must be a finite number, got inf"),
    (["--epochs", "nan"], "--epochs: must be a finite number, got nan"),
    (["--lr", "-1"], "--learning-rate: must be above 0"),
    (["--max-steps", "-5"], "--max-steps: must be -1 (the epochs decide) or at least 1"),
    (["--max-steps", "0"], "--max-steps: must be -1 (the epochs decide) or at least 1"),
])
def test_bad_training_numbers_are_one_line_before_any_run(db: Path, capsys, argv: list[str], problem: str) -> None:
    before = snapshot(db)
    code, out = run(capsys, "--db", str(db), "train", "sft", *argv)
    assert code != 0 and "Traceback" not in out and problem in out and len(out.splitlines()) == 1, out
    assert snapshot(db) == before
