"""Issue 17, a newcomer's first hour in the app: what they see at 80×24 (and 160×48), asserted on the screen."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from textual.widgets import Input
from test_tui_runs import finished_runs
from tui_fixtures import make_store, screen_text, wait_until

from curator.app import CuratorApp
from curator.cli.app import DEMO_CONCURRENCY, DEMO_SIZE, DEMO_TOOLSET
from curator.screens.call_editor import CallEditor
from curator.screens.confirm import Confirm
from curator.screens.review import ReviewScreen
from curator.screens.runs import RunsScreen
from curator.screens.simulate_form import SimulateForm
from curator.screens.train_form import TrainForm
from curator.screens.watch import WatchScreen
from curator.settings import Config
from curator.sim import Simulation
from curator.widgets.queue_view import QueueView
from store import Store

SIZES = [(80, 24), (160, 48)]
#: What each screen's footer shows, in order, at 80 columns and wider.
FOOTERS = {
    "review": "a Accept x Reject space Skip u Undo t Tag e Edit / Filter T Train ? Help q Quit",
    "watch": "s Simulate x Stop f Follow r Review ? Help q Quit",
    "runs": "x Cancel a Again e Evaluate T Train t Settings r Review ? Help q Quit",
    "home": "r Review w Watch R Runs ? Help q Quit",
}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with make_store(tmp_path / "newcomer.db") as opened:
        yield opened


def app_on(store: Store, screen: str) -> CuratorApp:
    return CuratorApp(store, Config(), screen=screen, annotator="ann")


def footer(app: CuratorApp) -> str:
    return screen_text(app).splitlines()[-1].strip()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", FOOTERS)
async def test_the_footer_fits_80_columns_with_help_and_quit(store: Store, screen: str, size: tuple[int, int]) -> None:
    app = app_on(store, screen)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        assert footer(app) == FOOTERS[screen]


async def test_keys_left_out_of_the_footer_stay_in_help_and_the_palette(store: Store) -> None:
    app = app_on(store, "review")
    async with app.run_test(size=(80, 24)) as pilot:
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Edit call", "Mask", "Note", "Loss mask", "Next message", "Next trajectory"} <= titles
        await pilot.press("m")  # not in the footer, still bound
        assert store.trajectory("traj-01").messages[2].weight == 1
        await pilot.press("question_mark")
        await pilot.pause()
        assert "Edit call" in screen_text(app) and "Loss mask" in screen_text(app)


# -- the call editor --------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
async def test_the_call_editor_shows_why_it_did_not_save(store: Store, size: tuple[int, int]) -> None:
    app = app_on(store, "review")
    async with app.run_test(size=size) as pilot:
        await pilot.press("e")  # message #2, the call without its city
        assert isinstance(app.screen, CallEditor)
        await pilot.press("ctrl+s")
        text = screen_text(app)
        assert "Not saved — param_missing" in text
        assert "tool" in text and "arguments (JSON)" in text
        assert store.corrections("traj-01") == []


async def test_e_on_a_message_without_a_call_says_so_and_keys_still_work(store: Store) -> None:
    app = app_on(store, "review")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.press("j", "j", "j", "j")  # #6, the final answer: no call
        await pilot.press("e")
        assert isinstance(app.screen, ReviewScreen)
        await wait_until(pilot, lambda: "Message #6 has no tool call" in screen_text(app))  # a toast
        await pilot.press("a")  # not typed into an editor: accepted
        assert store.decision("traj-01") == "accept"


# -- run again ----------------------------------------------------------------------------------------------
async def test_a_on_the_runs_screen_asks_before_running_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    finished_runs(tmp_path / "runs.db", monkeypatch)
    started: list[str] = []
    monkeypatch.setattr("curator.screens.runs.rerun", lambda db, run: started.append(run.id) or "new-run")
    app = CuratorApp(Store.open(tmp_path / "runs.db"), Config(), screen="runs", annotator="ann")
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        for answer in ("n", "escape"):
            await pilot.press("a")
            assert isinstance(app.screen, Confirm)
            assert "Run a1b2c3d4e5f60718 again?" in screen_text(app) and "y / Enter" in screen_text(app)
            await pilot.press(answer)
            await app.workers.wait_for_complete()
            assert isinstance(app.screen, RunsScreen) and started == []
        for answer in ("y", "enter"):
            await pilot.press("a", answer)
            await app.workers.wait_for_complete()
        assert started == ["a1b2c3d4e5f60718"] * 2


async def test_a_on_the_review_screen_still_accepts(store: Store) -> None:
    app = app_on(store, "review")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        assert isinstance(app.screen, ReviewScreen) and store.decision("traj-01") == "accept"


# -- dialogs ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
async def test_the_simulate_and_filter_dialogs_label_every_field(store: Store, size: tuple[int, int]) -> None:
    app = app_on(store, "watch")
    async with app.run_test(size=size) as pilot:
        await pilot.press("s")
        assert isinstance(app.screen, SimulateForm)
        lines = screen_text(app).splitlines()
        for label, value in (("toolset", "weather"), ("backend", "scripted"), ("count", "20"),
                             ("concurrency", "8"), ("seed", "0")):
            assert any(f" {label} " in line and f" {value} " in line for line in lines), label
        await pilot.press("escape", "r", "slash")
        lines = screen_text(app).splitlines()
        for label, value in (("decision", "pending"), ("status", "any"), ("tag", "any"), ("toolset", "any"),
                             ("text", "in any message")):
            assert any(f" {label} " in line and value in line for line in lines), label


@pytest.mark.parametrize("size", SIZES)
async def test_the_train_dialog_names_the_field_that_is_not_a_number(store: Store, size: tuple[int, int]) -> None:
    store.decide("traj-02", "accept")
    app = app_on(store, "review")
    async with app.run_test(size=size) as pilot:
        await pilot.press("T")
        form = app.screen
        assert isinstance(form, TrainForm)
        assert "max steps, when set (not -1), wins over epochs" in screen_text(app)
        form.query_one("#learning_rate", Input).value = "1e"  # the Input lets a number's start through
        await pilot.press("enter")
        assert "Not started — learning rate must be a number, not '1e'" in screen_text(app)
        form.query_one("#learning_rate", Input).value = "0.005"
        form.query_one("#epochs", Input).value = ""
        await pilot.press("enter")
        assert "Not started — epochs is empty" in screen_text(app)
        assert isinstance(app.screen, TrainForm) and store.runs() == []


# -- the watch screen after the demo ------------------------------------------------------------------------
def counters_line(text: str) -> str:
    return text.splitlines()[0]


@pytest.mark.parametrize("size", SIZES)
async def test_after_the_demo_the_watch_screen_agrees_with_its_queue(tmp_path: Path, size: tuple[int, int]) -> None:
    """The demo's simulation (``curator demo``'s toolset, count and concurrency, without its pacing)."""
    config = Config()
    sim = config.simulate.with_changes(toolset=DEMO_TOOLSET, n=DEMO_SIZE, backend="scripted",
                                       concurrency=DEMO_CONCURRENCY)
    with Store.open(tmp_path / "demo.db") as store:
        app = CuratorApp(store, config, screen="watch", annotator="ann",
                         simulate=partial(Simulation, config=sim, policy=config.flag.policy()))
        async with app.run_test(size=size) as pilot:
            screen = app.screen
            assert isinstance(screen, WatchScreen)
            queue = screen.query_one(QueueView)
            await wait_until(pilot, lambda: screen.finished is not None and queue.total == DEMO_SIZE)
            await app.workers.wait_for_complete()  # the count the simulation's end started
            await pilot.pause()
            rows = [queue.row(i) for i in range(queue.total)]
            assert len(rows) == DEMO_SIZE
            by_status = {s: sum(r.status == s for r in rows) for s in ("running", "complete", "failed")}
            flagged = sum(r.flags > 0 for r in rows)
            text = screen_text(app)
            assert counters_line(text).split() == [
                "●", "running", str(by_status["running"]), "✓", "complete", str(by_status["complete"]),
                "✗", "failed", str(by_status["failed"]), "⚑", "flagged", str(flagged), "idle"]
            status_line = " ".join(text.split("idle", 1)[1].split("·")[0].split())
            assert status_line.startswith(f"Simulation done: {by_status['complete']} complete, "
                                          f"{by_status['failed']} failed of {DEMO_SIZE} requested")
            assert "no simulation started here" not in text


# -- the empty store -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
async def test_the_home_screen_of_an_empty_store_says_what_to_do(tmp_path: Path, size: tuple[int, int]) -> None:
    with Store.open(tmp_path / "empty.db") as store:
        app = CuratorApp(store, Config(), annotator="ann")
        async with app.run_test(size=size) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            text = " ".join(screen_text(app).split())
            assert "The store is empty. Press w, then s to simulate" in text and "run `curator demo`" in text
            await pilot.press("w", "s")  # the advice works
            assert isinstance(app.screen, SimulateForm)
