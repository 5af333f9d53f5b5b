"""`curator train sft|grpo|dpo`, `curator eval` and `curator runs`.

Training and evaluation run as `python -m training …` in a subprocess (or
`accelerate launch` with several GPUs or an accelerate config), so this module
never imports torch. The run's row is created here (status queued) before the
process starts, so it is listed at once and a launch that fails is recorded.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import click

from curator.config import load as load_config
from store import DEFAULT_PATH, Store

#: How long a foreground launcher waits for its run to stop after passing on a signal.
STOP_GRACE_S = 120


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


def launch(db: str, kind: str, algorithm: str, model: str, args: list[str], output: str,
           accelerate_config: str | None = None, detach: bool = False) -> int:
    """Create the run row, start the process, and (unless detached) wait for it, passing on SIGINT/SIGTERM."""
    with Store.open(db) as store:
        run_id = store.create_run(kind, algorithm, model, {"argv": args}, output_dir=output)
    argv = training_command(algorithm, [*args, "--db", db, "--run-id", run_id, "--output", output], accelerate_config)
    Path(output).mkdir(parents=True, exist_ok=True)
    try:
        if detach:
            log = open(Path(output) / "run.log", "ab")
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            click.echo(f"run {run_id} started (pid {proc.pid}); log: {Path(output) / 'run.log'}")
            return 0
        proc = subprocess.Popen(argv)
    except OSError as exc:
        with Store.open(db) as store:
            store.update_run(run_id, status="failed", error=f"could not start {argv[0]}: {exc}")
        raise click.ClickException(f"could not start {argv[0]}: {exc}") from None
    return _wait(proc)


def _wait(proc: subprocess.Popen) -> int:
    def forward(signum: int, frame: Any) -> None:
        proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _default_output(algorithm: str) -> str:
    return f"runs/{algorithm}-{time.strftime('%Y%m%d-%H%M%S')}"


def _data_options(f: Callable) -> Callable:
    for option in reversed([
        click.option("--db", "db", default=None, help="The store (default: curator's --db)."),
        click.option("--data", default=None, help="A JSONL export or curated SQLite file (default: the store)."),
        click.option("--output", default=None, help="Output directory (default: runs/<algorithm>-<time>)."),
        click.option("--tiny-config", default=None, help="JSON overriding the tiny model's size/template."),
        click.option("--chat-template", default=None, help="chatml|llama3|plain or a Jinja file."),
        click.option("--seed", type=int, default=None),
        click.option("--detach", is_flag=True, help="Start in the background and return the run id."),
    ]):
        f = option(f)
    return f


def _flags(**options: Any) -> list[str]:
    """``--name value`` for the options that were given (True flags without a value)."""
    out: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is None or value is False:
            continue
        out += [flag] if value is True else [flag, str(value)]
    return out


PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


@click.group("train")
def train() -> None:
    """Train on the accepted trajectories (LoRA SFT with MAE + PKT, GRPO, DPO).

    Options not listed here are passed on to `python -m training <algorithm>`
    (see `python -m training <algorithm> --help`).
    """


def _train_command(algorithm: str) -> Callable:
    @train.command(algorithm, context_settings=PASSTHROUGH)
    @click.option("--base-model", default=None, help="Hub id, local directory, adapter directory, or 'tiny'.")
    @click.option("--max-steps", type=int, default=None)
    @click.option("--epochs", type=float, default=None)
    @click.option("--lr", type=float, default=None, help="Learning rate.")
    @click.option("--accelerate-config", default=None, type=click.Path(exists=True, dir_okay=False),
                  help="Launch through `accelerate launch` with this config.")
    @_data_options
    @click.pass_context
    def command(ctx: click.Context, base_model: str | None, max_steps: int | None, epochs: float | None,
                lr: float | None, accelerate_config: str | None, db: str | None, data: str | None,
                output: str | None, tiny_config: str | None, chat_template: str | None, seed: int | None,
                detach: bool) -> None:
        obj = ctx.obj or {}
        defaults = load_config(obj.get("config")).train
        base_model = base_model or defaults.base_model
        args = _flags(
            data=data, base_model=base_model, max_steps=max_steps if max_steps is not None else defaults.max_steps,
            epochs=epochs if epochs is not None else defaults.epochs, lr=lr, tiny_config=tiny_config,
            chat_template=chat_template, seed=seed,
        )
        if algorithm == "sft":
            args += _flags(lr=None if lr is not None else defaults.learning_rate, lora_r=defaults.lora_rank)
            if "--w-max" not in ctx.args:
                args += ["--w-max", str(defaults.w_max)]
            if not defaults.mae and "--no-mae" not in ctx.args:
                args.append("--no-mae")
        store = db or obj.get("db") or DEFAULT_PATH
        code = launch(store, "train", algorithm, base_model, [*args, *ctx.args], output or _default_output(algorithm),
                      accelerate_config, detach)
        ctx.exit(code)

    command.__doc__ = {
        "sft": "LoRA SFT with the MAE x PKT weighted loss (--w-max 1: no PKT, --no-mae, --from-scratch, --curriculum).",
        "grpo": "GRPO with the judge's error-type reward against the approved calls.",
        "dpo": "DPO on step-level pairs: corrections, and accepted over rejected trajectories.",
    }[algorithm]
    return command


for _algorithm in ("sft", "grpo", "dpo"):
    _train_command(_algorithm)


@click.command("eval", context_settings=PASSTHROUGH)
@click.option("--model", required=True, help="Adapter/model directory, hub id, 'tiny', or the endpoint's model name.")
@click.option("--base-url", default=None, help="An OpenAI-compatible endpoint (the key is read from --api-key-env).")
@click.option("--api-key-env", default=None, help="Environment variable holding the endpoint's key.")
@click.option("--limit", type=int, default=None, help="Evaluate on the first N gold items.")
@_data_options
@click.pass_context
def eval_(ctx: click.Context, model: str, base_url: str | None, api_key_env: str | None, limit: int | None,
          db: str | None, data: str | None, output: str | None, tiny_config: str | None, chat_template: str | None,
          seed: int | None, detach: bool) -> None:
    """TS / PI / CF, parse-error and hallucination rates over the gold single-step calls."""
    args = _flags(model=model, base_url=base_url, api_key_env=api_key_env, limit=limit, data=data,
                  tiny_config=tiny_config, chat_template=chat_template, seed=seed)
    store = db or (ctx.obj or {}).get("db") or DEFAULT_PATH
    ctx.exit(launch(store, "eval", "eval", model, [*args, *ctx.args], output or _default_output("eval"),
                    detach=detach))


@click.command("runs")
@click.option("--db", "db", default=None, help="The store (default: curator's --db).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
@click.pass_context
def runs(ctx: click.Context, db: str | None, as_json: bool) -> None:
    """List training and evaluation runs, newest first."""
    with Store.open(db or (ctx.obj or {}).get("db") or DEFAULT_PATH, create=False) as store:
        found = store.runs()
    if as_json:
        for run in found:
            click.echo(json.dumps(run.__dict__, default=str))
        return
    if not found:
        click.echo("no runs yet")
        return
    click.echo(f"{'id':<16}  {'kind':<5}  {'algo':<4}  {'status':<9}  {'model':<24}  {'created':<19}  result")
    for run in found:
        click.echo(f"{run.id:<16}  {run.kind:<5}  {run.algorithm:<4}  {run.status:<9}  {run.base_model[:24]:<24}  "
                   f"{(run.created_at or '')[:19]:<19}  {_result(run)}")


def _result(run: Any) -> str:
    if run.error:
        return run.error[:60]
    summary = run.summary or {}
    if "metrics" in summary:
        m = summary["metrics"]
        return f"TS {m['ts']:.0%}  PI {m['pi']:.0%}  CF {m['cf']:.0%}  (n={m['n']})"
    if summary.get("train_loss") is not None:
        return f"loss {summary['train_loss']:.3f} after {summary.get('steps')} steps"
    return ""


COMMANDS = [train, eval_, runs]
