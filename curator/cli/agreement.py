"""`curator agreement`: how far annotators agree on decisions and error codes, and the auto-flagger with them."""
from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from curator.cli.opening import open_store
from curator.cli.options import shared_options
from store.agreement import store_agreement
from store.text import SIGN, inert, inert_console, json_text, visible

NO_OVERLAP = "no trajectory was decided (accept or reject) by two annotators yet: there is no agreement to measure"
NO_CODES = "error codes: neither annotator of any pair tagged a message of a trajectory both decided"
NO_FLAGS = "flagger vs humans: no auto or human tag on a message humans judged"


@shared_options()
@click.command("agreement")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@click.pass_context
def agreement(ctx: click.Context, as_json: bool) -> None:
    """How far annotators agree, per pair and overall, and how the auto-flagger fares against them.

    \b
    decisions   per pair, on the trajectories both decided (accept or reject; a skip
                is no decision; each one's latest review counts, adjudications aside):
                n, percent agreement, Cohen's kappa; overall Krippendorff's alpha
                (nominal) and the mean pairwise percent agreement.
    codes       per pair and error code one of them used, on the assistant messages
                (and any message either tagged) of the trajectories both decided:
                whether each one's latest tag is there; n, percent, kappa.
    flagger     per code, the auto tags against the humans' latest tag or un-tag,
                a message of a trajectory a human decided without the code being a
                no: tp, fp, fn, precision, recall.

    Kappa or alpha is shown as undefined, with the reason, when everyone gave one
    and the same value. Needs the team extra: pip install 'tool-curator[team]'.
    """
    with open_store(ctx.obj["db"]) as store:
        result = store_agreement(store)
    if as_json:
        click.echo(json_text(json.dumps(result, indent=2, ensure_ascii=False)))
        return
    console = inert_console()
    if result["decisions"]["overall"]["trajectories"]:
        console.print(decision_table(result["decisions"]["pairs"]))
        click.echo(describe_overall(result["decisions"]["overall"]))
        console.print(code_table(result["codes"]) if result["codes"] else NO_CODES)
    else:
        click.echo(NO_OVERLAP)
    console.print(flagger_table(result["flagger"]) if result["flagger"] else NO_FLAGS)


def decision_table(pairs: list[dict[str, Any]]) -> Table:
    table = _table("decisions", ["annotators", "trajectories", "agreement", "Cohen's kappa"], pairs)
    for pair in pairs:
        _add_row(table, pair, _pair(pair), str(pair["n"]), _percent(pair["percent_agreement"]),
                 _number(pair["kappa"]))
    return table


def describe_overall(overall: dict[str, Any]) -> str:
    alpha = overall["krippendorff_alpha"]
    said = f"{alpha:.3f}" if alpha is not None else f"undefined ({overall['alpha_undefined']})"
    return visible(f"overall: {overall['annotators']} annotators, {overall['trajectories']} trajectories decided by "
                   f"two or more; Krippendorff's alpha {said}; mean pairwise agreement "
                   f"{_percent(overall['mean_pairwise_percent_agreement'])}", SIGN)


def code_table(rows: list[dict[str, Any]]) -> Table:
    table = _table("error codes", ["annotators", "code", "messages", "agreement", "Cohen's kappa"], rows)
    for row in rows:
        _add_row(table, row, _pair(row), inert(row["code"]), str(row["n"]), _percent(row["percent_agreement"]),
                 _number(row["kappa"]))
    return table


def flagger_table(rows: list[dict[str, Any]]) -> Table:
    table = _table("auto-flagger vs humans", ["code", "tp", "fp", "fn", "precision", "recall"], [])
    for row in rows:
        table.add_row(inert(row["code"]), str(row["tp"]), str(row["fp"]), str(row["fn"]), _number(row["precision"]),
                      _number(row["recall"]))
    return table


def _table(title: str, columns: list[str], rows: list[dict[str, Any]]) -> Table:
    """Names and codes fold rather than being cut short; a note column only when some kappa is undefined."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    if any(row.get("kappa_undefined") for row in rows):
        table.add_column("why kappa is undefined", overflow="fold")
    return table


def _add_row(table: Table, row: dict[str, Any], *cells: Any) -> None:
    notes = [inert(row["kappa_undefined"] or "")] if len(table.columns) > len(cells) else []
    table.add_row(*cells, *notes)


def _pair(row: dict[str, Any]) -> Any:
    return inert(" / ".join(row["annotators"]))


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


COMMANDS = [agreement]
