"""`T` end to end: the settings dialog, the snapshot, a real tiny-model run followed on the runs screen, cancel, crash.

The tests marked slow start real `python -m training` processes (the tiny model, a few steps on CPU);
the dialog's own tests start none.
"""
from __future__ import annotations

import json
import os
import signal
import tomllib
from pathlib import Path
from typing import Iterator

import pytest
from textual.widgets import Input, Select
from tui_fixtures import call, make_store, screen_text, wait_until

from curator.app import CuratorApp
from curator.settings import Config, TrainSettings
from curator.launcher import ACTIVE
from curator.reaping import is_run_process
from curator.screens.runs import RunsScreen
from curator.screens.train_form import TrainForm
from curator.widgets.run_panels import LossCurve
from store import Correction, Store

SIZE = (130, 40)
#: A run's process takes a few seconds to import torch and build the tiny model; a loaded machine is slower.
RUN_TIMEOUT = 90.0


@pytest.fixture(autouse=True)
def no_run_left_behind(tmp_path: Path) -> Iterator[None]:
    """A test that fails half-way does not leave its training processes running."""
    yield
    if (tmp_path / "c.db").exists():
        with Store.open(tmp_path / "c.db") as store:
            for run in store.runs():
                if run.status in ACTIVE and run.pid and is_run_process(run.pid, run.id):
                    os.kill(run.pid, signal.SIGKILL)


def accepted_store(tmp_path: Path) -> Store:
    store = make_store(tmp_path / "c.db")
    for trajectory_id in ("traj-01", "traj-02", "traj-04"):
        store.decide(trajectory_id, "accept", annotator="ann")
    return store


def app_on(store: Store, tmp_path: Path, train: TrainSettings | None = None) -> CuratorApp:
    config = Config(path=tmp_path / "curator.toml", train=train or TrainSettings())
    return CuratorApp(store, config, screen="review", annotator="ann")


def status(store: Store, run_id: str) -> str | None:
    run = store.run(run_id)
    return run.status if run else None


async def start_from_dialog(pilot, app: CuratorApp, store: Store, **fields: str) -> str:  # noqa: ANN001 (a Pilot)
    """Press T, fill the dialog, press Enter; the started run's id once the runs screen shows it."""
    before = {r.id for r in store.runs()}
    await pilot.press("T")
    await wait_until(pilot, lambda: isinstance(app.screen, TrainForm))
    for name, value in fields.items():
        app.screen.query_one(f"#{name}", Input).value = value
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.selected not in before | {None})
    return app.screen.selected


@pytest.mark.slow
async def test_T_exports_trains_and_plots_then_T_again_starts_at_once(tmp_path: Path) -> None:
    store = accepted_store(tmp_path)
    app = app_on(store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        run_id = await start_from_dialog(pilot, app, store, max_steps="3", lora_r="4")
        saved = tomllib.loads((tmp_path / "curator.toml").read_text())
        assert saved == {"train": {"max_steps": 3, "lora_r": 4}}  # only what differs: no default pinned
        assert store.run(run_id).config["learning_rate"] == 0.005  # (the base model's: it follows the model)

        run = store.run(run_id)
        snapshot = run.dataset["snapshot"]
        assert Path(snapshot["dir"]).parent == tmp_path / "exports" and snapshot["trajectories"] == 3
        lines = Path(snapshot["jsonl"]).read_text().splitlines()
        assert sorted(json.loads(line)["id"] for line in lines) == ["traj-01", "traj-02", "traj-04"]
        assert Path(snapshot["sqlite"]).is_file() and run.config["data"] == snapshot["sqlite"]

        await wait_until(pilot, lambda: status(store, run_id) == "completed", RUN_TIMEOUT)
        curve = app.screen.query_one(LossCurve)
        await wait_until(pilot, lambda: len(curve.points) == 3)
        assert [step for step, _ in curve.points] == [1, 2, 3] and "training loss (3 steps)" in screen_text(app)
        assert store.run(run_id).config["lora_r"] == 4

        # again: no dialog, the remembered settings; then cancel the new run with x on the runs screen
        await pilot.press("r", "T")
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.selected != run_id)
        second = app.screen.selected
        assert {k: v for k, v in store.run(second).config.items() if k not in ("data", "output")} == {
            k: v for k, v in run.config.items() if k not in ("data", "output")}
        await pilot.press("x")
        await wait_until(pilot, lambda: status(store, second) == "cancelled", RUN_TIMEOUT)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "dpo"])
async def test_T_trains_grpo_and_dpo_on_what_was_reviewed(tmp_path: Path, algorithm: str) -> None:
    store = accepted_store(tmp_path)
    # DPO's pair: the annotator's fix of the call that forgot the city, preferred to the original
    store.add_correction(Correction("traj-01", 2, [call("c1", "getWeatherForecast", {"city": "Paris", "days": 3})],
                                    annotator="ann"))
    app = app_on(store, tmp_path, TrainSettings(algorithm))
    async with app.run_test(size=SIZE) as pilot:
        run_id = await start_from_dialog(pilot, app, store, max_steps="2")
        await wait_until(pilot, lambda: status(store, run_id) in {"completed", "failed"}, RUN_TIMEOUT)
        run = store.run(run_id)
        assert (run.algorithm, run.status, run.error) == (algorithm, "completed", None)
        assert [step for step, _ in store.run_metrics(run_id, "loss")][-1] == 2
        assert (Path(run.output_dir) / "adapter_model.safetensors").is_file()
        if algorithm == "dpo":
            assert run.dataset["pairs"] == 1 and run.dataset["correction_pairs"] == 1
        assert run.config["learning_rate"] == {"grpo": 1e-5, "dpo": 5e-6}[algorithm]  # their own rates, not SFT's


@pytest.mark.slow
async def test_quitting_leaves_the_run_going_and_a_new_session_follows_and_cancels_it(tmp_path: Path) -> None:
    store = accepted_store(tmp_path)
    app = app_on(store, tmp_path, TrainSettings("sft", {"max_steps": 100_000}))
    async with app.run_test(size=SIZE) as pilot:
        run_id = await start_from_dialog(pilot, app, store)
    assert is_run_process(store.run(run_id).pid, run_id), "the run outlives the app"

    async with (app := CuratorApp(store, Config(), screen="runs", annotator="ann")).run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, RunsScreen) and screen.selected == run_id
        curve = screen.query_one(LossCurve)
        await wait_until(pilot, lambda: status(store, run_id) == "running" and len(curve.points) >= 2, RUN_TIMEOUT)
        await pilot.press("x")
        await wait_until(pilot, lambda: status(store, run_id) == "cancelled", RUN_TIMEOUT)
        assert list(Path(store.run(run_id).output_dir).glob("checkpoint-*")), "a cancelled run keeps a checkpoint"
        await wait_until(pilot, lambda: "cancelled" in screen_text(app))


@pytest.mark.slow
async def test_a_run_that_crashes_shows_failed_and_its_error(tmp_path: Path) -> None:
    store = accepted_store(tmp_path)
    app = app_on(store, tmp_path)
    missing = str(tmp_path / "no-such-model")
    async with app.run_test(size=SIZE) as pilot:
        run_id = await start_from_dialog(pilot, app, store, base_model=missing)
        await wait_until(pilot, lambda: status(store, run_id) == "failed", RUN_TIMEOUT)
        assert "model not found" in store.run(run_id).error
        await wait_until(pilot, lambda: "error: model not found" in screen_text(app))


async def test_T_refuses_when_nothing_is_accepted(tmp_path: Path) -> None:
    store = make_store(tmp_path / "c.db")
    app = app_on(store, tmp_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("T")
        await wait_until(pilot, lambda: "Nothing to train on" in screen_text(app))
        assert not isinstance(app.screen, TrainForm)
        assert store.runs() == [] and not (tmp_path / "exports").exists()


async def test_t_on_the_runs_screen_opens_the_dialog_again_with_the_remembered_choice(tmp_path: Path) -> None:
    store = accepted_store(tmp_path)
    app = app_on(store, tmp_path, TrainSettings("grpo", {"base_model": "org/model", "max_steps": 7}))
    app.train_chosen = True
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("R", "t")
        await wait_until(pilot, lambda: isinstance(app.screen, TrainForm))
        assert app.screen.query_one("#base_model", Input).value == "org/model"
        assert app.screen.query_one("#max_steps", Input).value == "7"
        assert app.screen.query_one("#algorithm", Select).value == "grpo"
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen) and store.runs() == []


async def test_the_learning_rate_follows_the_base_model_until_the_user_sets_one(tmp_path: Path) -> None:
    store = accepted_store(tmp_path)
    app = app_on(store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("T")
        await wait_until(pilot, lambda: isinstance(app.screen, TrainForm))
        base, rate = app.screen.query_one("#base_model", Input), app.screen.query_one("#learning_rate", Input)
        assert rate.value == "0.005"
        base.value = "org/model"
        await pilot.pause()
        assert rate.value == "0.0002"
        rate.value = "1e-4"
        base.value = "tiny"
        await pilot.pause()
        assert rate.value == "1e-4"  # chosen by the user: kept
        await pilot.press("escape")
        assert store.runs() == []


@pytest.mark.parametrize("field, value, problem", [
    ("base_model", "", "name a base model"),
    ("lora_r", "0", "LoRA rank: must be at least 1"),
    ("w_max", "0.5", "w_max (PKT, SFT): must be at least 1"),
])
async def test_the_dialog_refuses_bad_settings(tmp_path: Path, field: str, value: str, problem: str) -> None:
    store = accepted_store(tmp_path)
    app = app_on(store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("T")
        await wait_until(pilot, lambda: isinstance(app.screen, TrainForm))
        app.screen.query_one(f"#{field}", Input).value = value
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, TrainForm) and problem in screen_text(app)
        await pilot.press("escape")
        assert store.runs() == [] and not (tmp_path / "curator.toml").exists()


@pytest.mark.slow
async def test_T_runs_the_itool_loop_and_the_runs_screen_shows_its_rounds(tmp_path: Path) -> None:
    """`T` offers iTool's loop: chosen in the dialog, it runs the warm-up and a round, and the runs screen
    shows them under the loop."""
    store = accepted_store(tmp_path)
    small = {"iterations": 1, "buffer_size": 2, "samples": 2, "dpo_max_steps": 1, "max_new_tokens": 12,
             "eval_limit": 2, "tiny_config": '{"template": "compact"}', "threads": 1}
    app = app_on(store, tmp_path, TrainSettings("sft", small))
    async with app.run_test(size=SIZE) as pilot:
        before = {r.id for r in store.runs()}
        await pilot.press("T")
        await wait_until(pilot, lambda: isinstance(app.screen, TrainForm))
        app.screen.query_one("#algorithm", Select).value = "itool"
        app.screen.query_one("#max_steps", Input).value = "2"
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.selected not in before | {None})
        loop = app.screen.selected
        await wait_until(pilot, lambda: status(store, loop) in {"completed", "failed"}, RUN_TIMEOUT * 2)
        assert (store.run(loop).algorithm, store.run(loop).status, store.run(loop).error) == ("itool", "completed", None)
        parts = [r for r in store.runs() if r.parent_id == loop]
        assert sorted(r.algorithm for r in parts) == ["dpo", "sft"]
        await wait_until(pilot, lambda: "dpo round 1" in screen_text(app) and "sft warm-up" in screen_text(app))
