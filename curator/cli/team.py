"""`curator merge`, `curator assign`: annotation teams, each annotator reviewing in a store of their own."""
from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import click

from curator.cli.dataset import removed_on_failure_if_new
from curator.cli.flag import mask_policy
from curator.cli.opening import open_store
from curator.cli.options import shared_options
from store.assignments import assignable, split, write_shares
from store.errors import CuratorError
from store.flagging import flag_all
from store.merge import merge_store
from store.text import SIGN, visible

#: An annotator's name is also their file's name: letters, digits, ``_``, ``-`` and ``.``, not leading ``.``.
_NAME = re.compile(r"\w[\w.-]*")


@shared_options()
@click.command("merge")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--into", "into", default=None, type=click.Path(path_type=Path),
              help="The store to merge into (default: curator's --db; made when missing).")
@click.pass_context
def merge(ctx: click.Context, sources: tuple[Path, ...], into: Path | None) -> None:
    """Merge annotators' stores SOURCES into one, all or nothing.

    Trajectories with the same id are the same trajectory (one whose content differs
    is an error and nothing is merged); every review, human tag and un-tag, note,
    correction and mask mark is added once, with its annotator and time, so merging
    a store twice adds nothing and the order of SOURCES does not matter. Current
    decisions follow the store's decision rule; merged trajectories are re-flagged.
    Sources are only read (they may be open in an annotator's app); runs stay behind.
    """
    target = into or Path(ctx.obj["db"])
    policy = mask_policy(ctx.obj.get("config"))
    try:
        with removed_on_failure_if_new(target), open_store(str(target), create=True) as store:
            with store.transaction():
                summaries = [(source, merge_store(store, source)) for source in sources]
                flag_all(store, policy, dict.fromkeys(i for _, s in summaries for i in s.unflagged))
            total, disagreements = len(store.trajectory_ids()), len(store.trajectory_ids(review="disagreements"))
    except sqlite3.Error as exc:  # e.g. the target is locked by a long writer: nothing was merged
        raise CuratorError(f"{target}: merge failed, nothing was merged: {exc}") from None
    for source, summary in summaries:
        click.echo(visible(f"{source}: {summary.describe()}", SIGN))
    click.echo(visible(f"{target}: {total} trajectories, {disagreements} with annotators who disagree "
                       "(review them with the disagreements filter)", SIGN))


@shared_options()
@click.command("assign")
@click.option("--annotators", required=True, help="Comma-separated names, e.g. ana,ben,cy.")
@click.option("--overlap", type=int, default=1, show_default=True,
              help="How many annotators see each trajectory.")
@click.option("--seed", type=int, default=None, help="Seed of the shuffle (same seed, same shares).")
@click.option("--out", "out", default=None, type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the annotators' stores (default: assignments/ beside the store).")
@click.pass_context
def assign(ctx: click.Context, annotators: str, overlap: int, seed: int | None, out: Path | None) -> None:
    """Split the pending trajectories among annotators: OUT/<annotator>.db each.

    Each pending trajectory goes to exactly --overlap annotators and the shares differ
    by at most one. Each file is a self-contained store (the trajectories with their
    toolsets, tags and gold items) to review in `curator --db OUT/ana.db review`, then
    bring back with `curator merge OUT/*.db`.
    """
    names = annotator_names(annotators)
    check_overlap(overlap, names)
    db = ctx.obj["db"]
    folder = out or Path(db).resolve().parent / "assignments"
    with open_store(db) as store:
        shares = split(assignable(store), names, overlap, seed)
        paths = write_shares(store, folder, shares)
    for name in names:
        click.echo(visible(f"{name}: {len(shares[name])} trajectories in {paths[name]}", SIGN))


def annotator_names(text: str) -> list[str]:
    """The names of ``--annotators``: comma-separated, none empty, none twice, each usable as a file name."""
    names = [n.strip() for n in text.split(",")]
    if "" in names:
        raise CuratorError(f"--annotators {text!r}: an empty name; give names separated by commas")
    bad = next((n for n in names if not _NAME.fullmatch(n)), None)
    if bad is not None:
        raise CuratorError(f"--annotators: {bad!r} cannot be a file name; use letters, digits, '_', '-' and '.'")
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:
        raise CuratorError(f"--annotators: {twice!r} is named twice")
    return names


def check_overlap(overlap: int, names: list[str]) -> None:
    if not 1 <= overlap <= len(names):
        raise CuratorError(f"--overlap {overlap}: must be between 1 and the number of annotators ({len(names)})")


COMMANDS = [merge, assign]
