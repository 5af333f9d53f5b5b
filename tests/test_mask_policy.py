"""One mask policy: `[flag] mask_instability = false` reaches the simulation, `curator flag`, review and `T` alike."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from textual.widgets import Checkbox, Select

from curator.app import CuratorApp
from curator.cli import cli
from curator.launcher import export_snapshot
from curator.screens.review import ReviewScreen
from curator.screens.train_form import TrainForm
from curator.settings import load as load_config
from store import Store
from store.taxonomy import MaskPolicy
from data_helpers import read_line
from tui_fixtures import wait_until

CONFIG = """\
[flag]
mask_instability = false

[simulate]
toolset = "weather"
n = 24
seed = 2
instability_rate = 0.4
"""


def weights_by_code(store: Store) -> dict[str, set[int]]:
    """For each auto code, the weights its assistant messages hold in the store."""
    out: dict[str, set[int]] = {}
    for trajectory in store.iter_trajectories():
        weights = {m.index: m.weight for m in trajectory.messages}
        for tag in trajectory.tags:
            if tag.message_index is not None and tag.source == "auto":
                out.setdefault(tag.code, set()).add(weights[tag.message_index])
    return out


def cli_run(db: Path, config: Path, *args: str) -> None:
    result = CliRunner().invoke(cli, ["--db", str(db), "--config", str(config), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture
def simulated(tmp_path: Path) -> tuple[Path, Path]:
    """A store simulated by `curator simulate` under CONFIG, then re-flagged by `curator flag`."""
    db, config = tmp_path / "c.db", tmp_path / "curator.toml"
    config.write_text(CONFIG)
    cli_run(db, config, "simulate")
    with Store.open(db) as store:
        weights = weights_by_code(store)
    assert weights["tool_instability"] == {1}  # kept, as the config says
    assert any(w == {0} for code, w in weights.items() if code != "tool_instability")  # the rest still masks
    cli_run(db, config, "flag")  # re-flagging under the same config changes nothing
    with Store.open(db) as store:
        assert weights_by_code(store) == weights
    return db, config


async def test_keeping_instability_holds_from_simulation_through_review_to_the_training_snapshot(
        simulated: tuple[Path, Path]) -> None:
    db, config = simulated
    with Store.open(db) as store:
        app = CuratorApp(store, load_config(config), screen="review", annotator="ann")
        assert app.policy == MaskPolicy.of(mask_instability=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("slash")
            app.screen.query_one("#tag", Select).value = "tool_instability"
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen.shown is not None
                             and any(t.code == "tool_instability" for t in app.screen.shown.trajectory.tags))
            trajectory = app.screen.shown.trajectory
            shown = {m.index: m.weight for m in trajectory.messages}
            assert {shown[t.message_index] for t in trajectory.tags if t.code == "tool_instability"} == {1}
            await pilot.press("a")
            await wait_until(pilot, lambda: store.decision(trajectory.id) == "accept")
            await pilot.press("T")
            await wait_until(pilot, lambda: isinstance(app.screen, TrainForm))
            assert app.screen.query_one("#mask_instability", Checkbox).value is False
            await pilot.press("escape")
        snapshot = export_snapshot(str(db), app.policy)
    assert snapshot["mask_instability"] is False
    [line] = Path(snapshot["jsonl"]).read_text().splitlines()
    record = read_line(line)
    instability = {t["message"] for t in record["meta"]["tags"] if t["code"] == "tool_instability"}
    assert record["id"] == trajectory.id and {record["messages"][i]["weight"] for i in instability} == {1}
