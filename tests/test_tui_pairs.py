"""The pairs screen and the review queue's score orders, by keyboard (Pilot), asserted on the store and
on what the terminal shows."""
from __future__ import annotations

from pathlib import Path

import pytest
from tui_fixtures import call, make_store, screen_text, wait_until

from curator.app import CuratorApp
from curator.screens.pairs import PairsScreen
from curator.settings import Config
from store import Store
from store.queue import QueueFilter
from store.records import StepPair

SIZE = (140, 40)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with make_store(tmp_path / "pairs.db") as opened:
        yield opened


def add_pairs(store: Store) -> list[int]:
    loop = store.create_run("train", "itool", "tiny", {})
    prefix = [{"role": "system", "content": "You can call the weather tools."},
              {"role": "user", "content": "Alerts for Brittany? \x1b[31m"}]
    chosen = {"role": "assistant", "content": None, "tool_calls": [call("c1", "getWeatherAlerts", {"region": "Brittany"})]}
    return store.add_pairs([
        StepPair([], prefix, chosen, {"role": "assistant", "content": None, "tool_calls": [
            call("c1", "getWeatherForecast", {"city": "Brittany"})]}, round=1, run_id=loop, chosen_reward=1.0,
            rejected_reward=-0.5, rejected_error="wrong_tool"),
        StepPair([], prefix, chosen, {"role": "assistant", "content": "[bold]no idea[/bold]"}, round=2, run_id=loop,
                 rejected_error="parse_error"),
    ])


async def test_a_pair_shows_what_the_judge_finds_wrong_with_its_rejected_step(store: Store) -> None:
    tools = [{"type": "function", "function": {"name": "getWeatherForecast", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"]}}}]
    prefix = [{"role": "user", "content": "Three days in Oslo?"}]
    chosen = {"role": "assistant", "content": None,
              "tool_calls": [call("c1", "getWeatherForecast", {"city": "Oslo", "days": 3})]}
    rejected = {"role": "assistant", "content": None,
                "tool_calls": [call("c1", "getWeatherForecast", {"city": "Oslo", "days": "5\x1b[2J"})]}
    store.add_pairs([StepPair(tools, prefix, chosen, rejected, round=1, rejected_error="content_error")])
    app = CuratorApp(store, Config(), screen="pairs")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "expected 3" in screen_text(app))
        shown = screen_text(app)
        assert "✗ 'days' is '5\\x1b[2J', expected 3" in shown  # one parameter, the escape inert


async def test_pairs_are_accepted_and_rejected_by_key_and_a_rejected_pair_is_not_trainable(store: Store) -> None:
    first, second = add_pairs(store)
    app = CuratorApp(store, Config(), screen="review", annotator="ann")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("P")
        await wait_until(pilot, lambda: isinstance(app.screen, PairsScreen))
        shown = screen_text(app)
        assert "2 pairs · 0 reviewed" in shown and "getWeatherAlerts" in shown and "reward -0.50" in shown
        assert "\\x1b[31m" in shown  # the escape from the data is shown, not acted on
        await pilot.press("x")
        assert store.pair(first).decision == "reject" and store.pair(first).annotator == "ann"
        await wait_until(pilot, lambda: "[bold]no idea[/bold]" in screen_text(app))  # next pending, markup inert
        await pilot.press("a")
        assert store.pair(second).decision == "accept"
        await wait_until(pilot, lambda: "Every pair is reviewed" in screen_text(app))
        assert [p.id for p in store.pairs(trainable=True)] == [second]
        await pilot.press("slash")  # all pairs, then undo the reject of the first
        await wait_until(pilot, lambda: "showing all" in screen_text(app))
        await pilot.press("u")
        assert store.pair(first).decision is None and len(store.pairs(trainable=True)) == 2


async def test_hardest_first_review_shows_each_rows_perplexity(store: Store) -> None:
    store.set_scores("perplexity", {"traj-03": 41.5, "traj-02": 7.25}, model="runs/itool")
    app = CuratorApp(store, Config(), screen="review", annotator="ann", review_filter=QueueFilter(order="hardest"))
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        lines = [line for line in screen_text(app).splitlines() if "Yesterday in Oslo" in line
                 or "Alerts for Brittany" in line or "Forecast for Paris" in line]
        assert "41.5" in lines[0] and "Oslo" in lines[0]
        assert "7.25" in lines[1] and "Brittany" in lines[1]
        assert "–" in lines[2] and "Paris" in lines[2]  # unscored: last, without a number
        assert app.screen.shown.trajectory.id == "traj-03"
