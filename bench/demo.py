"""The demo's promise, measured: ``python -m bench.demo``.

Headless, through the same code as ``curator demo`` → review → ``T``: the demo store
(``curator.demo_model.prepare_store``: weather, held-out gold items, the demo recipe), the
scripted simulation of ``DEMO_SIZE`` trajectories, accepting them, ``launcher.export_and_train``
with the settings the app gives ``T`` on that store, and the evaluations that start by
themselves when the run completes (``launcher.start_auto_evaluations``). For each seed of the
demo simulation it reports the wall time of ``T`` (fine-tune and both evaluations) and base →
trained TS / PI / CF, then mean ± spread (population standard deviation) and the gain.

Two arms: *all complete* accepts every complete trajectory (what the demo's trajectories are
before anyone rejects one); *masked rejected* rejects each trajectory holding a masked (erroneous)
call and accepts the rest, as a careful reviewer might. The demo base is built once first
(timed; reused when the cache already holds it, unless ``--cache`` names a fresh directory).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from curator import launcher  # noqa: E402
from curator.cli.app import DEMO_CONCURRENCY, DEMO_SIZE  # noqa: E402
from curator.demo_model import DEMO_TOOLSET, ensure_corpus, prepare_store, store_preset  # noqa: E402
from curator.settings import TrainSettings  # noqa: E402
from curator.sim import SimConfig, Simulation  # noqa: E402
from store import Store  # noqa: E402
from store.taxonomy import MaskPolicy  # noqa: E402
from training.config import DEMO_BASE_VERSION, demo_base_dir  # noqa: E402
from training.demo_base import ready  # noqa: E402

ARMS = ("all complete", "masked rejected")
METRICS = ("ts", "pi", "cf")
POLL_S = 0.5


@dataclass
class Outcome:
    arm: str
    seed: int
    trained_on: int
    seconds: float
    base: dict[str, float]
    trained: dict[str, float]


def demo_store(db: Path, seed: int, n: int = DEMO_SIZE) -> None:
    """What ``curator demo`` makes on a new store, without the app: gold items, the mark, the simulation."""
    config = SimConfig().with_changes(toolset=DEMO_TOOLSET, n=n, backend="scripted", concurrency=DEMO_CONCURRENCY,
                                      seed=seed)
    with Store.open(db) as store:
        prepare_store(store, config)
        asyncio.run(Simulation(store, config, policy=MaskPolicy.of()).run())


def review(db: Path, arm: str) -> int:
    """Accept the complete trajectories (rejecting those with a masked call in the ``masked rejected`` arm);
    the number accepted."""
    accepted = 0
    with Store.open(db) as store:
        for trajectory in list(store.iter_trajectories(status="complete")):
            masked = any(m.role == "assistant" and m.weight == 0 for m in trajectory.messages)
            keep = arm == "all complete" or not masked
            store.decide(trajectory.id, "accept" if keep else "reject", annotator="bench")
            accepted += keep
    return accepted


def train_and_evaluate(db: Path, timeout_s: float = 1800) -> tuple[float, dict[str, float], dict[str, float]]:
    """``T`` as the app starts it on the demo store, then the evaluations that start by themselves; the wall
    time from ``T`` to both evaluations done, and the base's and the trained model's metrics."""
    with Store.open(db) as store:
        settings = TrainSettings(preset=store_preset(store))
    started = time.perf_counter()
    run_id = launcher.export_and_train(str(db), settings, MaskPolicy.of())
    evaluations: list[str] = []
    deadline = started + timeout_s
    while time.perf_counter() < deadline:
        with Store.open(db) as store:
            runs = store.runs()
        run = next(r for r in runs if r.id == run_id)
        if run.status in ("failed", "cancelled"):
            raise RuntimeError(f"run {run_id} {run.status}: {run.error}")
        if run.status == "completed" and not evaluations:
            evaluations = launcher.start_auto_evaluations(str(db), runs)
            if not evaluations:
                raise RuntimeError(f"run {run_id} completed but no evaluation started by itself")
            continue
        done = [r for r in runs if r.id in evaluations and r.status not in launcher.ACTIVE]
        if evaluations and len(done) == len(evaluations):
            if any(r.status != "completed" for r in done):
                raise RuntimeError(f"an evaluation of run {run_id} did not complete: {[r.error for r in done]}")
            seconds = time.perf_counter() - started
            trained = launcher.latest_eval(runs, run.output_dir)
            base = launcher.latest_eval(runs, launcher.eval_base(run))
            assert trained is not None and base is not None
            return seconds, base.summary["metrics"], trained.summary["metrics"]
        time.sleep(POLL_S)
    raise RuntimeError(f"run {run_id} and its evaluations took over {timeout_s:.0f} s")


def one(work: Path, seed: int, arm: str) -> Outcome:
    db = work / f"demo-{seed}-{arm.replace(' ', '-')}.db"
    demo_store(db, seed)
    with Store.open(db) as store:
        trajectories = {t.instruction for t in store.iter_trajectories()}
        gold = {g.messages[1]["content"] for g in store.gold_items()}
    if trajectories & gold:
        raise RuntimeError(f"seed {seed}: a gold request is also a training request")
    accepted = review(db, arm)
    seconds, base, trained = train_and_evaluate(db)
    return Outcome(arm, seed, accepted, seconds, base, trained)


def build_base() -> float | None:
    """Seconds to write the corpus and build the demo base, or None when the cache already holds it."""
    if ready():
        return None
    started = time.perf_counter()
    ensure_corpus()
    subprocess.run([sys.executable, "-c", "from training.demo_base import ensure; ensure()"], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.1%} ± {statistics.pstdev(values):.1%}"


def table(outcomes: list[Outcome], base_build: float | None) -> str:
    built = f"{base_build:.0f} s (corpus + {DEMO_BASE_VERSION}, once)" if base_build is not None else \
        f"cached ({demo_base_dir()} already held it)"
    lines = [f"demo base build: {built}", ""]
    for arm in ARMS:
        rows = [o for o in outcomes if o.arm == arm]
        if not rows:
            continue
        lines += [f"arm: {arm}",
                  f"{'seed':>4}  {'traj':>4}  {'T wall':>7}  " + "  ".join(f"{m.upper() + ' base→trained':>20}"
                                                                           for m in METRICS)]
        for o in rows:
            cells = "  ".join(f"{f'{o.base[m]:.1%} → {o.trained[m]:.1%}':>20}" for m in METRICS)
            lines.append(f"{o.seed:>4}  {o.trained_on:>4}  {o.seconds:>6.0f}s  {cells}")
        seconds = [o.seconds for o in rows]
        lines.append(f"mean  {statistics.mean(o.trained_on for o in rows):>4.0f}  {statistics.mean(seconds):>6.0f}s  "
                     + "  ".join(f"{spread([o.base[m] for o in rows]) + ' → ' + spread([o.trained[m] for o in rows]):>20}"
                                 for m in METRICS))
        lines.append("gain: " + ", ".join(_gain(m, rows) for m in METRICS)
                     + f"; T wall max {max(seconds):.0f} s")
        lines.append("")
    return "\n".join(lines)


def _gain(metric: str, rows: list[Outcome]) -> str:
    base = statistics.mean(o.base[metric] for o in rows)
    trained = statistics.mean(o.trained[metric] for o in rows)
    if base == 0:
        return f"{metric.upper()} +{(trained - base) * 100:.1f} points (base 0)"
    return f"{metric.upper()} ×{trained / base:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the demo simulation (default: 0,1,2)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of: {', '.join(ARMS)}")
    parser.add_argument("--cache", help="the cache directory (CURATOR_CACHE) to build or reuse the base in")
    args = parser.parse_args(argv)
    if args.cache:
        os.environ["CURATOR_CACHE"] = args.cache
    arms = [a.strip() for a in args.arms.split(",")]
    if unknown := [a for a in arms if a not in ARMS]:
        print(f"error: unknown arm {unknown[0]!r} (use {', '.join(ARMS)})", file=sys.stderr)
        return 2
    base_build = build_base()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as work:
        for seed in (int(s) for s in args.seeds.split(",")):
            for arm in arms:
                outcomes.append(one(Path(work), seed, arm))
                print(f"seed {seed} {arm}: {outcomes[-1].seconds:.0f} s", file=sys.stderr, flush=True)
    print(table(outcomes, base_build))
    return 0


if __name__ == "__main__":
    sys.exit(main())
