"""`curator import`, `curator export`, `curator stats`: data in and out of the store."""
from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from curator.cli.flag import mask_policy, render_summary
from curator.cli.opening import open_store
from curator.cli.options import shared_options
from store import REVIEW_FILTERS
from store.errors import CuratorError, InputError
from store.flagging import flag_all
from store.formats import EXPORTERS, IMPORTERS, detect_format
from store.stats import store_stats
from store.text import SIGN, inert, inert_console, json_text, visible

_SQLITE_SUFFIXES = {".db": "sqlite", ".sqlite": "sqlite", ".sqlite3": "sqlite"}
_IMPORT_SUFFIXES = {".json": "toolalpaca", ".jsonl": "jsonl", **_SQLITE_SUFFIXES}
_EXPORT_SUFFIXES = {".jsonl": "jsonl", **_SQLITE_SUFFIXES}


class OneLineChoice(click.Choice):
    """A choice whose bad value is reported like every other user error: one line, not a usage screen."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            option = max(param.opts, key=len) if param else "value"
            raise CuratorError(f"{option} {value!r}: unknown; choose one of {', '.join(self.choices)}") from None


@contextlib.contextmanager
def removed_on_failure_if_new(db: Path) -> Iterator[None]:
    """Delete the store file (and its WAL side files) again when the import that created it fails: a failed
    first import leaves no empty store behind."""
    new = not db.exists()
    try:
        yield
    except BaseException:
        if new:
            for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
                path.unlink(missing_ok=True)
        raise


def _format(given: str | None, path: Path, suffixes: dict[str, str]) -> str:
    if given:
        return given
    if path.suffix.lower() in suffixes:
        return suffixes[path.suffix.lower()]
    raise CuratorError(f"{path}: cannot tell the format from the file name; pass --format")


def _import_format(given: str | None, path: Path) -> str:
    """``--format``, else the one format whose records the file's first record looks like, else the suffix."""
    if not given and path.is_file():
        given = detect_format(path)
    return _format(given, path, _IMPORT_SUFFIXES)


@shared_options()
@click.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "-f", "fmt", type=OneLineChoice(list(IMPORTERS)), default=None,
              help="Input format (default: told from the first record, else from the extension).")
@click.pass_context
def import_(ctx: click.Context, file: Path, fmt: str | None) -> None:
    """Import FILE into the store, all or nothing.

    \b
    toolalpaca  ToolAlpaca JSON: each API's OpenAPI Documentation becomes a toolset
                (one tool per operation), Instances become trajectories, Golden_Answers
                gold items for evaluation.
    jsonl       the canonical format `curator export --format jsonl` writes.
    xlam        xLAM / APIGen (query, tools, answers): a trajectory and a gold item per record.
    bfcl        BFCL questions + possible_answer/ file of the same name: toolsets and gold items.
    toolace     ToolACE JSON: the system prompt's tool list becomes a toolset, each conversation
                a trajectory (Python-syntax calls, parallel calls, tool results, answers).
    glaive      Glaive function-calling v2 {"system", "chat"}: the functions become a toolset,
                <functioncall> turns calls, FUNCTION RESPONSE their results.
    hermes      Hermes function-calling v1 ShareGPT: <tools> become a toolset, <tool_call> and
                <tool_response> blocks calls (parallel too) and their results.
    sqlite      another curator store (.db, .sqlite): merged in as `curator merge` does —
                new trajectories added, every annotator's reviews, tags, notes, corrections
                and mask marks added once, decisions and flags recomputed.

    Without --format the format is told from the file's first record (else from its
    extension). The whole file is one transaction: a bad record stops the import with
    its line or record number and leaves the store as it was. Ids and toolset names
    derive from the content, so importing a file twice adds nothing; toolsets and gold
    items of the same name are replaced. Calls that break their tool's schema are
    imported and auto-flagged.
    """
    fmt = _import_format(fmt, file)
    if not file.is_file():
        raise InputError(str(file), "is a directory, not a file" if file.is_dir() else "no such file")
    db = ctx.obj["db"]
    try:
        with removed_on_failure_if_new(Path(db)), open_store(db, create=True) as store:
            summary = IMPORTERS[fmt](store, file)
            flags = flag_all(store, mask_policy(ctx.obj.get("config")), summary.unflagged)
    except sqlite3.Error as exc:  # e.g. the store is locked by a long writer: nothing was imported
        raise CuratorError(f"{db}: import of {file} failed, nothing was imported: {exc}") from None
    click.echo(visible(f"imported {summary.describe()} from {file} ({fmt}) into {db}", SIGN))
    if flags.trajectories:
        click.echo(render_summary(flags))


@shared_options()
@click.command("export")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--format", "-f", "fmt", type=OneLineChoice(list(EXPORTERS)), default=None,
              help="Output format (default: from the extension, .jsonl jsonl, .db/.sqlite sqlite).")
@click.option("--status", "status", type=OneLineChoice(list(REVIEW_FILTERS)), default="accepted",
              show_default=True, help="Which trajectories, by current review decision (pending: none yet).")
@click.pass_context
def export(ctx: click.Context, out: Path, fmt: str | None, status: str) -> None:
    """Export the reviewed trajectories to OUT.

    \b
    jsonl     one trajectory a line: {"id", "messages", "tools", "meta"}, OpenAI chat
              messages with "weight": 0|1 on assistant messages (masked and corrected
              calls are 0); tools and meta are JSON text, so datasets.load_dataset
              reads any mix of them; meta.corrections and meta.notes hold the review's fixes
              and notes, and each corrected call follows as a line of its own
              ({id}#correction-{i}, meta.derived_from) that trains the fix.
    sqlite    a self-contained store in the same schema with only those trajectories,
              their toolsets, tags, reviews, notes, corrections and gold items.
    sharegpt  LLaMA-Factory ShareGPT lines (human, gpt, function_call, observation;
              tools as a JSON string) with corrected calls in place of the
              originals; weights are not carried.
    openai    OpenAI fine-tuning lines: only messages, tools (and parallel_tool_calls),
              "weight" on assistant messages; a line whose call arguments are not
              JSON, or with nothing at weight 1, is left out and counted.
    trl       TRL SFTTrainer prompt-completion lines, one per trained assistant
              message (TRL cannot weight messages: a masked call is only ever
              context); tools as JSON text.
    hub       a folder for the Hugging Face Hub: data/train.jsonl (the jsonl export)
              and a dataset card README.md (counts, toolsets, error codes and how
              many train at weight 0, how it was made); datasets.load_dataset(OUT)
              reads it.

    OUT is written to a temporary file and renamed into place when complete.
    """
    fmt = _format(fmt, out, _EXPORT_SUFFIXES)
    db = ctx.obj["db"]
    if out.exists() and Path(db).exists() and out.resolve() == Path(db).resolve():
        raise CuratorError(f"{out}: is the store itself; export to another file")
    try:
        with open_store(db) as store:
            summary = EXPORTERS[fmt](store, out, status)
    except sqlite3.Error as exc:
        raise CuratorError(f"{out}: export from {db} failed, nothing was written: {exc}") from None
    click.echo(visible(f"exported {summary.describe()} ({status}) from {db} to {out} ({fmt})", SIGN))


@shared_options()
@click.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Count trajectories by status, review decision, tag code and toolset."""
    db = ctx.obj["db"]
    with open_store(db) as store:
        counts = store_stats(store)
    if as_json:
        click.echo(json_text(json.dumps(counts, indent=2, ensure_ascii=False)))
        return
    from rich.table import Table

    click.echo(f"{visible(str(db), SIGN)}: {counts['trajectories']} trajectories, {counts['gold_items']} gold items")
    table = Table()
    table.add_column("by")
    table.add_column("value")
    table.add_column("count", justify="right")
    for group, key in (("status", "status"), ("decision", "decision"), ("tag", "tags"), ("toolset", "toolsets")):
        for i, (value, n) in enumerate(counts[key].items()):
            table.add_row(group if i == 0 else "", inert(value), str(n))
        if counts[key]:
            table.add_section()
    inert_console().print(table)


COMMANDS = [import_, export, stats]
