"""Snapshots of the watch, review and help screens on a fixed store (update: pytest --snapshot-update)."""
from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from tui_fixtures import make_store

from curator.app import CuratorApp
from curator.settings import Config

SIZE = (130, 40)


def app_on(tmp_path: Path, screen: str) -> CuratorApp:
    return CuratorApp(make_store(tmp_path / "snap.db"), Config(), screen=screen, annotator="ann")


def pressing(*keys: str):  # noqa: ANN201
    """Press the keys, then wait for the counting workers, so the screenshot never races them."""
    async def run_before(pilot: Pilot) -> None:
        await pilot.press(*keys)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


def test_review_screen(snap_compare, tmp_path: Path) -> None:
    # a decided trajectory, then the flagged and masked step of the next one, a note on it
    assert snap_compare(app_on(tmp_path, "review"), terminal_size=SIZE,
                        run_before=pressing("J", "a", "K", "j", "j", "n", *"retry", "enter"))


def test_watch_screen(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(app_on(tmp_path, "watch"), terminal_size=SIZE, run_before=pressing())


def test_help_screen(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(app_on(tmp_path, "review"), terminal_size=(130, 80), run_before=pressing("question_mark"))
