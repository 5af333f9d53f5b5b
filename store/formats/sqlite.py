"""SQLite export: a self-contained curated store holding only the selected trajectories; SQLite import: another
store merged in (``store.merge``).

The file has the store's schema, so it opens in ``curator --db``, ``sqlite3`` or
Datasette, and it carries everything needed to review or train on it again:
the trajectories with their messages, every tag, review, note and correction
row (the append-only history, not just the current state) with the current
decisions it gives and the store's decision rule, their toolsets and those
toolsets' gold items. Runs stay behind. It uses a rollback journal rather
than WAL, so it is one file that can be copied or opened read-only.

The copy is ``INSERT … SELECT`` between the store and the attached new file in
one read transaction: a consistent snapshot even while others write.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Callable, Iterable

from ..db import Store
from ..schema import migrate
from .files import atomic_output
from .summary import ExportSummary, MergeSummary

_SELECTED = "trajectory_id IN (SELECT id FROM temp.export_ids)"
_TOOLSETS = "(SELECT DISTINCT toolset FROM main.trajectories WHERE id IN (SELECT id FROM temp.export_ids))"
#: Each copied table and the rows it keeps, parents before children (foreign keys are on).
TABLES: tuple[tuple[str, str], ...] = (
    ("toolsets", f"name IN {_TOOLSETS}"),
    ("tools", f"toolset IN {_TOOLSETS}"),
    ("trajectories", "id IN (SELECT id FROM temp.export_ids)"),
    ("messages", _SELECTED),
    ("tags", _SELECTED),
    ("reviews", _SELECTED),
    ("review_state", _SELECTED),
    ("weight_marks", _SELECTED),
    ("notes", _SELECTED),
    ("corrections", _SELECTED),
    ("settings", "1"),
    ("gold_calls", f"toolset IN {_TOOLSETS}"),
)


def export_sqlite(store: Store, out: str | os.PathLike[str], status: str = "accepted") -> ExportSummary:
    """Write the trajectories the review filter ``status`` selects to a new store at ``out``."""
    return _export(store, out, lambda: store.trajectory_ids(review=status))


def export_trajectories(store: Store, out: str | os.PathLike[str], ids: Iterable[str]) -> ExportSummary:
    """Write the trajectories ``ids`` (those that exist) to a new store at ``out``: e.g. one annotator's share."""
    wanted = list(ids)
    return _export(store, out, lambda: wanted)


def _export(store: Store, out: str | os.PathLike[str], select: Callable[[], list[str]]) -> ExportSummary:
    with atomic_output(out) as temp:
        _create(temp)
        return ExportSummary(_copy(store, temp, select))


def _create(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        migrate(conn, str(path))
    finally:
        conn.close()


def _copy(store: Store, path: Path, select: Callable[[], list[str]]) -> int:
    """Copy the trajectories ``select`` names (called inside the read transaction: one snapshot) and what
    belongs to them; returns how many were copied."""
    conn = store.conn
    conn.execute("ATTACH DATABASE ? AS export", (str(path),))
    try:
        conn.execute("CREATE TEMP TABLE export_ids (id TEXT PRIMARY KEY)")
        conn.execute("BEGIN")
        try:
            conn.executemany("INSERT OR IGNORE INTO temp.export_ids (id) SELECT id FROM main.trajectories "
                             "WHERE id = ?", ((i,) for i in select()))
            for table, where in TABLES:
                columns = ", ".join(r[1] for r in conn.execute(f"PRAGMA export.table_info({table})"))
                conn.execute(f"INSERT INTO export.{table} ({columns}) "
                             f"SELECT {columns} FROM main.{table} WHERE {where} ORDER BY rowid")
            copied = conn.execute("SELECT count(*) FROM temp.export_ids").fetchone()[0]
            conn.execute("COMMIT")
            return int(copied)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.execute("DROP TABLE temp.export_ids")
    finally:
        conn.execute("DETACH DATABASE export")


def import_sqlite(store: Store, path: str | os.PathLike[str]) -> MergeSummary:
    """``curator import OTHER.db``: merge another curator store into this one (``store.merge``)."""
    from ..merge import merge_store  # store.merge reads its summary type from this package: imported on use

    return merge_store(store, path)
