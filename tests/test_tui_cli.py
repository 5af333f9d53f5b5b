"""`curator`, `curator review`, `curator watch` and `curator demo` open the app where they should."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner
from tui_fixtures import make_store, wait_until

from curator.app import CuratorApp
from curator.cli import cli
from curator.settings import Config
from curator.cli.app import PacedScripted
from curator.sim import SimConfig, Simulation
from curator.widgets.queue_view import QueueView
from store.taxonomy import MaskPolicy
from store import Store


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[CuratorApp]:
    """The apps the CLI would run, captured instead of run."""
    apps: list[CuratorApp] = []

    def capture(app: CuratorApp) -> None:
        apps.append(app)
        assert app.store.conn.execute("SELECT 1").fetchone()  # the store is open while the app runs

    monkeypatch.setattr(CuratorApp, "run", capture)
    return apps


@pytest.mark.parametrize(("args", "screen"), [([], "home"), (["review"], "review"), (["watch"], "watch")])
def test_commands_open_their_screen(tmp_path: Path, opened: list[CuratorApp], args: list[str], screen: str) -> None:
    db = tmp_path / "c.db"
    result = CliRunner().invoke(cli, ["--db", str(db), *args], obj={})
    assert result.exit_code == 0, result.output
    [app] = opened
    assert app.first_screen == screen and app.store.path == str(db) and app.start_simulation is None


def test_demo_simulates_into_a_new_store_then_reviews_it(tmp_path: Path, opened: list[CuratorApp],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(cli, ["demo"], obj={}).exit_code == 0
    app = opened.pop()
    assert app.store.path == "curator-demo.db" and app.first_screen == "watch"
    with Store.open(tmp_path / "curator-demo.db") as store:
        simulation = app.start_simulation(store)
    assert isinstance(simulation.backend, PacedScripted)
    assert simulation.config.backend == "scripted" and simulation.config.toolset == "weather"  # held out of the demo base
    with Store.open(tmp_path / "curator-demo.db") as store:
        assert len(list(store.gold_items("weather"))) == 60 and store.setting("train_preset") == "demo"
    with Store.open(tmp_path / "curator-demo.db") as store:
        store.new_trajectory("weather", "already here")
    assert CliRunner().invoke(cli, ["demo"], obj={}).exit_code == 0
    app = opened.pop()
    assert app.first_screen == "review" and app.start_simulation is None
    assert CliRunner().invoke(cli, ["--db", "other.db", "demo"], obj={}).exit_code == 0
    assert opened.pop().store.path == "other.db"


async def test_the_demo_simulation_runs_when_the_watch_screen_opens(tmp_path: Path) -> None:
    with make_store(tmp_path / "demo.db") as store:
        config = SimConfig(toolset="weather", n=4, backend="scripted", seed=1)
        simulate = partial(Simulation, config=config, policy=MaskPolicy.of())
        app = CuratorApp(store, Config(), screen="watch", simulate=simulate)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            await app.workers.wait_for_complete()
            await wait_until(pilot, lambda: app.screen.query_one(QueueView).total == 8)
        made = store.conn.execute("SELECT count(*) FROM trajectories WHERE backend = 'scripted'").fetchone()[0]
        assert made == 8
