"""`curator train sft|grpo|dpo`, `curator eval` and `curator runs`.

Training and evaluation run as `python -m training …` in a subprocess (or
`accelerate launch` with several GPUs or an accelerate config), so this module
never imports torch. ``curator.runs.start_run`` creates the run's row (status
queued) before the process starts, so it is listed at once and a launch that
fails is recorded.
"""
from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import click

from curator.config import load as load_config
from curator.runs import LOG_FILE, RunError, result, start_run, train_args
from store import DEFAULT_PATH, Store


def launch(db: str, kind: str, algorithm: str, model: str, args: list[str], output: str,
           accelerate_config: str | None = None, detach: bool = False) -> int:
    """Start the run and (unless detached) wait for it, passing on SIGINT/SIGTERM; the exit status."""
    try:
        run_id, proc = start_run(db, kind, algorithm, model, args, output, accelerate_config, detach=detach)
    except RunError as exc:
        raise click.ClickException(str(exc)) from None
    if detach:
        click.echo(f"run {run_id} started (pid {proc.pid}); log: {Path(output) / LOG_FILE}")
        return 0
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
        settings = replace(defaults, base_model=base_model or defaults.base_model,
                           max_steps=defaults.max_steps if max_steps is None else max_steps,
                           epochs=defaults.epochs if epochs is None else epochs)
        args = [*_flags(data=data, tiny_config=tiny_config, chat_template=chat_template, seed=seed),
                *train_args(algorithm, settings, lr)]
        store = db or obj.get("db") or DEFAULT_PATH
        code = launch(store, "train", algorithm, settings.base_model, [*args, *ctx.args],
                      output or _default_output(algorithm), accelerate_config, detach)
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
                   f"{(run.created_at or '')[:19]:<19}  {result(run)}")


COMMANDS = [train, eval_, runs]
