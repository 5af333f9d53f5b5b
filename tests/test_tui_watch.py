"""The watch screen: start and stop a scripted simulation from the app, follow another writer live."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Input, Select
from tui_fixtures import make_store, screen_text, wait_until

from curator.app import CuratorApp
from curator.settings import Config
from curator.screens.simulate_form import SimulateForm
from curator.screens.watch import WatchScreen
from curator.widgets.conversation import ConversationView
from curator.widgets.queue_view import QueueView
from store import Message, Store

SIZE = (140, 44)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with make_store(tmp_path / "watch.db") as opened:
        yield opened


def watch_app(store: Store) -> CuratorApp:
    return CuratorApp(store, Config(), screen="watch", annotator="ann")


def finished_here(store: Store) -> int:
    """Trajectories a simulation started in the test has finished (the fixture's own are traj-01 … traj-04)."""
    return store.conn.execute(
        "SELECT count(*) FROM trajectories WHERE id NOT LIKE 'traj-%' AND status != 'running'").fetchone()[0]


async def test_start_a_scripted_simulation_from_the_app(store: Store) -> None:
    app = watch_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        form = app.screen
        assert isinstance(form, SimulateForm)
        form.query_one("#toolset", Select).value = "weather"
        form.query_one("#n", Input).value = "3"
        form.query_one("#concurrency", Input).value = "2"
        await pilot.press("ctrl+s")
        screen = app.screen
        assert isinstance(screen, WatchScreen)
        await wait_until(pilot, lambda: screen.simulation is None and finished_here(store) == 3)  # in a worker
        new = store.conn.execute(
            "SELECT status, count(*) FROM trajectories WHERE backend = 'scripted' AND id NOT LIKE 'traj-%' "
            "GROUP BY status").fetchall()
        assert sum(n for _, n in new) == 3 and {s for s, _ in new} <= {"complete", "failed"}
        complete = store.conn.execute("SELECT count(*) FROM trajectories WHERE status = 'complete'").fetchone()[0]
        await wait_until(pilot, lambda: f"✓ complete {complete}" in screen_text(app))  # counted once a second
        assert "● running 0" in screen_text(app)
        queue, conversation = screen.query_one(QueueView), screen.query_one(ConversationView)
        newest = store.conn.execute("SELECT id FROM trajectories ORDER BY rowid DESC LIMIT 1").fetchone()[0]
        await wait_until(pilot, lambda: queue.total == 7 and conversation.shown is not None
                         and conversation.shown.trajectory.id == newest)  # all listed, following the newest


async def test_stop_ends_the_running_trajectories(store: Store) -> None:
    app = watch_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        form = app.screen
        form.query_one("#toolset", Select).value = "weather"
        form.query_one("#n", Input).value = "20000"
        form.query_one("#concurrency", Input).value = "2"
        await pilot.press("enter")
        screen = app.screen
        await wait_until(pilot, lambda: store.conn.execute(
            "SELECT count(*) FROM trajectories WHERE id NOT LIKE 'traj-%'").fetchone()[0] >= 2)
        assert "with the scripted backend (offline: simulated demo data" in screen_text(app)
        await pilot.press("x")
        await wait_until(pilot, lambda: screen.simulation is None)
        made = store.conn.execute("SELECT count(*) FROM trajectories WHERE id NOT LIKE 'traj-%'").fetchone()[0]
        assert made < 20000
        assert store.conn.execute("SELECT count(*) FROM trajectories WHERE status = 'running'").fetchone()[0] == 0
        await pilot.press("x")  # nothing left to stop: a warning, no crash
        assert isinstance(app.screen, WatchScreen)


async def test_follows_another_writer_live(store: Store) -> None:
    app = watch_app(store)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        conversation = screen.query_one(ConversationView)
        with Store.open(store.path) as other:  # a headless `curator simulate` in another terminal
            new = other.new_trajectory("weather", "Snow in Oslo?", backend="scripted")
            other.append_message(new, Message("user", "Will it snow in Oslo?"))
            await wait_until(pilot, lambda: conversation.shown and conversation.shown.trajectory.id == new)
            await wait_until(pilot, lambda: "● running 1" in screen_text(app))
            other.append_message(new, Message("assistant", None, tool_calls=[{
                "id": "c1", "type": "function",
                "function": {"name": "getWeatherForecast", "arguments": json.dumps({"town": "Oslo"})}}]))
            other.append_message(new, Message("tool", '{"error": "unexpected keyword argument \'town\'"}',
                                              tool_call_id="c1"))
            other.add_tag(new, "param_hallucination", 2, source="auto")
            await wait_until(pilot, lambda: len(conversation.shown.trajectory.messages) == 3)
            await wait_until(pilot, lambda: "⚑ param_hallucination (auto)" in screen_text(app))
            assert conversation.cursor == 2  # following: the newest message is in view
            other.set_status(new, "complete")
            await wait_until(pilot, lambda: "● running 0" in screen_text(app))


async def test_moving_in_the_list_stops_following_and_f_resumes(store: Store) -> None:
    app = watch_app(store)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        conversation = screen.query_one(ConversationView)
        await pilot.pause()
        assert conversation.shown.trajectory.id == "traj-04"
        await pilot.press("down", "down")
        assert not screen.following and conversation.shown.trajectory.id == "traj-02"
        with Store.open(store.path) as other:
            new = other.new_trajectory("weather", "Wind in Perth?")
            await wait_until(pilot, lambda: "Wind in Perth?" in screen_text(app))  # listed
            assert conversation.shown.trajectory.id == "traj-02"  # but not shown: it stays where the annotator put it
            await pilot.press("f")
            await wait_until(pilot, lambda: conversation.shown.trajectory.id == new)
