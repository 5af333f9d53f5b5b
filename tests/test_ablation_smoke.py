"""bench/ablation.py end to end at a tiny scale: simulate → flag → export → train every arm 2 steps → evaluate."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def test_ablation_smoke_runs_the_whole_pipeline(tmp_path: Path):
    work = tmp_path / "work"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "bench.ablation", "--smoke", "--workdir", str(work)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((work / "results.json").read_text())
    assert sorted(r["arm"] for r in results) == ["+MAE", "+MAE+PKT", "+PKT", "plain SFT"]
    assert all(r["steps"] == 2 and 0.0 <= r["cf"] <= r["pi"] <= r["ts"] <= 1.0 for r in results)
    # the likelihood probe scored every kind of planted mistake against the gold call, in every arm
    assert all(isinstance(r[f"margin_{kind}"], float) and 0.0 <= r["prefers_flagged"] <= 1.0 for r in results
               for kind in ("wrong_tool", "tool_hallucination", "param_hallucination", "parse_error"))
    assert all(r["train_cpu"] > 0 for r in results)
    gold = [json.loads(line) for line in (work / "gold.jsonl").read_text().splitlines()]
    train = [json.loads(line) for line in (work / "train.jsonl").read_text().splitlines()]
    seen = {m["content"] for r in train for m in r["messages"] if m["role"] == "user"}
    assert gold and not {m["content"] for g in gold for m in g["messages"] if m["role"] == "user"} & seen
    assert any(m.get("weight") == 0 for r in train for m in r["messages"])  # flagged mistakes are masked
    report = (work / "ablation.md").read_text()
    assert "| plain SFT |" in report and "| +MAE+PKT |" in report and "## Setup" in report
    assert "## Likelihood probe" in report and "2-core machine min / run" in report
    assert "| plain SFT |" in done.stdout
