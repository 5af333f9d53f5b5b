"""Snapshots of the watch, review and help screens and of the dialogs on a fixed store, at 80×24 (the smallest
terminal the app is laid out for) and 160×48 (update: pytest --snapshot-update)."""
from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from tui_fixtures import make_store

from curator.app import CuratorApp
from curator.settings import Config

SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])


def app_on(tmp_path: Path, screen: str) -> CuratorApp:
    return CuratorApp(make_store(tmp_path / "snap.db"), Config(), screen=screen, annotator="ann")


def pressing(*keys: str):  # noqa: ANN201
    """Press the keys, then wait for the counting workers, so the screenshot never races them."""
    async def run_before(pilot: Pilot) -> None:
        await pilot.press(*keys)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


@SIZES
def test_review_screen(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    # a decided trajectory, then the flagged and masked step of the next one, a note on it
    assert snap_compare(app_on(tmp_path, "review"), terminal_size=size,
                        run_before=pressing("J", "a", "K", "j", "j", "n", *"retry", "enter"))


@SIZES
def test_watch_screen(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(app_on(tmp_path, "watch"), terminal_size=size, run_before=pressing())


@SIZES
def test_call_editor_refusing_a_call(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    # the call without its city, saved as it is: the schema's complaint under the title
    assert snap_compare(app_on(tmp_path, "review"), terminal_size=size, run_before=pressing("e", "ctrl+s"))


@SIZES
def test_train_dialog(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(app_on(tmp_path, "review"), terminal_size=size, run_before=pressing("a", "T"))


def test_help_screen(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(app_on(tmp_path, "review"), terminal_size=(130, 80), run_before=pressing("question_mark"))
