"""Merging annotators' stores into one: trajectories as a union, review work as a union of events.

Each annotator reviews in a store of their own (``curator assign`` hands out copies); ``merge_store``
brings one such store into another:

- **Trajectories** are the same trajectory when they have the same id. One of the same id whose
  content (toolset, instruction, messages' role, content, calls, call id and name) differs is a
  ``MergeConflict``: the stores are not copies of one dataset. Weights are review data, not content.
  Toolsets of the same name must hold the same tools, gold items of the same id the same item.
- **Review work** — reviews, human tags and un-tags, notes, corrections and mask marks, with their
  annotators and times — is copied row by row. A row is identified by its *natural key*, every column
  but its row id (an undo's ``undoes`` by the natural key of the review it undoes), and a source adds
  only the rows the target lacks (as a multiset: twice the same row in a source is kept twice). So
  merging a store twice adds nothing, and merging A then B gives the rows B then A does.
- **Derived state** is recomputed, not copied: each touched trajectory's current decision by the
  target's decision rule (``store.decisions``), and a message's human weight from its latest mask
  mark (by time, then annotator, then weight). Auto tags stay behind: the caller re-flags
  ``MergeSummary.unflagged`` with its mask policy (``store.flagging.flag_all``). Runs and leases
  are each machine's own history and stay behind too, as do trajectories still being written.

The source is opened read-only (it may be open in its annotator's app) and read in one snapshot;
everything is written in one transaction on the target, so a conflict leaves it as it was.
"""
from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .db import MESSAGE_COLUMNS, Store
from .errors import CuratorError, StoreError
from .formats.summary import MergeSummary
from .records import loads
from .schema import SCHEMA_VERSION, check_curator_file

#: The event tables merged row by row, with the summary field that counts them and the rows they take.
EVENTS: tuple[tuple[str, str, str], ...] = (
    ("reviews", "reviews", ""),
    ("tags", "tags", "AND source = 'human'"),
    ("notes", "notes", ""),
    ("corrections", "corrections", ""),
    ("weight_marks", "marks", ""),
)
#: A message's content: what must agree for two stores to hold the same trajectory.
CONTENT_COLUMNS = ("role", "content", "tool_calls", "tool_call_id", "name")
#: The source trajectories that are merged: all but those a process is still writing.
_MERGED = "SELECT id FROM trajectories WHERE status != 'running'"
#: The merged trajectories' ids, in a temporary table of the target's connection.
_SCOPE = "temp.merge_ids"
_BATCH = 500

__all__ = ["MergeConflict", "MergeSummary", "merge_store"]


class MergeConflict(CuratorError):
    """The two stores hold different things under one id: they are not copies of one dataset."""


def merge_store(into: Store, source_path: str | os.PathLike[str]) -> MergeSummary:
    """Merge the curator store at ``source_path`` into ``into``, in one transaction (see the module)."""
    source = _open_source(source_path, into)
    try:
        source.execute("BEGIN")  # one snapshot of the source, even while its annotator works on
        with into.transaction():
            return _merge(into, source, str(source_path))
    finally:
        source.close()


def _open_source(path: str | os.PathLike[str], into: Store) -> sqlite3.Connection:
    """A read-only connection to the curator store at ``path``, of this curator's schema version."""
    file = Path(path)
    if not file.is_file():
        raise StoreError(f"{path}: " + ("is a directory, not a store" if file.is_dir() else "no such store"))
    if file.resolve() == Path(into.path).resolve():
        raise StoreError(f"{path}: is the store it would be merged into")
    conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        version = check_curator_file(conn, str(path))
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # a file that is not SQLite fails here
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{path}: not a curator store ({exc})") from None
    except BaseException:
        conn.close()
        raise
    if version != SCHEMA_VERSION:
        conn.close()
        raise StoreError(f"{path}: not a curator store (empty)" if version == 0 else
                         f"{path}: store schema version {version} is older than this curator's ({SCHEMA_VERSION}); "
                         "open it once with curator to bring it up to date, then merge it")
    return conn


def _merge(into: Store, source: sqlite3.Connection, name: str) -> MergeSummary:
    summary = MergeSummary()
    where = _Where(name, into.path)
    _merge_toolsets(into, source, where, summary)
    _merge_gold(into, source, where, summary)
    into.conn.execute("CREATE TEMP TABLE IF NOT EXISTS merge_ids (id TEXT PRIMARY KEY)")
    into.conn.execute(f"DELETE FROM {_SCOPE}")
    try:
        touched = dict.fromkeys(_merge_trajectories(into, source, where, summary))
        for table, field, condition in EVENTS:
            added = _merge_events(into, source, table, condition)
            setattr(summary, field, len(added))
            touched.update(dict.fromkeys(added))
        _refresh_human_weights(into, touched)
    finally:
        into.conn.execute(f"DELETE FROM {_SCOPE}")
    into.refresh_decisions(touched)
    summary.unflagged = list(touched)
    return summary


@dataclass(frozen=True)
class _Where:
    """The two files of one merge, for naming both in a conflict."""

    source: str
    target: str

    def conflict(self, what: str, difference: str) -> MergeConflict:
        return MergeConflict(f"{what} differs between {self.source} and {self.target} ({difference}); "
                             "nothing was merged")


# -- toolsets and gold ------------------------------------------------------------------------
def _merge_toolsets(into: Store, source: sqlite3.Connection, where: _Where, summary: MergeSummary) -> None:
    """Add the source's toolsets the target lacks, as they are; one of the same name must hold the same tools."""
    toolset_columns, tool_columns = _columns(source, "toolsets"), _columns(source, "tools")
    for row in source.execute(f"SELECT {', '.join(toolset_columns)} FROM toolsets ORDER BY name").fetchall():
        name = row[toolset_columns.index("name")]
        tools = _tools(source, name)
        if into.conn.execute("SELECT 1 FROM toolsets WHERE name = ?", (name,)).fetchone() is None:
            _insert(into, "toolsets", toolset_columns, row)
            for tool in source.execute(f"SELECT {', '.join(tool_columns)} FROM tools WHERE toolset = ?", (name,)):
                _insert(into, "tools", tool_columns, tool)
            summary.toolsets += 1
            summary.tools += len(tools)
        elif _tools(into.conn, name) != tools:
            raise where.conflict(f"toolset {name!r}", "its tools")


def _tools(conn: sqlite3.Connection, toolset: str) -> list[tuple[str, str, Any]]:
    """A toolset's tools in order: name, description and decoded parameters."""
    return [(name, description, loads(parameters)) for name, description, parameters in conn.execute(
        "SELECT name, description, parameters FROM tools WHERE toolset = ? ORDER BY position", (toolset,))]


def _merge_gold(into: Store, source: sqlite3.Connection, where: _Where, summary: MergeSummary) -> None:
    """Add the source's gold items the target lacks; one of the same id must be the same item."""
    columns = _columns(source, "gold_calls")
    for row in source.execute(f"SELECT {', '.join(columns)} FROM gold_calls ORDER BY rowid"):
        item = dict(zip(columns, row))
        mine = into.conn.execute("SELECT toolset, messages, calls FROM gold_calls WHERE id = ?",
                                 (item["id"],)).fetchone()
        if mine is None:
            _insert(into, "gold_calls", columns, row)
            summary.gold += 1
            continue
        for column, value in zip(("toolset", "messages", "calls"), mine):
            if _decoded(column, value) != _decoded(column, item[column]):
                raise where.conflict(f"gold item {item['id']!r}", f"its {column}")


def _decoded(column: str, value: Any) -> Any:
    return value if column == "toolset" else loads(value)


# -- trajectories -------------------------------------------------------------------------------
def _merge_trajectories(into: Store, source: sqlite3.Connection, where: _Where,
                        summary: MergeSummary) -> list[str]:
    """Add the source's trajectories the target lacks (with their messages) and check the ones it has;
    fills the merge scope with every merged id and returns the added ones."""
    summary.running = source.execute("SELECT count(*) FROM trajectories WHERE status = 'running'").fetchone()[0]
    columns = [c for c in _columns(source, "trajectories") if c != "lease_id"]  # a lease is the source's process
    rows = source.execute(f"SELECT {', '.join(columns)} FROM trajectories WHERE id IN ({_MERGED}) "
                          "ORDER BY rowid").fetchall()
    into.conn.executemany(f"INSERT INTO {_SCOPE} (id) VALUES (?)", ((r[0],) for r in rows))
    present = {r[0] for r in into.conn.execute(
        f"SELECT id FROM trajectories WHERE id IN (SELECT id FROM {_SCOPE})")}
    added = [r[0] for r in rows if r[0] not in present]
    for row in rows:
        if row[0] in present:
            _check_same(into.conn, source, row[0], where)
        else:
            _insert(into, "trajectories", columns, row)
    _copy_messages(into, source, set(added))
    summary.trajectories, summary.skipped = len(added), len(present)
    return added


def _check_same(target: sqlite3.Connection, source: sqlite3.Connection, trajectory_id: str, where: _Where) -> None:
    """Refuse a trajectory whose content differs between the stores, naming what differs."""
    ours, theirs = _content(target, trajectory_id), _content(source, trajectory_id)
    if ours == theirs:
        return
    (toolset, instruction, messages), (their_toolset, their_instruction, their_messages) = ours, theirs
    if toolset != their_toolset:
        difference = "its toolset"
    elif instruction != their_instruction:
        difference = "its instruction"
    elif len(messages) != len(their_messages):
        difference = f"{len(their_messages)} messages against {len(messages)}"
    else:
        index = next(i for i, (a, b) in enumerate(zip(messages, their_messages)) if a != b)
        field = next(c for c, a, b in zip(CONTENT_COLUMNS, messages[index], their_messages[index]) if a != b)
        difference = f"message {index}: {field}"
    raise where.conflict(f"trajectory {trajectory_id!r}", difference)


def _content(conn: sqlite3.Connection, trajectory_id: str) -> tuple[Any, Any, list[tuple[Any, ...]]]:
    toolset, instruction = conn.execute("SELECT toolset, instruction FROM trajectories WHERE id = ?",
                                        (trajectory_id,)).fetchone()
    messages = conn.execute(f"SELECT {', '.join(CONTENT_COLUMNS)} FROM messages WHERE trajectory_id = ? "
                            "ORDER BY idx", (trajectory_id,)).fetchall()
    return toolset, instruction, messages


def _copy_messages(into: Store, source: sqlite3.Connection, added: set[str]) -> None:
    """The messages of the ``added`` trajectories, copied as they are (weights are set again after the merge)."""
    cursor = source.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE trajectory_id IN ({_MERGED}) "
                            "ORDER BY trajectory_id, idx")
    rows = (row for trajectory_id, group in groupby(cursor, key=lambda r: r[0]) if trajectory_id in added
            for row in group)
    for batch in _batches(rows):
        into.insert_message_rows(batch)


# -- events ----------------------------------------------------------------------------------------
def _merge_events(into: Store, source: sqlite3.Connection, table: str, condition: str) -> list[str]:
    """Add the source's rows of ``table`` that the target lacks, by natural key; returns the trajectory id
    of each added row."""
    columns = [c for c in _columns(source, table) if c != "id"]
    select = f"SELECT id, {', '.join(columns)} FROM {table} WHERE trajectory_id IN ({{scope}}) {condition} ORDER BY id"
    target_ids: dict[tuple[Any, ...], int] = {}
    missing: dict[tuple[Any, ...], int] = {}
    for row_id, key in _natural_keys(into.conn.execute(select.format(scope=f"SELECT id FROM {_SCOPE}")), columns):
        target_ids.setdefault(key, row_id)
        missing[key] = missing.get(key, 0) - 1
    added: list[str] = []
    trajectory = columns.index("trajectory_id")
    for row_id, key, row in _natural_keys(source.execute(select.format(scope=_MERGED)), columns, with_rows=True):
        missing[key] = missing.get(key, 0) + 1
        if missing[key] <= 0:
            continue  # the target holds as many rows with this key as the source has shown so far
        values = list(row)
        if "undoes" in columns and key[columns.index("undoes")] is not None:
            values[columns.index("undoes")] = target_ids[key[columns.index("undoes")]]
        new_id = _insert(into, table, columns, values)
        target_ids.setdefault(key, new_id)
        added.append(row[trajectory])
    return added


def _natural_keys(rows: Iterable[Sequence[Any]], columns: list[str], *, with_rows: bool = False) -> Iterator[Any]:
    """``(row id, natural key)`` (and the row's values, ``with_rows``) for rows ordered by id: every column
    but the id, an ``undoes`` replaced by the natural key of the row it names (an earlier row)."""
    undoes = columns.index("undoes") if "undoes" in columns else None
    keys: dict[int, tuple[Any, ...]] = {}
    for row_id, *values in rows:
        key = list(values)
        if undoes is not None and key[undoes] is not None:
            key[undoes] = keys[key[undoes]]
        keys[row_id] = tuple(key)
        yield (row_id, keys[row_id], values) if with_rows else (row_id, keys[row_id])


def _refresh_human_weights(into: Store, trajectory_ids: Iterable[str]) -> None:
    """Each message with mask marks weighs what its latest mark says (by time, then annotator, then weight)."""
    latest = ("SELECT w.weight FROM weight_marks w WHERE w.trajectory_id = messages.trajectory_id "
              "AND w.message_index = messages.idx ORDER BY w.created_at DESC, w.annotator DESC, w.weight DESC LIMIT 1")
    into.conn.executemany(
        f"UPDATE messages SET weight = ({latest}), weight_source = 'human' WHERE trajectory_id = ? "
        "AND EXISTS (SELECT 1 FROM weight_marks w WHERE w.trajectory_id = messages.trajectory_id "
        "AND w.message_index = messages.idx)", ((i,) for i in trajectory_ids))


# -- rows ----------------------------------------------------------------------------------------
def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _insert(into: Store, table: str, columns: Sequence[str], values: Sequence[Any]) -> int:
    cursor = into.conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                               values)
    return int(cursor.lastrowid)


def _batches(rows: Iterable[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
