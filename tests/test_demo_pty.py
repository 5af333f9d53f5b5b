"""The real `curator demo` in a pseudo-terminal, as a newcomer runs it: the simulation arrives, `r` reviews,
every trajectory is accepted by key, `T` trains (building the demo base model the first time), the runs screen
evaluates the trained model and its base by itself and shows the difference; the store then holds a trained
model whose TS on the held-out gold items is above its base's.

The base is built with a smaller recipe (``CURATOR_DEMO_RECIPE``) so the suite stays within its minutes;
``python -m bench.demo`` measures the real one.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pexpect
import pytest

from store import Store
from training.config import DEMO_RECIPE_ENV, demo_base_dir

CURATOR = Path(sys.executable).with_name("curator")
SMALL_RECIPE = json.dumps({"corpus_per_toolset": 150, "max_steps": 300})
DEMO_SIZE = 24


@pytest.mark.slow
def test_the_demo_in_a_terminal_trains_a_model_better_than_its_base(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATOR_CACHE", str(tmp_path / "cache"))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30", "HF_HUB_OFFLINE": "1",
           DEMO_RECIPE_ENV: SMALL_RECIPE}
    child = pexpect.spawn(str(CURATOR), ["demo"], env=env, dimensions=(30, 100), cwd=str(tmp_path), timeout=60,
                          encoding="utf-8", codec_errors="replace")
    try:
        child.expect("Simulation done")
        child.send("r")
        child.expect("decision: pending")
        for reviewed in range(1, DEMO_SIZE + 1):  # accept every one, each seen counted before the next key
            child.send("a")
            child.expect(f"reviewed {reviewed} / {DEMO_SIZE}")
        child.expect("the queue is empty")
        child.send("T")
        child.expect("pretrained")  # the dialog says what the demo model is
        child.send("\r")
        child.expect("difference", timeout=360)  # the run finished and both evaluations came back
        child.send("q")
        child.expect(pexpect.EOF, timeout=30)
    finally:
        child.close(force=True)
    with Store.open(tmp_path / "curator-demo.db", create=False) as store:
        runs = store.runs()
        [sft] = [r for r in runs if r.kind == "train"]
        evals = {r.base_model: r.summary["metrics"] for r in runs if r.kind == "eval" and r.status == "completed"}
        accepted = len(store.trajectory_ids(review="accepted"))
    assert (sft.status, accepted) == ("completed", DEMO_SIZE), [(r.kind, r.status, r.error) for r in runs]
    trained = evals.pop(sft.output_dir)
    [base] = evals.values()  # the demo base, evaluated beside it
    assert trained["ts"] > base["ts"], (base, trained)
    assert (demo_base_dir() / "READY").is_file()
