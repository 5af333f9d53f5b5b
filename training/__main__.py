"""``python -m training sft|grpo|dpo|eval|preview …``: what ``curator train`` / ``curator eval`` run in a subprocess.

Bad input ends in one line on stderr, exit status 2 and the run marked failed;
a SIGTERM ends a training run after the current step with a checkpoint, and
the run marked cancelled.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from store import CuratorError
from training.errors import TrainingError
from training.tiny import TinyConfig

EXIT_BAD_INPUT = 2


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="a JSONL export or a curated SQLite file")
    p.add_argument("--db", help="the curator store: records the run (and is the dataset when --data is not given)")
    p.add_argument("--run-id", help="an existing run row to update (the launcher created it)")
    p.add_argument("--output", help="output directory (default runs/<algorithm>-<time>)")
    p.add_argument("--tiny-config", help="JSON (or a JSON file) overriding the tiny model's size and template")
    p.add_argument("--chat-template", help="chatml|llama3|plain or a Jinja file, for tokenizers without one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads")


def _train_options(p: argparse.ArgumentParser, lr: float, max_steps: int) -> None:
    _data_options(p)
    p.add_argument("--base-model", default="tiny", help="hub id, local directory, adapter directory or 'tiny'")
    p.add_argument("--max-steps", type=int, default=max_steps)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--lora-dropout", type=float, default=0.05)
    p.add_argument("--logging-steps", type=int, default=1)
    p.add_argument("--save-steps", type=int, default=100)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    sft = sub.add_parser("sft", help="LoRA SFT with the MAE x PKT weighted loss")
    _train_options(sft, lr=2e-4, max_steps=-1)
    sft.add_argument("--w-max", type=float, default=9.0, help="PKT cap on key-token weights; 1 turns PKT off")
    sft.add_argument("--no-mae", action="store_true", help="train on every assistant message (weights ignored)")
    sft.add_argument("--curriculum", action="store_true", help="easy -> medium -> hard order (iTool)")
    sft.add_argument("--from-scratch", "--full-finetune", dest="full_finetune", action="store_true",
                     help="train every weight of the freshly built tiny model, no LoRA")
    sft.add_argument("--max-length", type=int, default=4096)
    sft.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output")

    grpo = sub.add_parser("grpo", help="GRPO with the judge's error-type reward")
    _train_options(grpo, lr=1e-5, max_steps=50)
    grpo.add_argument("--num-generations", type=int, default=4)
    grpo.add_argument("--max-completion-length", type=int, default=96)
    grpo.add_argument("--beta", type=float, default=0.0)
    grpo.add_argument("--temperature", type=float, default=1.0)

    dpo = sub.add_parser("dpo", help="DPO from corrections and accepted-over-rejected steps")
    _train_options(dpo, lr=5e-6, max_steps=-1)
    dpo.add_argument("--beta", type=float, default=0.1)
    dpo.add_argument("--max-length", type=int, default=2048)

    from training import preview

    preview.add_arguments(sub.add_parser("preview", help="the tokens training sees, coloured by loss weight"))

    ev = sub.add_parser("eval", help="TS / PI / CF over gold single-step items")
    _data_options(ev)
    ev.add_argument("--model", default="tiny", help="adapter or model directory, hub id, 'tiny', or the endpoint's model")
    ev.add_argument("--base-url", help="an OpenAI-compatible endpoint")
    ev.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the endpoint's key")
    ev.add_argument("--limit", type=int)
    ev.add_argument("--max-new-tokens", type=int, default=96)
    ev.add_argument("--batch-size", type=int, default=8)
    return root


def _lora(args: argparse.Namespace):
    from training.options import LoraOptions

    return LoraOptions(r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout)


def _tiny(text_or_path: str | None) -> TinyConfig:
    try:
        return TinyConfig.from_json(text_or_path)
    except (ValueError, TypeError) as exc:
        raise TrainingError(f"--tiny-config: {exc}") from None


def _common(args: argparse.Namespace, output: str) -> dict[str, Any]:
    return {
        "data": args.data,
        "db": args.db,
        "output": output,
        "tiny": _tiny(args.tiny_config),
        "chat_template": args.chat_template,
        "seed": args.seed,
    }


def _training(args: argparse.Namespace, output: str) -> dict[str, Any]:
    return {
        **_common(args, output),
        "base_model": args.base_model,
        "max_steps": args.max_steps,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "grad_accum": args.grad_accum,
        "learning_rate": args.lr,
        "lora": _lora(args),
        "logging_steps": args.logging_steps,
        "save_steps": args.save_steps,
    }


def build(args: argparse.Namespace) -> tuple[Any, Callable[..., dict[str, Any]], str]:
    """The command's config, the function that runs it, and the model name the run is about."""
    output = args.output or f"runs/{args.command}-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.command == "sft":
        from training import sft

        config = sft.SFTConfig(
            **_training(args, output),
            w_max=args.w_max,
            mae=not args.no_mae,
            curriculum=args.curriculum,
            full_finetune=args.full_finetune,
            max_length=args.max_length,
            resume=args.resume,
        )
        return config, sft.train, args.base_model
    if args.command == "grpo":
        from training import grpo

        config = grpo.GRPOOptions(
            **_training(args, output),
            num_generations=args.num_generations,
            max_completion_length=args.max_completion_length,
            beta=args.beta,
            temperature=args.temperature,
        )
        return config, grpo.train, args.base_model
    if args.command == "dpo":
        from training import dpo

        config = dpo.DPOOptions(**_training(args, output), beta=args.beta, max_length=args.max_length)
        return config, dpo.train, args.base_model
    from training import evaluate

    config = evaluate.EvalConfig(
        **_common(args, output),
        model=args.model,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        limit=args.limit,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
    )
    return config, evaluate.evaluate, args.model


def _quiet_progress_bars() -> None:
    """Loading and saving bars are noise in a launched run's log; the per-step metrics are the progress."""
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "preview":
        from training import preview

        return preview.run(args)
    _quiet_progress_bars()
    recorder = None
    try:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        config, run, model_name = build(args)
        from training.runs import RunRecorder

        kind = "eval" if args.command == "eval" else "train"
        recorder = RunRecorder(
            args.db, kind, args.command, model_name, config.to_dict(), Path(config.output), run_id=args.run_id
        )
        summary = run(config, recorder)
        recorder.finish(summary.pop("status"), summary)
        if recorder.run_id:
            print(json.dumps({"run_id": recorder.run_id, "status": "done", **summary}, default=str), file=sys.stderr)
        return 0
    except (TrainingError, CuratorError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        if recorder is not None:
            recorder.fail(message)
        return EXIT_BAD_INPUT
    except BaseException as exc:
        if recorder is not None:
            recorder.fail(f"{type(exc).__name__}: {exc}")
        raise


if __name__ == "__main__":
    sys.exit(main())
