"""The review screen by keyboard: every binding, asserted on the store and on what is shown."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Input, OptionList, Select, Static, TextArea
from tui_fixtures import WEATHER, call, make_store, screen_text, wait_until

from curator.app import CuratorApp
from curator.settings import Config
from curator.screens.call_editor import CallEditor
from curator.screens.help import HelpScreen
from curator.screens.mask_preview import MaskPreview
from curator.screens.review import POLL_SECONDS, ReviewScreen
from curator.widgets.conversation import ConversationView
from curator.widgets.queue_view import PAGE, QueueView
from store import Message, Store, Trajectory

SIZE = (140, 44)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with make_store(tmp_path / "review.db") as opened:
        yield opened


def review_app(store: Store) -> CuratorApp:
    return CuratorApp(store, Config(), screen="review", annotator="ann")


def shown_id(app: CuratorApp) -> str | None:
    screen = app.screen
    assert isinstance(screen, ReviewScreen)
    return screen.shown.trajectory.id if screen.shown else None


def text_of(app: CuratorApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def settle(pilot, app: CuratorApp) -> None:
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_accept_reject_skip_commit_then_move_on(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert shown_id(app) == "traj-01"
        for key, decision, trajectory_id, following in [("a", "accept", "traj-01", "traj-02"),
                                                        ("x", "reject", "traj-02", "traj-03"),
                                                        ("space", "skip", "traj-03", "traj-04")]:
            await pilot.press(key)
            # committed: a separate connection (another process, or the store after kill -9) sees it
            with Store.open(store.path) as other:
                assert other.decision(trajectory_id) == decision
            assert shown_id(app) == following
        await settle(pilot, app)
        progress = text_of(app, "ReviewProgress")
        assert "reviewed 3 / 4" in progress and "accept rate 50%" in progress and "pending (1)" in progress
        row = store.conn.execute("SELECT annotator FROM reviews ORDER BY id DESC LIMIT 1").fetchone()
        assert row[0] == "ann"


async def test_undo_and_backspace_bring_the_trajectory_back(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", "x")
        assert shown_id(app) == "traj-03"
        await pilot.press("u")
        assert store.decision("traj-02") is None and shown_id(app) == "traj-02"
        await pilot.press("backspace")
        assert store.decision("traj-01") is None and shown_id(app) == "traj-01"
        await pilot.press("u")  # nothing left to undo in this session
        assert store.conn.execute("SELECT count(*) FROM reviews").fetchone()[0] == 4


async def test_j_k_and_arrows_move_between_messages(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        conversation = app.screen.query_one(ConversationView)
        assert conversation.cursor == 2  # opens on the first flagged message
        await pilot.press("j", "j")
        assert conversation.cursor == 4
        await pilot.press("k", "up")
        assert conversation.cursor == 2
        await pilot.press("down")
        assert conversation.cursor == 3 and conversation.message.role == "tool"
        await pilot.press("J")  # next trajectory without deciding
        await pilot.pause()
        assert shown_id(app) == "traj-02" and store.decision("traj-01") is None
        await pilot.press("K")
        await pilot.pause()
        assert shown_id(app) == "traj-01"


async def test_tag_picker_adds_and_removes_a_human_tag_and_remasks(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("j", "j")  # message #4: the recovered call, weight 1
        await pilot.press("t")
        picker = app.screen.query_one(OptionList)
        picker.highlighted = picker.get_option_index("wrong_tool")
        await pilot.press("enter")
        tags = {(t.code, t.source) for t in store.effective_tags("traj-01") if t.message_index == 4}
        assert tags == {("wrong_tool", "human")}
        assert store.trajectory("traj-01").messages[4].weight == 0  # wrong_tool masks by default
        assert "⚑ wrong_tool (human)" in screen_text(app)
        await pilot.press("t")
        picker = app.screen.query_one(OptionList)
        picker.highlighted = picker.get_option_index("wrong_tool")
        await pilot.press("enter")
        assert not [t for t in store.effective_tags("traj-01") if t.message_index == 4]
        assert store.trajectory("traj-01").messages[4].weight == 1
        await pilot.press("t", "escape")  # cancelled: nothing written
        assert store.conn.execute("SELECT count(*) FROM tags WHERE source = 'human'").fetchone()[0] == 2


async def test_m_toggles_the_mask_as_a_human_setting(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("m")  # message #2 is masked by the flagger
        message = store.trajectory("traj-01").messages[2]
        assert (message.weight, message.weight_source) == (1, "human")
        await pilot.press("m")
        message = store.trajectory("traj-01").messages[2]
        assert (message.weight, message.weight_source) == (0, "human")
        assert "⊘ masked (human)" in screen_text(app)
        await pilot.press("k", "m")  # the user's message has no weight
        assert store.trajectory("traj-01").messages[1].weight is None


async def test_e_saves_only_a_call_the_schema_accepts(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        editor = app.screen
        assert isinstance(editor, CallEditor)
        assert json.loads(editor.query_one(TextArea).text) == {"days": 3}
        editor.query_one(TextArea).text = json.dumps({"days": "three"})
        await pilot.press("ctrl+s")
        problems = str(editor.query_one("#problems", Static).render())
        assert "param_missing" in problems and "param_invalid" in problems
        assert store.corrections("traj-01") == []
        editor.query_one(TextArea).text = "{not json"
        await pilot.press("ctrl+s")
        assert "not valid JSON" in str(editor.query_one("#problems", Static).render())
        editor.query_one(TextArea).text = json.dumps({"city": "Paris", "days": 3})
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, ReviewScreen)
        [correction] = store.corrections("traj-01")
        assert correction.message_index == 2 and correction.annotator == "ann"
        fixed = correction.tool_calls[0]
        assert fixed["id"] == "c1" and fixed["function"]["name"] == "getWeatherForecast"
        assert json.loads(fixed["function"]["arguments"]) == {"city": "Paris", "days": 3}
        assert "✎ corrected → getWeatherForecast" in screen_text(app)
        assert "⊘ masked (corrected: the fix trains)" in screen_text(app)  # as exports and runs read it
        await pilot.press("k", "e")  # a user message has no call
        assert isinstance(app.screen, ReviewScreen)


async def test_e_walks_every_call_of_a_message_and_saves_them_as_one_correction(tmp_path: Path) -> None:
    with Store.open(tmp_path / "two.db") as store:
        store.add_toolset(WEATHER)
        store.insert_trajectories([Trajectory("two", "weather", "Two cities", "complete", messages=[
            Message("user", "Forecasts for Oslo and Lima?"),
            Message("assistant", None, tool_calls=[call("c1", "getWeatherForecast", {"city": "Oslo", "days": 2}),
                                                   call("c2", "getWeatherForecst", {"city": "Lima", "days": 2})]),
        ])])
        app = review_app(store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app)
            await pilot.press("j", "e")  # from the user's request to the assistant's two calls
            assert "call 1 of 2" in screen_text(app)
            await pilot.press("escape")  # the first call is right: kept as it is
            editor = app.screen
            assert isinstance(editor, CallEditor) and "call 2 of 2" in screen_text(app)
            assert editor.query_one("#name", Input).value == "getWeatherForecst"
            editor.query_one("#name", Input).value = "getWeatherForecast"
            await pilot.press("ctrl+s")
            assert isinstance(app.screen, ReviewScreen)
            [correction] = store.corrections("two")
            assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])["city"])
                    for c in correction.tool_calls] == [("c1", "getWeatherForecast", "Oslo"),
                                                        ("c2", "getWeatherForecast", "Lima")]
            await pilot.press("e", "escape", "escape")  # nothing changed: no second correction
            assert isinstance(app.screen, ReviewScreen) and len(store.corrections()) == 1


async def test_n_adds_a_note_on_the_message(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.press(*"city forgotten")
        await pilot.press("enter")
        [note] = store.notes("traj-01")
        assert (note.text, note.message_index, note.annotator) == ("city forgotten", 2, "ann")
        assert "✍ city forgotten" in screen_text(app)


async def test_slash_filters_the_queue(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("slash")
        app.screen.query_one("#status", Select).value = "failed"
        await pilot.press("enter")  # the text box has focus: Enter applies
        await settle(pilot, app)
        assert shown_id(app) == "traj-03"
        assert app.screen.query_one(QueueView).total == 1
        assert "queue: pending · failed (1)" in text_of(app, "ReviewProgress")
        await pilot.press("slash")
        app.screen.query_one("#status", Select).clear()
        app.screen.query_one("#tag", Select).value = "param_missing"
        await pilot.press("enter")
        await settle(pilot, app)
        assert shown_id(app) == "traj-01" and app.screen.query_one(QueueView).total == 1
        await pilot.press("slash")
        app.screen.query_one("#tag", Select).clear()
        app.screen.query_one("#text", Input).value = "Brittany"
        await pilot.press("enter")
        await settle(pilot, app)
        assert shown_id(app) == "traj-02"
        await pilot.press("slash", "escape")  # cancelled: the filter stays
        assert shown_id(app) == "traj-02"


async def test_another_session_deciding_moves_this_one_on(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        assert shown_id(app) == "traj-01"
        with Store.open(store.path) as other:
            other.decide("traj-01", "accept", annotator="someone else")
        await wait_until(pilot, lambda: shown_id(app) == "traj-02")  # the screen polls once a second
        await pilot.press("a")  # and this session's decision lands beside theirs
        await settle(pilot, app)
        assert store.decision("traj-02") == "accept"
        assert "reviewed 2 / 4" in text_of(app, "ReviewProgress")


async def test_help_screen_lists_every_key(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=(140, 90)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for binding in ReviewScreen.BINDINGS:
            assert binding.description in text
        await pilot.press("escape")
        assert isinstance(app.screen, ReviewScreen)


async def test_command_palette_lists_the_screens_actions(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        titles = {c.title: c for c in app.get_system_commands(app.screen)}
        for title in ("Accept", "Reject", "Skip", "Undo", "Tag", "Mask", "Edit call", "Note", "Filter", "Help"):
            assert title in titles
        await titles["Accept"].callback()
        await pilot.pause()
        assert store.decision("traj-01") == "accept"


async def test_footer_and_screens_flow(store: Store) -> None:
    app = CuratorApp(store, Config(), annotator="ann")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        assert "4 pending" in text_of(app, "#home-summary")
        await pilot.press("r")
        assert isinstance(app.screen, ReviewScreen)
        footer_keys = {b.binding.key for b in app.screen.active_bindings.values() if b.binding.show}
        assert {"a", "x", "space", "u", "t", "e", "slash", "T", "question_mark", "q"} <= footer_keys  # 80 columns
        await pilot.press("w")
        assert type(app.screen).__name__ == "WatchScreen"
        await pilot.press("escape")
        assert type(app.screen).__name__ == "HomeScreen"
        await pilot.press("q")
    assert app.return_code == 0


async def test_a_big_queue_is_paged_not_loaded(tmp_path: Path) -> None:
    n = 3 * PAGE + 17
    with Store.open(tmp_path / "big.db") as store:
        store.insert_trajectories(
            Trajectory(f"t{i:05d}", None, f"request {i}", "complete", messages=[Message("user", f"request {i}")])
            for i in range(n)
        )
        app = review_app(store)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot, app)
            queue = app.screen.query_one(QueueView)
            assert queue.total == n and queue.loaded_rows <= PAGE
            await pilot.press("tab", "end")
            await pilot.pause()
            assert shown_id(app) == f"t{n - 1:05d}" and queue.loaded_rows <= PAGE
            await pilot.press("pageup", "up")
            await pilot.pause()
            assert queue.cursor < n - 2 and shown_id(app) == f"t{queue.cursor:05d}"
            decided = shown_id(app)
            await pilot.press("a")
            await settle(pilot, app)
            assert store.decision(decided) == "accept" and shown_id(app) != decided
            assert queue.total == n - 1


async def test_a_hidden_review_screen_catches_up_when_shown_again(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("w")  # to the watch screen; the review screen stops polling
        with Store.open(store.path) as other:
            other.decide("traj-01", "reject", annotator="someone else")
        await pilot.pause(1.5 * POLL_SECONDS)  # a poll tick falls while it is hidden
        await pilot.press("r")
        await wait_until(pilot, lambda: shown_id(app) == "traj-02")
        await settle(pilot, app)
        assert "reviewed 1 / 4" in text_of(app, "ReviewProgress")


@pytest.mark.slow
async def test_p_previews_the_loss_mask_of_the_shown_trajectory(store: Store) -> None:
    app = review_app(store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        trajectory = app.screen.shown.trajectory
        masked = [m for m in trajectory.messages if m.role == "assistant" and m.weight == 0]
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, MaskPreview) and app.screen.shown is not None, 120)
        shown = app.screen.shown
        assert shown.id == trajectory.id and shown.refused is None
        trained = "".join(text for text, weight in shown.tokens if weight > 0)
        untrained = "".join(text for text, weight in shown.tokens if weight == 0)
        assert masked and all(m.tool_calls[0]["function"]["name"] in untrained for m in masked)
        assert trajectory.instruction not in trained  # the user's words are prompt, never trained
        assert "trained" in screen_text(app) and "key tokens (PKT)" in screen_text(app)
        await pilot.press("escape")
        assert isinstance(app.screen, ReviewScreen)
