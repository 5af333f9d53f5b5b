"""`curator train sft|grpo|dpo|itool`, `curator eval` and `curator runs`.

Training and evaluation run as `python -m training …` in a subprocess (or
`accelerate launch` with several GPUs or an accelerate config), so this module
never imports torch. The options are built from the configs of
``training.config`` (stdlib only), so `curator train sft --help` lists what
`python -m training sft --help` does. ``curator.launcher.start_run`` creates the
run's row (status queued) before the process starts, so it is listed at once and
a launch that fails is recorded.
"""
from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import click

from curator.cli.opening import open_store, reap_store
from curator.cli.options import shared_options
from curator.settings import TrainSettings
from curator.settings import load as load_config
from curator.launcher import (LOG_FILE, RunError, dataset_size, duration, final_loss, result, run_seconds,
                              start_run, started)
from store.text import SIGN, visible
from training.config import TRAINING, DataConfig, EvalConfig, describe, field_types, to_argv


def launch(db: str, kind: str, algorithm: str, args: list[str], output: str,
           accelerate_config: str | None = None, detach: bool = False) -> int:
    """Start the run and (unless detached) wait for it, passing on SIGINT/SIGTERM; the exit status."""
    reap_store(db)
    try:
        run_id, proc = start_run(db, kind, algorithm, args, output, accelerate_config, detach=detach)
    except RunError as exc:
        raise click.ClickException(str(exc)) from None
    if detach:
        click.echo(visible(f"run {run_id} started (pid {proc.pid}); log: {Path(output) / LOG_FILE}", SIGN))
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


#: Fields curator sets itself: the store is curator's --db, the output a fresh directory unless given.
_OWN = ("db", "output")


def config_options(config: type[DataConfig]) -> Callable[[Callable], Callable]:
    """One click option per field of ``config`` (the options of ``python -m training``), None when not given."""
    types = field_types(config)

    def decorate(f: Callable) -> Callable:
        for spec in reversed([s for s in fields(config) if s.init and s.name not in _OWN]):
            flags = ["--" + spec.name.replace("_", "-"), *spec.metadata["aliases"]]
            boolean = types[spec.name] is bool
            names = [f"{flag}/--no-{flag[2:]}" for flag in flags] if boolean else flags
            f = click.option(*names, spec.name, type=None if boolean else types[spec.name], default=None,
                             help=describe(spec))(f)
        return f

    return decorate


def _common_options(f: Callable) -> Callable:
    for option in reversed([
        click.option("--output", default=None, help="Output directory (default: runs/<algorithm>-<time>)."),
        click.option("--detach", is_flag=True, help="Start in the background and return the run id."),
    ]):
        f = option(f)
    return f


def _given(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}


@shared_options()
@click.group("train")
def train() -> None:
    """Train on the accepted trajectories (LoRA SFT with MAE + PKT, GRPO, DPO, iTool's loop).

    Every option is a field of the algorithm's config in training/config.py, where
    its default lives; `[train]` in curator.toml overrides fields for every run,
    and an option given here overrides both.
    """


def _train_command(algorithm: str) -> None:
    @shared_options()
    @train.command(algorithm, help=TRAINING[algorithm].__doc__)
    @click.option("--accelerate-config", default=None, type=click.Path(exists=True, dir_okay=False),
                  help="Launch through `accelerate launch` with this config.")
    @_common_options
    @config_options(TRAINING[algorithm])
    @click.pass_context
    def command(ctx: click.Context, accelerate_config: str | None, output: str | None, detach: bool,
                **options: Any) -> None:
        settings = TrainSettings(algorithm, {**load_config(ctx.obj["config"]).train.overrides, **_given(options)})
        ctx.exit(launch(ctx.obj["db"], "train", algorithm, settings.argv(),
                        output or _default_output(algorithm), accelerate_config, detach))


for _algorithm in TRAINING:
    _train_command(_algorithm)


@shared_options()
@click.command("eval", help=EvalConfig.__doc__)
@_common_options
@config_options(EvalConfig)
@click.pass_context
def eval_(ctx: click.Context, output: str | None, detach: bool, **options: Any) -> None:
    ctx.exit(launch(ctx.obj["db"], "eval", "eval", to_argv(_given(options)), output or _default_output("eval"),
                    detach=detach))


@shared_options()
@click.command("runs")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
@click.pass_context
def runs(ctx: click.Context, as_json: bool) -> None:
    """List training and evaluation runs, newest first: status, data, start, duration and result (the final
    training loss, TS/PI/CF, or the error). A loop's warm-up and rounds are runs of their own: their
    ``parent_id`` (in --json) is the loop's id."""
    with open_store(ctx.obj["db"]) as store:
        found = [(run, final_loss(store, run)) for run in store.runs()]
    if as_json:
        for run, loss in found:
            click.echo(json.dumps({**run.__dict__, "final_loss": loss}, default=str))
        return
    if not found:
        click.echo("no runs yet")
        return
    click.echo(f"{'id':<16}  {'kind':<5}  {'algo':<4}  {'status':<9}  {'model':<24}  {'dataset':<10}  "
               f"{'started':<11}  {'duration':<8}  result")
    for run, loss in found:
        click.echo(visible(f"{run.id:<16}  {run.kind:<5}  {run.algorithm:<4}  {run.status:<9}  "
                           f"{run.base_model[:24]:<24}  {dataset_size(run):<10}  {started(run):<11}  "
                           f"{duration(run_seconds(run)):<8}  {result(run, loss)}", SIGN))


COMMANDS = [train, eval_, runs]
