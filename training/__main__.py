"""``python -m training sft|grpo|dpo|itool|eval|score|preview …``: what ``curator train`` / ``curator eval`` run.

Bad input ends in one line on stderr, exit status 2 and the run marked failed;
a SIGTERM ends a training run after the current step with a checkpoint, and
the run marked cancelled. Launched on several processes (``torchrun``,
``accelerate launch``), only the main one writes to the store.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from store import CuratorError
from store.redaction import redact
from training.config import (COMMANDS, ArgumentError, CommandParser, DataConfig, EvalConfig, ScoreConfig,
                             command_parser, from_namespace)
from training import preview
from training.distributed import is_main_process
from training.errors import TrainingError
from training.recorder import RunRecorder, fail_launched_run

EXIT_BAD_INPUT = 2
HELP = {
    "sft": "LoRA SFT with the MAE x PKT weighted loss",
    "grpo": "GRPO with the judge's error-type reward",
    "dpo": "DPO from corrections and accepted-over-rejected steps",
    "itool": "iTool's loop: easy-to-hard warm-up SFT, then rounds of step-level search and DPO",
    "eval": "TS / PI / CF over gold single-step items",
    "score": "a model's perplexity of each trajectory's assistant steps, into the store (review hardest first)",
}
#: The run kind of the commands that do not train.
KINDS = {"eval": "eval", "score": "score"}


def parser() -> argparse.ArgumentParser:
    """One subcommand per config in :mod:`training.config`, its options built from the config's fields."""
    root = CommandParser(prog="python -m training", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    for command, help_text in HELP.items():
        p = command_parser(command, sub.add_parser(command, help=help_text, description=COMMANDS[command].__doc__))
        p.add_argument("--run-id", help="an existing run row to update (the launcher created it)")
    preview.add_arguments(sub.add_parser("preview", help="the tokens training sees, coloured by loss weight"))
    return root


def build(args: argparse.Namespace) -> tuple[DataConfig, Callable[..., dict[str, Any]], str]:
    """The command's config, the function that runs it, and the model name the run is about."""
    config = from_namespace(COMMANDS[args.command], args)
    if config.output is None:
        config.output = f"runs/{args.command}-{time.strftime('%Y%m%d-%H%M%S')}"
    if isinstance(config, EvalConfig):
        from training import evaluate

        return config, evaluate.evaluate, config.model
    if isinstance(config, ScoreConfig):
        from training import score

        return config, score.run, str(config.model)
    run = importlib.import_module(f"training.{args.command}").train
    return config, run, config.base_model


def _quiet_progress_bars() -> None:
    """Loading and saving bars are noise in a launched run's log; the per-step metrics are the progress."""
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parser().parse_args(argv)
        if args.command == "preview":
            return preview.run(args)
        config, run, model_name = build(args)
    except ArgumentError as exc:
        return _bad_input(str(exc), None, argv)
    recorder = None
    try:
        _quiet_progress_bars()
        if config.threads:
            import torch

            torch.set_num_threads(config.threads)
        kind = KINDS.get(args.command, "train")
        # launched on several processes, the main one alone keeps the run's row (the others record nothing)
        main_process = is_main_process()
        recorder = RunRecorder(config.db if main_process else None, kind, args.command, model_name, config.to_dict(),
                               Path(config.output), run_id=args.run_id if main_process else None)
        summary = run(config, recorder)
        recorder.finish(summary.pop("status"), summary)
        if recorder.run_id:
            print(json.dumps({"run_id": recorder.run_id, "status": "done", **summary}, default=str), file=sys.stderr)
        return 0
    except (TrainingError, CuratorError) as exc:
        return _bad_input(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, recorder, argv)
    except BaseException as exc:
        _record_failure(f"{type(exc).__name__}: {exc}", recorder, argv)
        raise


def _bad_input(message: str, recorder: RunRecorder | None, argv: list[str]) -> int:
    print(f"error: {redact(message)}", file=sys.stderr)
    _record_failure(message, recorder, argv)
    return EXIT_BAD_INPUT


def _record_failure(message: str, recorder: RunRecorder | None, argv: list[str]) -> None:
    """The run ends failed with ``message``: through its recorder, else (it failed before having one) by the
    ``--run-id`` its launcher passed, so no run stays queued."""
    if recorder is not None:
        recorder.fail(message)
    elif is_main_process():
        fail_launched_run(argv, message)


if __name__ == "__main__":
    sys.exit(main())
