"""Training and evaluation runs as curator starts, follows and stops them (no torch, no Textual here).

`T` in the app is ``export_and_train``: ``export_snapshot`` writes the accepted
trajectories to ``exports/<time>/`` beside the store (SQLite + JSONL), then
``start_run`` creates the run row (status queued, the snapshot on its
``dataset``) and starts ``python -m training <algorithm> … --run-id ID`` in a
session of its own, logging to ``run.log`` in the run's output directory; the
row, the process's pid and its lease are committed together, so no row is ever
left without a process to look for. A run whose process died without a word is
marked failed by the next command (``curator.reaping``). From
then on the training process keeps its row current (running → completed |
failed | cancelled) and streams its metrics into the store; the runs screen
only reads them, so quitting the app leaves the run going and the next session
finds it in the store. `curator train` and `curator eval` start theirs through
``start_run`` too.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Collection

from curator.reaping import reap_lost_runs, run_process_alive
from curator.settings import TrainSettings
from store import CuratorError, Run, Store, now, processes
from store.flagging import flag_all
from store.formats import export_jsonl, export_sqlite
from store.queue import QueueFilter, count
from store.runs import ACTIVE_RUN_STATUSES
from store.taxonomy import MaskPolicy
from training.config import DEMO, COMMANDS, ArgumentError, TrainingConfig, field_types, parse, to_argv

#: A run in one of these states has (or is about to have) a process.
ACTIVE = ACTIVE_RUN_STATUSES
LOG_FILE = "run.log"
METRICS_FILE = "metrics.jsonl"  # written by training.recorder beside the run's output
EXPORTS_DIR = "exports"
RUNS_DIR = "runs"
SNAPSHOT_DB = "snapshot.db"
SNAPSHOT_JSONL = "accepted.jsonl"
#: Where a tiny-model SFT run keeps the exact base its adapter was trained on (training.models.BASE_DIR).
TINY_BASE_DIR = "base"
#: The algorithms that also learn from accepted-over-rejected pairs, so their snapshot keeps the rejected.
PAIRS_FROM_DECISIONS = ("dpo", "itool")


class RunError(CuratorError):
    """A run that cannot be started, cancelled or evaluated, said in one line."""


# -- starting ------------------------------------------------------------------------------------------
def training_command(algorithm: str, args: list[str], accelerate_config: str | None = None) -> list[str]:
    """The argv that runs ``python -m training <algorithm> <args>``, through accelerate when it should."""
    if accelerate_config or visible_gpus() > 1:
        launcher = ["accelerate", "launch"]
        if accelerate_config:
            launcher += ["--config_file", accelerate_config]
        return [*launcher, "--module", "training", algorithm, *args]
    return [sys.executable, "-m", "training", algorithm, *args]


def visible_gpus() -> int:
    """GPUs a launched run would see (CUDA_VISIBLE_DEVICES, else nvidia-smi), without importing torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def start_run(db: str, kind: str, algorithm: str, args: list[str], output: str,
              accelerate_config: str | None = None, *, detach: bool = False,
              dataset: dict[str, Any] | None = None) -> tuple[str, subprocess.Popen[bytes]]:
    """Create the run row (queued, with the configuration ``args`` resolve to), start its process, record its pid.

    ``args`` are parsed here with the training configs (:mod:`training.config`), so a bad
    option is a ``RunError`` before any row or process exists, and the row holds the same
    configuration the process records once it runs. Detached, the process gets a session
    of its own (closing the terminal or the app does not stop it) and writes its output to
    ``run.log`` in ``output``.
    """
    try:
        config = parse(algorithm, [*args, "--db", db, "--output", output])
    except ArgumentError as exc:
        raise RunError(f"python -m training {algorithm}: {exc}") from None
    model = config.base_model if isinstance(config, TrainingConfig) else config.model
    with Store.open(db, create=False) as store, store.transaction():
        # One transaction: the row becomes visible with its process's pid and lease, or not at all
        # (this process killed before the commit); the process's first write waits for it.
        run_id = store.create_run(kind, algorithm, model, config.to_dict(), dataset=dataset, output_dir=output)
        argv = training_command(algorithm, [*args, "--db", db, "--run-id", run_id, "--output", output],
                                accelerate_config)
        proc = _spawn(argv, Path(output), detach)
        child = processes.identify(proc.pid) or processes.ProcessId(processes.host(), proc.pid, "ended")
        store.update_run(run_id, pid=proc.pid, lease_id=store.lease(child))
    return run_id, proc


def _spawn(argv: list[str], output: Path, detach: bool) -> subprocess.Popen[bytes]:
    """Start ``argv``; detached, in a session of its own writing to ``run.log`` in ``output``."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        if not detach:
            return subprocess.Popen(argv)
        with open(output / LOG_FILE, "ab") as log:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
    except OSError as exc:
        raise RunError(f"could not start {argv[0]}: {exc}") from None


def launch_detached(db: str, kind: str, algorithm: str, args: list[str],
                    dataset: dict[str, Any] | None = None) -> str:
    """``start_run`` detached, into a new ``runs/<algorithm>-<time>/`` beside the store; returns the run id."""
    output = fresh_dir(Path(db).resolve().parent / RUNS_DIR, f"{algorithm}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        run_id, proc = start_run(db, kind, algorithm, args, str(output), detach=True, dataset=dataset)
    except RunError:
        output.rmdir()
        raise
    threading.Thread(target=proc.wait, daemon=True).start()  # reaps it when it ends while this process lives
    return run_id


def accepted_count(store: Store) -> int:
    """How many trajectories are accepted now (one indexed count)."""
    return count(store, QueueFilter(review="accepted"))


def export_snapshot(db: str, policy: MaskPolicy, with_rejected: bool = False) -> dict[str, Any]:
    """Write the accepted trajectories to a new ``exports/<time>/`` beside the store, as SQLite and JSONL.

    The SQLite file is a curated store (corrections and gold items included: what DPO
    and evaluation read), re-flagged with ``policy`` (human tags and mask toggles kept),
    and the JSONL is written from it, so both carry the same weights. ``with_rejected``
    (DPO: accepted over rejected pairs) keeps every trajectory in the SQLite file, whose
    readers pick them by decision. Returns what the run records as its ``dataset["snapshot"]``.
    """
    folder = fresh_dir(Path(db).resolve().parent / EXPORTS_DIR, time.strftime("%Y%m%d-%H%M%S"))
    sqlite_path, jsonl_path = folder / SNAPSHOT_DB, folder / SNAPSHOT_JSONL
    review = "all" if with_rejected else "accepted"
    with Store.open(db) as store:
        export_sqlite(store, sqlite_path, review)
    with Store.open(sqlite_path) as snapshot:
        accepted = accepted_count(snapshot)
        if accepted:
            flag_all(snapshot, policy)
            export_jsonl(snapshot, jsonl_path, "accepted")
            snapshot.make_self_contained()  # one file again, as exported
    if not accepted:
        shutil.rmtree(folder)
        raise RunError("nothing to train on: no accepted trajectory")
    return {"dir": str(folder), "sqlite": str(sqlite_path), "jsonl": str(jsonl_path), "trajectories": accepted,
            "sqlite_holds": review, "mask_instability": policy.masks_instability}


def export_and_train(db: str, settings: TrainSettings, policy: MaskPolicy) -> str:
    """`T`: snapshot the accepted trajectories and start a detached training run on the snapshot; its id.

    On the demo base, its corpus is written first when missing (the run builds the base from it).
    """
    if settings.config().base_model == DEMO:
        from curator.demo_model import ensure_corpus

        ensure_corpus()
    snapshot = export_snapshot(db, policy, with_rejected=settings.algorithm in PAIRS_FROM_DECISIONS)
    return launch_detached(db, "train", settings.algorithm, ["--data", snapshot["sqlite"], *settings.argv()],
                           {"snapshot": snapshot})


def rerun(db: str, run: Run) -> str:
    """Start ``run`` again: same kind, algorithm, configuration and snapshot, in a new output directory."""
    if run.parent_id:
        raise RunError(f"run {run.id} is part of run {run.parent_id}: run that one again")
    if run.algorithm not in COMMANDS:
        raise RunError(f"run {run.id} has no configuration to run again")
    settable = field_types(COMMANDS[run.algorithm])
    config = {k: v for k, v in run.config.items() if k in settable and k not in ("db", "output") and v is not None}
    snapshot = (run.dataset or {}).get("snapshot")
    return launch_detached(db, run.kind, run.algorithm, to_argv(config), {"snapshot": snapshot} if snapshot else None)


# -- evaluating --------------------------------------------------------------------------------------
def eval_base(run: Run) -> str:
    """The model an SFT run's adapter was trained on: a tiny run's own saved base, else its base model."""
    if run.output_dir and (base := Path(run.output_dir) / TINY_BASE_DIR).is_dir():
        return str(base)
    return run.base_model


def latest_eval(runs: list[Run], model: str | None) -> Run | None:
    """The newest evaluation of ``model`` that did not fail or get cancelled (``runs`` newest first)."""
    return next((r for r in runs if r.kind == "eval" and r.base_model == model
                 and r.status not in ("failed", "cancelled")), None)


def evaluate_against_base(db: str, run: Run, runs: list[Run]) -> list[str]:
    """Evaluate a completed SFT run's model on the gold set, and its base model unless already evaluated.

    Returns the ids of the evaluation runs started (none when both exist).
    """
    if (run.kind, run.algorithm, run.status) != ("train", "sft", "completed") or not run.output_dir:
        raise RunError("only a completed SFT run is evaluated against its base model")
    return [launch_detached(db, "eval", "eval", ["--model", model])
            for model in (run.output_dir, eval_base(run)) if latest_eval(runs, model) is None]


def auto_evaluated(runs: list[Run]) -> list[Run]:
    """The completed SFT runs on the demo base whose model no evaluation was ever started for: the demo's
    evaluation against the base starts by itself (once: a failed one is not retried)."""
    evaluated = {r.base_model for r in runs if r.kind == "eval"}
    return [r for r in runs if (r.kind, r.algorithm, r.status) == ("train", "sft", "completed")
            and r.base_model == DEMO and r.output_dir and r.output_dir not in evaluated]


def start_auto_evaluations(db: str, runs: list[Run]) -> list[str]:
    """``evaluate_against_base`` for each of :func:`auto_evaluated` ``runs``; the evaluation runs started."""
    started: list[str] = []
    for run in auto_evaluated(runs):
        started += evaluate_against_base(db, run, runs)
    return started


# -- following and stopping --------------------------------------------------------------------------
def cancel_run(db: str, run_id: str, poll_s: float = 0.2) -> None:
    """SIGTERM to the run's process, then wait for it to end (a training run stops after its step, with a checkpoint).

    A process that ends without recording it (killed before it set up its handler, or
    an evaluation) leaves its run marked cancelled here.
    """
    with Store.open(db) as store:
        run = store.run(run_id)
        if run is None or run.status not in ACTIVE:
            raise RunError(f"run {run_id} is {run.status if run else 'gone'}: nothing to cancel")
        if not run.pid or not run_process_alive(store, run):
            raise RunError(f"run {run_id}'s process is not running here")
        os.kill(run.pid, signal.SIGTERM)
        while run_process_alive(store, run):
            time.sleep(poll_s)
        ended = store.run(run_id)
        if ended is not None and ended.status in ACTIVE:
            store.update_run(run_id, status="cancelled", finished_at=now())


def mark_lost(db: str, skip: Collection[str] = ()) -> list[str]:
    """``reap_lost_runs`` on the store at ``db``; the ids marked."""
    with Store.open(db, create=False) as store:
        return [run.id for run in reap_lost_runs(store, skip)]


def log_tail(run: Run, lines: int = 12) -> tuple[str | None, list[str]]:
    """The last ``lines`` lines of the run's ``run.log`` (else its ``metrics.jsonl``) and which file it was."""
    if not run.output_dir:
        return None, []
    for name in (LOG_FILE, METRICS_FILE):
        path = Path(run.output_dir) / name
        try:
            with path.open("rb") as fh:
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - 16_384))
                text = fh.read().decode(errors="replace")
        except OSError:
            continue
        return str(path), [line.rstrip("\r") for line in text.splitlines()[-lines:]]
    return None, []


# -- describing --------------------------------------------------------------------------------------
# What the runs screen and `curator runs` show of a run, cell by cell.
def result(run: Run, final_loss: float | None = None) -> str:
    """One line: the error, the evaluation's TS/PI/CF, or ``final_loss`` (the last training loss logged)."""
    if run.error:
        return run.error.splitlines()[0][:80]
    summary = run.summary or {}
    if "metrics" in summary:
        m = summary["metrics"]
        return f"TS {m['ts']:.0%}  PI {m['pi']:.0%}  CF {m['cf']:.0%}  (n={m['n']})"
    if final_loss is not None:
        steps = f" after {summary['steps']} steps" if summary.get("steps") is not None else ""
        return f"loss {final_loss:.3f}{steps}"
    if summary.get("train_loss") is not None:
        return f"loss {summary['train_loss']:.3f} after {summary.get('steps')} steps"
    return ""


def final_loss(store: Store, run: Run) -> float | None:
    """The last training loss ``run`` logged (not the trainer's mean over the run), None before its first step."""
    losses = store.run_metrics(run.id, "loss") if run.kind == "train" else []
    return losses[-1][1] if losses else None


def parse_stamp(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp) if stamp else None


def started(run: Run) -> str:
    """When the run started, in local time, month-day hour:minute."""
    stamp = parse_stamp(run.started_at)
    return stamp.astimezone().strftime("%m-%d %H:%M") if stamp else "–"


def run_seconds(run: Run) -> float | None:
    """How long the run ran: to its end, or to now while it is active."""
    begun = parse_stamp(run.started_at)
    end = parse_stamp(run.finished_at)
    if end is None and run.status in ACTIVE:
        end = datetime.now(timezone.utc)
    return (end - begun).total_seconds() if begun and end else None


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole // 60 % 60:02d}m"


def dataset_size(run: Run) -> str:
    """What the run learned from or was scored on, counted (the export's count until the run reports its own)."""
    dataset = run.dataset or {}
    for key, unit in (("items", "gold"), ("pairs", "pairs"), ("trajectories", "traj")):
        if isinstance(dataset.get(key), int):
            return f"{dataset[key]:,} {unit}"
    exported = (dataset.get("snapshot") or {}).get("trajectories")
    return f"{exported:,} traj" if isinstance(exported, int) else "–"


def fresh_dir(parent: Path, stem: str) -> Path:
    """A new directory ``parent/stem`` (``stem-2``, ``stem-3`` … when it is taken)."""
    parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        path = parent / (stem if n == 1 else f"{stem}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1
