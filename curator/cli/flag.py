"""`curator flag`: re-flag every trajectory in the store."""
from __future__ import annotations

import click

from curator.cli.opening import open_store
from curator.cli.options import shared_options
from curator.settings import load as load_config
from store.flagging import FlagSummary, flag_all
from store.taxonomy import MaskPolicy


@shared_options()
@click.command("flag")
@click.option(
    "--mask-instability/--keep-instability",
    default=None,
    help="Mask calls that failed for reasons outside the call (default: [flag] mask_instability in the config).",
)
@click.pass_context
def flag(ctx: click.Context, mask_instability: bool | None) -> None:
    """Re-flag every trajectory: auto tags and MAE weights from call checks and tool feedback.

    Human tags, un-tags and mask toggles are kept: a human decision always wins.
    """
    with open_store(ctx.obj["db"]) as store:
        summary = flag_all(store, mask_policy(ctx.obj["config"], mask_instability))
    click.echo(render_summary(summary))


def mask_policy(config_path: str | None, mask_instability: bool | None = None) -> MaskPolicy:
    """The config's mask policy (``[flag]``), or the one ``--mask-instability/--keep-instability`` asks for."""
    if mask_instability is None:
        return load_config(config_path).flag.policy()
    return MaskPolicy.of(mask_instability)


def render_summary(summary: FlagSummary) -> str:
    lines = [
        f"{summary.trajectories} trajectories flagged: {summary.tagged} assistant messages tagged, "
        f"{summary.masked} masked (weight 0)"
    ]
    if summary.by_code:
        width = max(len(code) for code in summary.by_code)
        lines.append(f"  {'code':<{width}}  messages")
        lines += [f"  {code:<{width}}  {count:>8}" for code, count in summary.by_code.most_common()]
    return "\n".join(lines)


COMMANDS = [flag]
