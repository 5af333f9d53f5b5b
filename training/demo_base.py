"""The demo base model (``--base-model demo``): built once from the corpus curator wrote, then cached.

:func:`ensure` returns the model directory inside :func:`training.config.demo_base_dir`. When the
directory holds no finished base (no ``READY`` marker), it trains one with the fixed recipe
(:class:`training.config.DemoBase`) from ``<dir>/corpus.jsonl``, printing progress lines to the
run's log. An exclusive lock on ``<dir>/.lock`` makes a second run wait for the first one's build
instead of building twice; ``READY`` is written last, so a build killed half-way is started over.
"""
from __future__ import annotations

import fcntl
import shutil
import signal
import sys
from pathlib import Path
from typing import Mapping

from training.config import DEMO_CORPUS_FILE, DemoBase, SFTConfig, demo_base_dir
from training.errors import TrainingError
from training.recorder import RunRecorder

MODEL_DIR = "model"
READY_FILE = "READY"
LOCK_FILE = ".lock"
#: Print a progress line every this many steps of the build.
PROGRESS_EVERY = 25


def ready(root: Path | None = None) -> bool:
    """True when the cache holds a finished demo base."""
    return ((root or demo_base_dir()) / READY_FILE).is_file()


def ensure(root: Path | None = None) -> Path:
    """The demo base model's directory, built first when the cache holds none."""
    root = root or demo_base_dir()
    model = root / MODEL_DIR
    if ready(root):
        return model
    corpus = root / DEMO_CORPUS_FILE
    if not corpus.is_file():
        raise TrainingError(f"no demo corpus at {corpus}: T on the demo store (or `curator demo`) writes it")
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when this process dies
        if not ready(root):
            _build(corpus, model, DemoBase.current())
            (root / READY_FILE).write_text("demo base model: see training/demo_base.py\n")
    return model


def _build(corpus: Path, model: Path, recipe: DemoBase) -> None:
    from training.sft import SFTRun

    work = model.with_name(f"{MODEL_DIR}.building")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(model, ignore_errors=True)
    config = SFTConfig(data=str(corpus), output=str(work), **recipe.sft_overrides())
    say(f"building the demo base model (once): a tiny model trained from scratch on {corpus} "
        f"({recipe.max_steps} steps), cached in {model.parent}")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:  # the build's own graceful stop takes the signals while it runs, then the run's gets them back
        summary = SFTRun(config, BuildProgress(work, recipe.max_steps)).train()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if summary["status"] != "completed":
        raise TrainingError("the demo base build was stopped before it finished")
    for checkpoint in work.glob("checkpoint-*"):
        shutil.rmtree(checkpoint)
    work.rename(model)
    say(f"building the demo base model (once): done, {model}")


class BuildProgress(RunRecorder):
    """The base build's recorder: no store row, a progress line every :data:`PROGRESS_EVERY` steps."""

    def __init__(self, output: Path, steps: int):
        super().__init__(None, "train", "sft", "tiny", {}, output)
        self.steps = steps

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        super().log(step, metrics)
        if step % PROGRESS_EVERY == 0 or step == self.steps:
            loss = metrics.get("loss")
            say(f"building the demo base model (once): step {step}/{self.steps}"
                + (f", loss {loss:.3f}" if isinstance(loss, (int, float)) else ""))


def say(line: str) -> None:
    print(line, file=sys.stdout, flush=True)
