"""SFT throughput, ``python -m bench.throughput``: trained tokens per second of curator's SFT and TRL's ``SFTTrainer``.

Both train the same LoRA adapter over the same tiny model on the same examples (curator's encoding of a store
of scripted simulations of every demo toolset: 700 to 3,800 tokens each), one epoch in the same batches, at
the same learning rate, on the CPU. TRL trains the tokens curator weights above 0 (its labels are
-100 elsewhere); curator also weights them (MAE × PKT), TRL cannot. Three modes, each for both:

- padded, random order: right-padded batches (TRL's default; curator's ``--no-group-by-length``);
- padded, grouped by length: transformers' length-grouped sampler (curator's default);
- packed: whole examples in rows of ``--pack-length`` tokens (TRL ``packing=True``, its BFD with padding-free
  batches; curator ``--packing``).

Only ``trainer.train()`` is timed, in CPU seconds (data preparation and model building are not), and both count
the tokens they train, which come out equal. Goal: curator ≥ 1.0× TRL in every mode.
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import datasets
import torch
from transformers import PrinterCallback

from training import models
from training.config import SFTConfig
from training.recorder import RunRecorder
from training.sft import SFTRun

IGNORE = -100
MODES = {  # name: (curator's overrides, TRL's); the padded ones first
    "padded, random order": ({"group_by_length": False}, {}),
    "padded, grouped by length": ({"group_by_length": True}, {"train_sampling_strategy": "group_by_length"}),
    "packed": ({"packing": True}, {"packing": True}),
}


def demo_store(path: Path, per_toolset: int) -> None:
    """Scripted simulations of every demo toolset (``everyday`` holds all 25 tools), all accepted."""
    from curator.sim import SimConfig, Simulation
    from curator.sim.toolsets import demo_names
    from store import Store
    from store.taxonomy import MaskPolicy

    with Store.open(path) as store:
        for seed, name in enumerate(demo_names()):
            asyncio.run(Simulation(store, SimConfig(toolset=name, n=per_toolset, seed=seed),
                                   policy=MaskPolicy.of()).run())
        with store.transaction():
            for trajectory_id in store.trajectory_ids():
                store.decide(trajectory_id, "accept", annotator="bench")


def counted(trainer_class: type, trained: Callable[[dict[str, Any]], int]) -> type:
    """``trainer_class`` counting the trained tokens of every micro-batch it steps on."""

    class Counted(trainer_class):
        tokens = 0

        def training_step(self, model, inputs, num_items_in_batch=None):
            self.tokens += trained(inputs)
            return super().training_step(model, inputs, num_items_in_batch)

    return Counted


def timed(trainer) -> tuple[float, int]:
    """Trained tokens per CPU second of ``trainer.train()`` (CPU time: the machine is shared), and the tokens."""
    trainer.remove_callback(PrinterCallback)
    start = time.process_time()
    trainer.train()
    return trainer.tokens / (time.process_time() - start), trainer.tokens


def curator_rate(config: SFTConfig) -> tuple[tuple[float, int], Any, Any]:
    """curator's tokens/s, and the run's prepared data and LoRA model (for TRL to train alike)."""
    run = SFTRun(config, RunRecorder(None, "train", "sft", config.base_model, config.to_dict(), config.output))
    args = run.arguments()
    prepared = run.prepare(args)
    base = copy.deepcopy(prepared.model)
    trainer = counted(run.trainer_class, lambda b: int((b["weights"][:, 1:] > 0).sum()))(
        model=models.wrap_lora(prepared.model, config), args=args, train_dataset=prepared.dataset,
        processing_class=prepared.tokenizer, **prepared.trainer_kwargs)
    return timed(trainer), prepared, models.wrap_lora(base, config)


def trl_rate(config: SFTConfig, prepared, model, examples, overrides: dict[str, Any]) -> tuple[float, int]:
    from datasets import Dataset
    from trl import SFTConfig as TRLConfig, SFTTrainer

    labels = [[int(t) if w > 0 else IGNORE for t, w in zip(e.input_ids, e.weights)] for e in examples]
    dataset = Dataset.from_dict({"input_ids": [e.input_ids.tolist() for e in examples], "labels": labels})
    args = TRLConfig(
        output_dir=str(config.output), num_train_epochs=config.epochs, per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate, logging_steps=config.logging_steps, save_strategy="no", seed=config.seed,
        report_to=[], disable_tqdm=True, max_length=prepared.summary["pack_length" if config.packing else "max_length"],
        dataloader_num_workers=0, **models.precision().arguments(), **overrides)
    trainer = counted(SFTTrainer, lambda b: int((b["labels"][:, 1:] != IGNORE).sum()))(
        model=model, args=args, train_dataset=dataset, processing_class=prepared.tokenizer)
    return timed(trainer)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-toolset", type=int, default=5, help="trajectories simulated per demo toolset")
    p.add_argument("--batch-size", type=int, default=2, help="examples (packed: rows) per step")
    p.add_argument("--max-length", type=int, default=4096)
    p.add_argument("--pack-length", type=int, default=4096)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        demo_store(db, args.per_toolset)
        rows, examples = [], []
        for mode, (ours, theirs) in MODES.items():
            config = SFTConfig(db=str(db), output=str(Path(tmp) / "out"), epochs=1, batch_size=args.batch_size,
                               max_length=args.max_length, pack_length=args.pack_length, save_steps=10**6, **ours)
            rate, prepared, model = curator_rate(config)
            examples = examples or prepared.dataset.examples  # the padded modes come first: examples, not rows
            rows.append((mode, rate, trl_rate(config, prepared, model, examples, theirs)))
    print(f"{prepared.summary['trajectories']} trajectories, one epoch in batches of {args.batch_size}, "
          f"pack length {args.pack_length}, {args.threads} thread(s); trained tokens per CPU second "
          "(and the tokens each trained)")
    print(f"{'mode':<28} {'curator':>16} {'TRL':>16} {'ratio':>7}")
    for mode, (ours, ours_n), (theirs, theirs_n) in rows:
        print(f"{mode:<28} {ours:>7,.0f} ({ours_n:>6,}) {theirs:>7,.0f} ({theirs_n:>6,}) {ours / theirs:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
