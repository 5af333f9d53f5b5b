"""SQLite export: a self-contained curated store holding only the selected trajectories.

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

from ..db import Store
from ..schema import migrate
from .files import atomic_output
from .summary import ExportSummary

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
    with atomic_output(out) as temp:
        _create(temp)
        return ExportSummary(_copy(store, temp, status))


def _create(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        migrate(conn, str(path))
    finally:
        conn.close()


def _copy(store: Store, path: Path, status: str) -> int:
    conn = store.conn
    conn.execute("ATTACH DATABASE ? AS export", (str(path),))
    try:
        conn.execute("CREATE TEMP TABLE export_ids (id TEXT PRIMARY KEY)")
        conn.execute("BEGIN")
        try:
            ids = store.trajectory_ids(review=status)  # inside the read transaction: one snapshot
            conn.executemany("INSERT INTO temp.export_ids (id) VALUES (?)", ((i,) for i in ids))
            for table, where in TABLES:
                columns = ", ".join(r[1] for r in conn.execute(f"PRAGMA export.table_info({table})"))
                conn.execute(f"INSERT INTO export.{table} ({columns}) "
                             f"SELECT {columns} FROM main.{table} WHERE {where} ORDER BY rowid")
            conn.execute("COMMIT")
            return len(ids)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.execute("DROP TABLE temp.export_ids")
    finally:
        conn.execute("DETACH DATABASE export")
