"""The runs screen and curator/launcher.py: snapshots with a mask policy, process checks, cancel, re-run, evaluate."""
from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from tui_fixtures import STAMP, call, make_store, screen_text, wait_until

import store.runs
from curator.app import CuratorApp
from curator.settings import Config, TrainSettings
from curator.settings import load as load_config
from curator.launcher import RunError, cancel_run, evaluate_against_base, export_snapshot, mark_lost, rerun, start_run
from curator.reaping import is_run_process
from curator.screens.runs import RunsScreen
from curator.widgets.run_panels import LossCurve
from store import Message, Store, Trajectory
from store.errors import InputError
from store.taxonomy import MaskPolicy

RUN_TIMEOUT = 90.0


def unstable(trajectory_id: str) -> Trajectory:
    """A trajectory whose first call the tool failed for reasons outside the call (a 503)."""
    return Trajectory(trajectory_id, "weather", "Rome this week", "complete", backend="scripted", created_at=STAMP,
                      updated_at=STAMP, messages=[
        Message("user", "Weather in Rome this week?"),
        Message("assistant", None, tool_calls=[call("c1", "getWeatherForecast", {"city": "Rome"})]),
        Message("tool", "503 Service Unavailable", tool_call_id="c1"),
        Message("assistant", None, tool_calls=[call("c2", "getWeatherForecast", {"city": "Rome"})]),
        Message("tool", json.dumps({"city": "Rome", "forecast": ["sun"]}), tool_call_id="c2"),
        Message("assistant", "Sunny in Rome."),
    ])


def sleeper(*args: str) -> subprocess.Popen[bytes]:
    """A process whose command line holds ``args`` (as a run's holds ``--run-id ID``), once it has exec'd
    (until then /proc shows the forking parent's command line)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *args])
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    deadline = time.monotonic() + 10
    while cmdline.exists() and args[-1].encode() not in cmdline.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


# -- curator/launcher.py ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mask_instability, weight", [(True, 0), (False, 1)])
def test_the_snapshot_is_the_accepted_trajectories_under_the_chosen_mask_policy(tmp_path: Path, mask_instability: bool,
                                                                               weight: int) -> None:
    with make_store(tmp_path / "c.db") as main:
        main.insert_trajectories([unstable("traj-05")])
        for trajectory_id in ("traj-02", "traj-05"):
            main.decide(trajectory_id, "accept")
    snapshot = export_snapshot(str(tmp_path / "c.db"), MaskPolicy.of(mask_instability))
    assert Path(snapshot["dir"]).parent == tmp_path / "exports" and snapshot["trajectories"] == 2
    records = {r["id"]: r for r in map(json.loads, Path(snapshot["jsonl"]).read_text().splitlines())}
    assert sorted(records) == ["traj-02", "traj-05"]
    assert [m.get("weight") for m in records["traj-05"]["messages"] if m["role"] == "assistant"] == [weight, 1, 1]
    with closing(sqlite3.connect(snapshot["sqlite"])) as conn:  # one self-contained file, as exports are
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    with Store.open(snapshot["sqlite"], create=False) as copy:
        assert copy.trajectory_ids(review="accepted") == ["traj-02", "traj-05"]
    with Store.open(tmp_path / "c.db") as main:  # the store itself is not re-flagged
        assert [m.weight for m in main.messages("traj-05") if m.role == "assistant"] == [1, 1, 1]


def test_a_dpo_snapshot_keeps_the_rejected_trajectories_for_its_pairs(tmp_path: Path) -> None:
    with make_store(tmp_path / "c.db") as main:
        main.decide("traj-02", "accept")
        main.decide("traj-03", "reject")
    snapshot = export_snapshot(str(tmp_path / "c.db"), MaskPolicy.of(), with_rejected=True)
    assert snapshot["trajectories"] == 1 and snapshot["sqlite_holds"] == "all"
    with Store.open(snapshot["sqlite"], create=False) as copy:
        assert copy.trajectory_ids(review="rejected") == ["traj-03"]
    assert [json.loads(line)["id"] for line in Path(snapshot["jsonl"]).read_text().splitlines()] == ["traj-02"]


def test_a_snapshot_of_nothing_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    make_store(tmp_path / "c.db").close()
    with pytest.raises(RunError, match="no accepted trajectory"):
        export_snapshot(str(tmp_path / "c.db"), MaskPolicy.of())
    assert list((tmp_path / "exports").iterdir()) == []


def test_the_train_table_holds_only_overrides_and_passes_each_algorithm_its_own() -> None:
    settings = TrainSettings("sft", {"max_steps": -1, "epochs": 2.0, "lora_r": 4, "w_max": 1.0, "mae": False})
    assert settings.argv() == ["--max-steps", "-1", "--epochs", "2.0", "--lora-r", "4", "--w-max", "1.0", "--no-mae"]
    assert TrainSettings("dpo", settings.overrides).argv() == ["--max-steps", "-1", "--epochs", "2.0", "--lora-r", "4"]
    assert TrainSettings("sft").argv() == [] and TrainSettings("sft").config().lora_r == 16


def test_the_sft_learning_rate_follows_the_base_model_unless_the_config_sets_one(tmp_path: Path) -> None:
    def lr(settings: TrainSettings) -> float:
        return settings.config().learning_rate

    assert (lr(TrainSettings()), lr(TrainSettings("sft", {"base_model": "Qwen/Qwen2.5-0.5B-Instruct"}))) == (
        0.005, 0.0002)
    (tmp_path / "curator.toml").write_text('[train]\nbase_model = "org/model"\nlearning_rate = 1e-3\n')
    assert lr(load_config(tmp_path / "curator.toml").train) == 0.001
    (tmp_path / "curator.toml").write_text('[train]\nlearning_rate = "fast"\n')
    with pytest.raises(InputError, match="train.learning_rate.*must be float, got 'fast'"):
        load_config(tmp_path / "curator.toml")
    (tmp_path / "curator.toml").write_text('[train]\nlora_rank = 8\n')
    with pytest.raises(InputError, match="train.lora_rank.*not a training setting"):
        load_config(tmp_path / "curator.toml")
    (tmp_path / "curator.toml").write_text('[train]\nlora_r = 0\n')
    with pytest.raises(InputError, match="--lora-r: must be at least 1"):
        load_config(tmp_path / "curator.toml")


def test_a_process_is_a_run_only_when_its_command_line_names_the_run() -> None:
    proc = sleeper("--run-id", "abc123")
    try:
        assert is_run_process(proc.pid, "abc123")
        assert not is_run_process(proc.pid, "abc12")
    finally:
        proc.kill()
        proc.wait()
    assert not is_run_process(proc.pid, "abc123")


def test_cancel_ends_a_process_that_records_nothing_and_marks_the_run_cancelled(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    with Store.open(db) as s:
        run_id = s.create_run("eval", "eval", "tiny", {})
        proc = sleeper("--run-id", run_id)
        s.update_run(run_id, pid=proc.pid)
    cancel_run(db, run_id)
    assert proc.wait(5) == -signal.SIGTERM
    with Store.open(db) as s:
        assert s.run(run_id).status == "cancelled"
    with pytest.raises(RunError, match="nothing to cancel"):
        cancel_run(db, run_id)


def test_a_run_whose_process_died_without_a_word_is_marked_failed(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    alive = sleeper("--run-id", "placeholder")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        with Store.open(db) as s:
            ids = [s.create_run("train", "sft", "tiny", {}) for _ in range(3)]
            s.update_run(ids[0], status="running", pid=dead.pid)
            s.update_run(ids[1], status="running", pid=alive.pid)  # alive, but not that run's process
            s.update_run(ids[2], status="running", pid=dead.pid)
        assert sorted(mark_lost(db, skip={ids[2]})) == sorted(ids[:2])
        with Store.open(db) as s:
            assert s.run(ids[0]).status == "failed" and "ended without recording" in s.run(ids[0]).error
            assert s.run(ids[1]).status == "failed"
            assert s.run(ids[2]).status == "running"
    finally:
        alive.kill()
        alive.wait()


class Started:
    """``start_run`` stand-in: records what would have been started."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.ids = (f"new{n}" for n in itertools.count())

    def __call__(self, db: str, kind: str, algorithm: str, args: list[str], output: str,
                 accelerate_config: str | None = None, *, detach: bool = False,
                 dataset: dict[str, Any] | None = None) -> tuple[str, subprocess.Popen[bytes]]:
        self.calls.append({"kind": kind, "algorithm": algorithm, "args": args, "output": output,
                           "detach": detach, "dataset": dataset})
        return next(self.ids), subprocess.Popen([sys.executable, "-c", "pass"])


def test_run_again_and_evaluate_start_the_right_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = Started()
    monkeypatch.setattr("curator.launcher.start_run", started)
    db = str(tmp_path / "c.db")
    snapshot = {"dir": "exports/x", "trajectories": 3}
    with Store.open(db) as s:
        recorded = {"data": "x.db", "db": db, "output": "runs/sft-1", "max_steps": 3, "base_model": "org/model",
                    "max_length": None, "tiny": {"seed": 0}}
        run_id = s.create_run("train", "sft", "org/model", recorded,
                              dataset={"snapshot": snapshot, "tokens": 9}, output_dir=str(tmp_path / "runs/sft-1"))
        s.update_run(run_id, status="completed")
        base_eval = s.create_run("eval", "eval", "org/model", {"model": "org/model"})
        s.update_run(base_eval, status="completed")
        run, runs = s.run(run_id), s.runs()
    assert rerun(db, run) == "new0"
    again = started.calls[0]
    assert (again["kind"], again["algorithm"], again["args"]) == (  # the configuration, but the store and output
        "train", "sft", ["--data", "x.db", "--max-steps", "3", "--base-model", "org/model"])
    assert again["dataset"] == {"snapshot": snapshot} and again["detach"]
    assert Path(again["output"]).parent == tmp_path / "runs" and again["output"] != run.output_dir
    assert evaluate_against_base(db, run, runs) == ["new1"]  # the base model's evaluation exists: only the adapter
    assert started.calls[1]["args"] == ["--model", run.output_dir] and started.calls[1]["kind"] == "eval"
    with pytest.raises(RunError, match="completed SFT"):
        evaluate_against_base(db, runs[0], runs)


# -- the screen -------------------------------------------------------------------------------------------
def finished_runs(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A completed SFT run with its loss and log, its two evaluations, and a failed DPO run; fixed ids and times."""
    ids = iter(["a1b2c3d4e5f60718", "e7a1e7a1e7a1e7a1", "ba5eba5eba5eba5e", "dead0000dead0000"])
    monkeypatch.setattr(store.runs, "new_id", lambda: next(ids))
    output = "runs/sft-20260101-000000"
    with Store.open(db) as s:
        sft = s.create_run("train", "sft", "tiny", {"max_steps": 30, "epochs": 1.0,
                                                    "learning_rate": 0.0002, "w_max": 9.0, "mae": True,
                                                    "lora_r": 8}, output_dir=output,
                           dataset={"snapshot": {"dir": "exports/20260101-000000", "trajectories": 3,
                                                 "mask_instability": True},
                                    "trajectories": 3, "tokens": 1275, "trainable_tokens": 141})
        s.update_run(sft, status="completed", started_at="2026-01-01T00:00:05.000Z",
                     finished_at="2026-01-01T00:01:17.000Z", summary={"steps": 30, "train_loss": 4.25})
        for step in range(1, 31):
            s.add_run_metrics(sft, step, {"loss": 6.5 - 2.5 * (1 - 0.9 ** step), "learning_rate": 2e-4})
        for model, scores in ((output, (0.75, 0.5, 0.25)), ("tiny", (0.0, 0.0, 0.0))):
            ev = s.create_run("eval", "eval", model, {"argv": ["--model", model]}, output_dir=None)
            s.update_run(ev, status="completed", started_at="2026-01-01T00:02:00.000Z",
                         finished_at="2026-01-01T00:02:09.000Z", dataset={"items": 4},
                         summary={"metrics": dict(zip(("ts", "pi", "cf"), scores), n=4)})
        dpo = s.create_run("train", "dpo", "missing/model", {"argv": []})
        s.update_run(dpo, status="failed", started_at="2026-01-01T00:03:00.000Z",
                     finished_at="2026-01-01T00:03:04.000Z", error="model not found: missing/model (no such directory)")
        with s.transaction():  # newest first: the SFT run on top (selected), the failed one last
            for minute, run_id in enumerate(["dead0000dead0000", "ba5eba5eba5eba5e", "e7a1e7a1e7a1e7a1", sft]):
                s.conn.execute("UPDATE runs SET created_at = ? WHERE id = ?",
                               (f"2026-01-01T00:0{minute}:00.000Z", run_id))
    log = Path(output) / "run.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"{{'loss': '{6.5 - 0.08 * step:.3f}', 'epoch': '{step / 10}'}}\n" for step in range(1, 31)))


def test_runs_screen(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    finished_runs(tmp_path / "runs.db", monkeypatch)
    app = CuratorApp(Store.open(tmp_path / "runs.db"), Config(), screen="runs", annotator="ann")

    async def settle(pilot) -> None:  # noqa: ANN001 (a Pilot)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    try:
        assert snap_compare(app, terminal_size=(130, 40), run_before=settle)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


async def test_a_new_session_shows_the_runs_in_the_store_and_moves_between_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    finished_runs(tmp_path / "runs.db", monkeypatch)
    app = CuratorApp(Store.open(tmp_path / "runs.db"), Config(), screen="runs", annotator="ann")
    async with app.run_test(size=(130, 40), notifications=True) as pilot:
        screen = app.screen
        assert isinstance(screen, RunsScreen) and screen.selected == "a1b2c3d4e5f60718"
        assert len(screen.query_one(LossCurve).points) == 30
        text = screen_text(app)
        assert "trained" in text and "75%" in text and "base tiny" in text
        await pilot.press("down")
        await wait_until(pilot, lambda: "model not found" in screen_text(app))
        assert screen.query_one(LossCurve).points == []
        await pilot.press("e")  # not a completed SFT run: refused, nothing started
        await wait_until(pilot, lambda: "Select a completed SFT run to evaluate." in screen_text(app))
        assert len(app.store.runs()) == 4


@pytest.mark.slow
async def test_e_evaluates_a_completed_sft_run_beside_its_base_once(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with make_store(db) as s:
        for trajectory_id in ("traj-01", "traj-02", "traj-04"):
            s.decide(trajectory_id, "accept")
    run_id, proc = start_run(str(db), "train", "sft", ["--max-steps", "2", "--threads", "1"],
                             str(tmp_path / "runs" / "sft"), detach=True)
    assert proc.wait(RUN_TIMEOUT) == 0
    app = CuratorApp(Store.open(db), Config(), screen="runs", annotator="ann")
    async with app.run_test(size=(130, 40), notifications=True) as pilot:
        await wait_until(pilot, lambda: app.screen.selected == run_id)
        await pilot.press("e")
        await wait_until(pilot, lambda: len(app.store.runs()) == 3)
        evals = [r for r in app.store.runs() if r.kind == "eval"]
        output = tmp_path / "runs" / "sft"
        assert {r.base_model for r in evals} == {str(output), str(output / "base")}  # a tiny run keeps its base
        await wait_until(pilot, lambda: all(app.store.run(r.id).status == "completed" for r in evals), RUN_TIMEOUT)
        await wait_until(pilot, lambda: "n=3" in screen_text(app))
        text = screen_text(app)
        assert "trained" in text and "base " in text and "TS" in text and "CF" in text
        await pilot.press("e")  # both evaluations exist: nothing new
        await wait_until(pilot, lambda: "Already evaluated" in screen_text(app))
        assert len(app.store.runs()) == 3


def loop_runs(db: Path) -> str:
    """An iTool loop as `python -m training itool` records it: the loop's run, its warm-up and two rounds as
    runs of its own (parent_id), each part's loss by step, and the loop's TS after each round."""
    with Store.open(db) as s:
        loop = s.create_run("train", "itool", "tiny", {"iterations": 2})
        s.update_run(loop, status="completed", started_at=STAMP, finished_at=STAMP,
                     summary={"rounds": 2, "ts_by_round": [0.2, 0.35, 0.5]})
        for number, (algorithm, losses, ts, pairs) in enumerate([("sft", [4.0, 3.0], 0.2, None),
                                                                 ("dpo", [0.69, 0.6], 0.35, 7),
                                                                 ("dpo", [0.6, 0.41], 0.5, 3)]):
            part = s.create_run("train", algorithm, "tiny", {"round": number} if number else {}, parent_id=loop)
            summary = {"metrics": {"ts": ts, "pi": ts, "cf": ts, "n": 20}, **({"pairs_made": pairs} if pairs else {})}
            s.update_run(part, status="completed", started_at=STAMP, finished_at=STAMP, summary=summary)
            for step, loss in enumerate(losses, 1):
                s.add_run_metrics(part, step, {"loss": loss})
            s.add_run_metrics(loop, number, {"ts": ts})
        s.create_run("eval", "eval", "tiny", {})  # a run on its own, newer than the loop
    return loop


async def test_a_loop_shows_as_one_item_with_its_rounds_and_the_curve_across_them(tmp_path: Path) -> None:
    loop = loop_runs(tmp_path / "loop.db")
    app = CuratorApp(Store.open(tmp_path / "loop.db"), Config(), screen="runs", annotator="ann")
    async with app.run_test(size=(150, 44)) as pilot:
        screen = app.screen
        assert [r.algorithm for r in screen.runs] == ["eval", "itool", "sft", "dpo", "dpo"]  # parts after the loop
        await pilot.press("down")
        await wait_until(pilot, lambda: screen.selected == loop)
        text = screen_text(app)
        assert "└" in text and "dpo round 2" in text and "sft warm-up" in text
        table = [line for line in text.splitlines() if "dpo round 1" in line and "0.600" in line]  # the rounds table
        assert table and " 7 " in table[0] and "35%" in table[0]  # pairs made, last loss, TS after the round
        curve = screen.query_one(LossCurve)
        assert curve.points == [(0, 3.0), (1, 0.6), (2, 0.41)]  # each part's last loss, by round
        assert curve.shown[1][1][0] == [(0, 20.0), (1, 35.0), (2, 50.0)]  # TS in % on the right axis
