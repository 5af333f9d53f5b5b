"""`curator dedup`: tag near-duplicate trajectories, so the review queue can filter or hide them."""
from __future__ import annotations

import json
from typing import Any

import click

from curator.cli.opening import open_store
from curator.cli.options import shared_options
from store.dedup import DEFAULT_THRESHOLD, DedupResult, check_threshold, find_duplicates, write_tags
from store.errors import CuratorError


def _threshold(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """The threshold as a number dedup can use, else one line naming the option (click's own error is four)."""
    try:
        number = float(value)
    except ValueError:
        raise CuratorError(f"--threshold: not a number: {value!r}") from None
    try:
        return check_threshold(number)
    except ValueError as exc:
        raise CuratorError(f"--threshold: {exc}") from None


@shared_options()
@click.command("dedup")
@click.option("--threshold", default=str(DEFAULT_THRESHOLD), show_default=True, callback=_threshold, metavar="J",
              help="Jaccard similarity (0.5 to 0.99) of two instructions' shingles from which they are "
                   "near-duplicates.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary and every cluster as JSON.")
@click.option("--dry-run", is_flag=True, help="Find the clusters and print them; write no tag.")
@click.pass_obj
def dedup(obj: dict[str, Any], threshold: float, as_json: bool, dry_run: bool) -> None:
    """Tag near-duplicate trajectories `duplicate`: alike instructions (up to numbers, clause order and a word or
    two, naming the same things: MinHash LSH, then the exact Jaccard similarity) and identical call sequences
    (same tools, same arguments).

    Each cluster keeps one trajectory untagged: the earliest accepted, else the earliest not rejected, else the
    earliest. The tag masks nothing; `curator review --hide-duplicates` (or / in the app) hides the tagged
    ones. A re-run replaces this command's tags; a human un-tag still wins. Running trajectories are left out.
    """
    with open_store(obj["db"]) as store:
        result = find_duplicates(store, threshold)
        if not dry_run:
            write_tags(store, result)
    if as_json:
        click.echo(json.dumps({**result.to_json(), "dry_run": dry_run}, ensure_ascii=False, indent=1))
    else:
        click.echo(render(result, dry_run))


def render(result: DedupResult, dry_run: bool) -> str:
    """The summary: clusters, trajectories tagged, by kind, and what was written."""
    lines = [f"{result.read:,} trajectories read: {len(result.clusters):,} clusters of near-duplicates "
             f"(threshold {result.threshold:g}), {len(result.tagged):,} trajectories tagged duplicate"]
    lines += [f"  {kind:<12}{clusters:>8,} clusters{duplicates:>9,} not kept"
              for kind, (clusters, duplicates) in result.by_kind().items()]
    lines.append("dry run: nothing written" if dry_run else
                 f"{result.written:,} tags written, {result.cleared:,} cleared (their cluster dissolved)")
    return "\n".join(lines)


COMMANDS = [dedup]
