"""``Store``: one SQLite file holding toolsets, trajectories, review work and runs.

WAL mode, so a headless simulation, the TUI and an export can use one file at
once. Every multi-row write goes through ``transaction()`` (``BEGIN
IMMEDIATE``, so concurrent writers wait for the lock instead of failing).
Reviews and human tags are append-only: the current state is derived from the
latest rows, so nothing an annotator did is ever overwritten.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import uuid
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence, TypeVar

from .records import (
    DECISIONS,
    STATUSES,
    Correction,
    GoldItem,
    Message,
    Note,
    Tag,
    Tool,
    Toolset,
    Trajectory,
    auto_origin,
    check,
    correction_examples,
    dumps,
    loads,
    new_id,
    now,
    openai_message,
    to_record,
)
from .errors import StoreError
from .redaction import redact
from .decisions import DecisionBookkeeping
from .leases import LeaseBookkeeping
from .pairs import PairBookkeeping
from .runs import RunBookkeeping
from .scores import ScoreBookkeeping
from .schema import check_curator_file, migrate
from .taxonomy import check_code
from .toolcalls import ToolCall

if TYPE_CHECKING:
    import sqlite_utils

DEFAULT_PATH = "curator.db"
#: Review filters accepted by exports and queries; "pending" means no current decision.
REVIEW_FILTERS = ("accepted", "rejected", "skipped", "pending", "disagreements", "all")
#: Review filter -> the current decision it selects (``None``: no decision yet); "all" selects any, and
#: "disagreements" the trajectories whose annotators voted differently and no adjudicator decided
#: (``store.decisions``).
FILTER_DECISION = {"accepted": "accept", "rejected": "reject", "skipped": "skip", "pending": None}
_PAGE = 500
M = TypeVar("M")


class Store(RunBookkeeping, LeaseBookkeeping, DecisionBookkeeping, PairBookkeeping, ScoreBookkeeping):
    def __init__(self, conn: sqlite3.Connection, path: str):
        self.conn = conn
        self.path = path

    @functools.cached_property
    def db(self) -> "sqlite_utils.Database":
        """The same connection as a sqlite-utils ``Database``, for scripts and notebooks.

        Imported on first use: sqlite-utils loads pandas when it is installed,
        which would add half a second to every `curator` start.
        """
        import sqlite_utils

        return sqlite_utils.Database(self.conn)

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str] = DEFAULT_PATH, *, create: bool = True) -> "Store":
        """Open (or create) the store at ``path`` and migrate it to the current schema."""
        path = str(path)
        if not create and not Path(path).is_file():
            raise StoreError(f"{path}: no such store")
        parent = Path(path).resolve().parent
        if not parent.is_dir():
            raise StoreError(f"{path}: directory {parent} does not exist")
        try:
            conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open the store ({exc})") from None
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            check_curator_file(conn, path)  # before WAL: another program's file is left exactly as it was
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal" and path != ":memory:":
                raise StoreError(f"{path}: could not switch the store to WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn, path)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreError(f"{path}: not a curator store ({exc})") from None
            raise
        return cls(conn, path)

    def close(self) -> None:
        self.conn.close()

    def data_version(self) -> int:
        """A number that changes when another connection commits to the file (``PRAGMA data_version``).

        One cheap read, so screens poll it from timers to notice a headless simulation or another annotator.
        """
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def make_self_contained(self) -> None:
        """Fold the write-ahead log into the file and switch to a rollback journal: the file alone is the store.

        For a snapshot that is copied or opened read-only after this connection closes; ``Store.open``
        switches a file back to WAL.
        """
        self.conn.execute("PRAGMA journal_mode = DELETE")

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Store"]:
        """One atomic write; nested calls become savepoints of the outer one."""
        if self.conn.in_transaction:
            with self._savepoint():
                yield self
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
            self.conn.execute("COMMIT")
        except BaseException:
            # A COMMIT that failed (a full disk, an I/O error) may leave the transaction open: end it,
            # so the connection can still write (mark what it was doing failed) and the lock is freed.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _savepoint(self) -> Iterator[None]:
        name = f"sp_{uuid.uuid4().hex}"
        self.conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute(f"ROLLBACK TO {name}")
                self.conn.execute(f"RELEASE {name}")
            raise
        self.conn.execute(f"RELEASE {name}")

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    # -- toolsets --------------------------------------------------------------------------
    def add_toolset(self, toolset: Toolset) -> None:
        """Insert or replace a toolset and all its tools."""
        with self.transaction():
            self.conn.execute("DELETE FROM tools WHERE toolset = ?", (toolset.name,))
            self.conn.execute(
                "INSERT INTO toolsets (name, description, source, spec, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET description = excluded.description, "
                "source = excluded.source, spec = excluded.spec",
                (toolset.name, toolset.description, toolset.source, dumps(toolset.spec), now()),
            )
            self.conn.executemany(
                "INSERT INTO tools (toolset, position, name, description, parameters) VALUES (?, ?, ?, ?, ?)",
                [(toolset.name, i, t.name, t.description, dumps(t.parameters)) for i, t in enumerate(toolset.tools)],
            )

    def toolset(self, name: str) -> Toolset | None:
        rows = self._rows("SELECT * FROM toolsets WHERE name = ?", (name,))
        if not rows:
            return None
        row = rows[0]
        tools = [
            Tool(t["name"], t["description"], loads(t["parameters"]))
            for t in self._rows("SELECT * FROM tools WHERE toolset = ? ORDER BY position", (name,))
        ]
        return Toolset(row["name"], tools, row["description"], row["source"], loads(row["spec"]))

    def toolset_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM toolsets ORDER BY name")]

    def toolsets(self) -> list[Toolset]:
        return [t for t in map(self.toolset, self.toolset_names()) if t is not None]

    # -- trajectories and messages -----------------------------------------------------------
    def new_trajectory(
        self,
        toolset: str | None,
        instruction: str,
        *,
        status: str = "running",
        source: str = "simulated",
        backend: str | None = None,
        model: str | None = None,
        difficulty: str | None = None,
        meta: dict[str, Any] | None = None,
        id: str | None = None,
    ) -> str:
        """Create an empty trajectory and return its id.

        A running one names this process's lease, so it is marked failed (``reap_interrupted``)
        if the process ends without finishing it.
        """
        check(status, STATUSES, "status")
        trajectory_id = id or new_id()
        stamp = now()
        with self.transaction():
            lease = self.lease() if status == "running" else None
            self.conn.execute(
                "INSERT INTO trajectories (id, toolset, instruction, status, source, backend, model, difficulty, "
                "meta, lease_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (trajectory_id, toolset, instruction, status, source, backend, model, difficulty, dumps(meta),
                 lease, stamp, stamp),
            )
        return trajectory_id

    def append_message(self, trajectory_id: str, message: Message) -> int:
        """Append one message in its own transaction and return its index."""
        with self.transaction():
            index = self.conn.execute(
                "SELECT coalesce(max(idx) + 1, 0) FROM messages WHERE trajectory_id = ?", (trajectory_id,)
            ).fetchone()[0]
            stamp = now()
            self.conn.execute(_INSERT_MESSAGE, _message_row(trajectory_id, index, message, stamp))
            self.conn.execute("UPDATE trajectories SET updated_at = ? WHERE id = ?", (stamp, trajectory_id))
        message.index = index
        return index

    def set_status(self, trajectory_id: str, status: str, reason: str | None = None) -> None:
        check(status, STATUSES, "status")
        with self.transaction():
            self.conn.execute(
                "UPDATE trajectories SET status = ?, reason = ?, updated_at = ? WHERE id = ?",
                (status, redact(reason), now(), trajectory_id),
            )

    def fail_running(self, trajectory_ids: Iterable[str], reason: str) -> None:
        """Mark failed, in one transaction, those of ``trajectory_ids`` that are still running."""
        stamp, reason = now(), redact(reason)
        with self.transaction():
            self.conn.executemany(
                "UPDATE trajectories SET status = 'failed', reason = ?, updated_at = ? WHERE id = ? "
                "AND status = 'running'", [(reason, stamp, i) for i in trajectory_ids])

    def insert_trajectories(self, trajectories: Iterable[Trajectory]) -> int:
        """Bulk-insert whole trajectories (messages, tags, decision, corrections, notes) in the caller's
        transaction."""
        count = 0
        batch: list[Trajectory] = []
        with self.transaction():
            for trajectory in trajectories:
                batch.append(trajectory)
                if len(batch) >= _PAGE:
                    count += self._insert_batch(batch)
                    batch = []
            count += self._insert_batch(batch)
        return count

    def _insert_batch(self, batch: list[Trajectory]) -> int:
        stamp = now()
        self.conn.executemany(
            "INSERT INTO trajectories (id, toolset, instruction, status, source, backend, model, difficulty, "
            "reason, meta, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (t.id, t.toolset, t.instruction, t.status, t.source, t.backend, t.model, t.difficulty,
                 redact(t.reason), dumps(t.meta or None), t.created_at or stamp, t.updated_at or stamp)
                for t in batch
            ],
        )
        self.insert_message_rows([_message_row(t.id, i, m, stamp) for t in batch for i, m in enumerate(t.messages)])
        self.conn.executemany(
            "INSERT INTO tags (trajectory_id, message_index, code, source, annotator, note, origin, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(t.id, g.message_index, g.code, g.source, g.annotator, g.note, auto_origin(g), stamp)
             for t in batch for g in t.tags],
        )
        self.conn.executemany(
            "INSERT INTO reviews (trajectory_id, decision, created_at) VALUES (?, ?, ?)",
            [(t.id, t.decision, stamp) for t in batch if t.decision],
        )
        self.refresh_decisions(t.id for t in batch if t.decision)
        self.conn.executemany(
            _INSERT_CORRECTION,
            [(t.id, c.message_index, dumps(c.tool_calls), c.annotator, c.note, c.created_at or stamp)
             for t in batch for c in t.corrections],
        )
        self.conn.executemany(
            _INSERT_NOTE,
            [(t.id, n.message_index, n.text, n.annotator, n.created_at or stamp) for t in batch for n in t.notes],
        )
        return len(batch)

    def insert_message_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Bulk-insert message rows, each with the values of ``MESSAGE_COLUMNS`` in order, in the caller's
        transaction.

        Staged, then moved in one statement: inserted row by row, each message's FTS5 trigger runs in
        its own statement savepoint, where FTS5 flushes its pending index (7x slower on a bulk import).
        """
        with self.transaction():
            self.conn.execute(_CREATE_MESSAGE_STAGE)
            self.conn.executemany(_INSERT_MESSAGE.replace("INTO messages", "INTO temp.message_stage"), rows)
            self.conn.execute(f"INSERT INTO messages ({MESSAGE_COLUMNS}) "
                              f"SELECT {MESSAGE_COLUMNS} FROM temp.message_stage ORDER BY rowid")
            self.conn.execute("DELETE FROM temp.message_stage")

    def has_trajectory(self, trajectory_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM trajectories WHERE id = ?", (trajectory_id,)).fetchone() is not None

    def is_empty(self) -> bool:
        """True when the store holds no trajectory (toolsets and gold items do not count)."""
        return self.conn.execute("SELECT 1 FROM trajectories LIMIT 1").fetchone() is None

    def trajectory_status(self, trajectory_id: str) -> str | None:
        """The trajectory's status alone (None: no such trajectory), without loading its messages."""
        row = self.conn.execute("SELECT status FROM trajectories WHERE id = ?", (trajectory_id,)).fetchone()
        return row[0] if row else None

    def latest_running(self) -> str | None:
        """The id of the running trajectory that grew last, or None when nothing is running."""
        row = self.conn.execute(
            "SELECT id FROM trajectories WHERE status = 'running' ORDER BY updated_at DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def trajectory(self, trajectory_id: str) -> Trajectory | None:
        """The trajectory with its messages, effective tags and current decision."""
        found = self._load([trajectory_id])
        return found[0] if found else None

    def messages(self, trajectory_id: str) -> list[Message]:
        rows = self._rows("SELECT * FROM messages WHERE trajectory_id = ? ORDER BY idx", (trajectory_id,))
        return [_message(r) for r in rows]

    def trajectory_ids(self, status: str | None = None, review: str = "all") -> list[str]:
        sql, params = _select_ids(status, review)
        return [r[0] for r in self.conn.execute(sql, params)]

    def iter_trajectories(self, status: str | None = None, review: str = "all") -> Iterator[Trajectory]:
        """Stream whole trajectories in insertion order, a page at a time (memory stays flat)."""
        sql, params = _select_ids(status, review)
        cursor = self.conn.execute(sql, params)
        while page := [r[0] for r in cursor.fetchmany(_PAGE)]:
            yield from self._load(page)

    def iter_by_id(self, trajectory_ids: Sequence[str]) -> Iterator[Trajectory]:
        """Stream the trajectories of ``trajectory_ids`` that exist, in that order, a page at a time."""
        for start in range(0, len(trajectory_ids), _PAGE):
            yield from self._load(list(trajectory_ids[start:start + _PAGE]))

    def iter_records(self, status: str = "accepted", *, derived: bool = True) -> Iterator[dict[str, Any]]:
        """The canonical export dicts ``{"id", "messages", "tools", "meta"}``; ``status`` is a review filter.

        With ``derived``, each record with corrections is followed by its ``correction_examples`` (the
        corrected calls as examples of their own, what SFT learns at those steps); formats that have no
        weights, or want trajectories only, pass ``derived=False``.
        """
        tools_cache: dict[str | None, list[dict[str, Any]]] = {}
        sql, params = _select_ids(None, status)
        cursor = self.conn.execute(sql, params)
        while page := [r[0] for r in cursor.fetchmany(_PAGE)]:
            for record in self._records(page, tools_cache):
                yield record
                if derived and record["meta"].get("corrections"):
                    yield from correction_examples(record)

    def record(self, trajectory_id: str) -> dict[str, Any] | None:
        """One trajectory as its canonical export dict: what an export writes and a training run reads of it."""
        return next(iter(self._records([trajectory_id], {})), None)

    def _records(self, ids: list[str], tools_cache: dict[str | None, list[dict[str, Any]]]
                 ) -> Iterator[dict[str, Any]]:
        """The records of ``ids``, their messages built straight from their rows (``openai_message``), not through
        ``Message`` objects: on an export that is a third of the time."""
        for trajectory, messages in self._page(ids, openai_message):
            if trajectory.toolset not in tools_cache:
                toolset = self.toolset(trajectory.toolset) if trajectory.toolset else None
                tools_cache[trajectory.toolset] = toolset.openai_tools() if toolset else []
            yield to_record(trajectory, tools_cache[trajectory.toolset], messages)

    def _load(self, ids: list[str]) -> list[Trajectory]:
        loaded = []
        for trajectory, messages in self._page(ids, Message):
            trajectory.messages = messages
            loaded.append(trajectory)
        return loaded

    def _page(self, ids: list[str], message: Callable[..., M]) -> list[tuple[Trajectory, list[M]]]:
        """The trajectories ``ids`` (in that order) with effective tags and decision, each with its messages
        built by ``message`` from ``Message``'s fields (positionally, ``tool_calls`` decoded)."""
        marks = ",".join("?" * len(ids))
        rows = self._rows(f"SELECT * FROM trajectories WHERE id IN ({marks})", ids)
        messages: dict[str, list[M]] = defaultdict(list)
        for trajectory_id, role, content, tool_calls, *rest in self.conn.execute(
            f"SELECT trajectory_id, {_MESSAGE_FIELDS} FROM messages WHERE trajectory_id IN ({marks}) "
            "ORDER BY trajectory_id, idx", ids
        ):
            messages[trajectory_id].append(message(role, content, loads(tool_calls), *rest))
        tags: dict[str, list[Tag]] = defaultdict(list)
        for row in self._rows(
            f"SELECT * FROM effective_tags WHERE trajectory_id IN ({marks}) ORDER BY message_index, code", ids
        ):
            tags[row["trajectory_id"]].append(
                Tag(row["code"], row["source"], row["message_index"], row["annotator"], row["note"], row["origin"])
            )
        decisions = dict(
            self.conn.execute(
                f"SELECT trajectory_id, decision FROM review_state WHERE trajectory_id IN ({marks})", ids
            ).fetchall()
        )
        corrections: dict[str, list[Correction]] = defaultdict(list)
        for correction in self._corrections(f"trajectory_id IN ({marks})", ids, "message_index"):
            corrections[correction.trajectory_id].append(correction)
        notes: dict[str, list[Note]] = defaultdict(list)
        for note in self._notes(f"trajectory_id IN ({marks})", ids):
            notes[note.trajectory_id].append(note)
        by_id = {
            r["id"]: Trajectory(
                id=r["id"], toolset=r["toolset"], instruction=r["instruction"], status=r["status"],
                source=r["source"], backend=r["backend"], model=r["model"], difficulty=r["difficulty"],
                reason=r["reason"], created_at=r["created_at"], updated_at=r["updated_at"],
                meta=loads(r["meta"]) or {}, tags=tags[r["id"]], decision=decisions.get(r["id"]),
                corrections=corrections[r["id"]], notes=notes[r["id"]],
            )
            for r in rows
        }
        return [(by_id[i], messages[i]) for i in ids if i in by_id]

    def search(self, text: str, limit: int = 1000) -> list[str]:
        """Trajectory ids whose messages match ``text`` (see ``fts_query``)."""
        return [r[0] for r in self.conn.execute(
            f"SELECT DISTINCT trajectory_id FROM messages WHERE rowid IN ({FTS_ROWIDS}) LIMIT ?",
            (self.fts_query(text), limit),
        )]

    def fts_query(self, text: str) -> str:
        """``text`` when it is a valid FTS5 query (``paris OR rome``, ``getWeather*``), else quoted as one phrase,
        so a stray quote or colon typed in a filter searches for itself instead of failing."""
        try:
            self.conn.execute("SELECT 1 FROM messages_fts WHERE messages_fts MATCH ? LIMIT 1", (text,)).fetchall()
            return text
        except sqlite3.OperationalError:
            return '"' + text.replace('"', '""') + '"'

    # -- weights -------------------------------------------------------------------------------
    def set_weight(self, trajectory_id: str, index: int, weight: int, source: str = "human", *,
                   annotator: str | None = None) -> None:
        """Set one message's training weight; a human setting is never overwritten by re-flagging, and is
        kept as a mark with its annotator and time (``weight_marks``), as a review is."""
        check(weight, (0, 1), "weight")
        with self.transaction():
            self.conn.execute(
                "UPDATE messages SET weight = ?, weight_source = ? WHERE trajectory_id = ? AND idx = ?",
                (weight, source, trajectory_id, index),
            )
            if source == "human":
                self.conn.execute("INSERT INTO weight_marks (trajectory_id, message_index, weight, annotator, "
                                  "created_at) VALUES (?, ?, ?, ?, ?)", (trajectory_id, index, weight, annotator,
                                                                          now()))

    def set_auto_weights(self, trajectory_id: str, weights: dict[int, int]) -> None:
        """Set automatic weights, skipping messages whose weight a human has set."""
        with self.transaction():
            self.conn.executemany(
                "UPDATE messages SET weight = ? WHERE trajectory_id = ? AND idx = ? AND weight_source = 'auto'",
                [(w, trajectory_id, i) for i, w in weights.items()],
            )

    # -- tags ------------------------------------------------------------------------------------
    def add_tag(self, trajectory_id: str, code: str, message_index: int | None = None, *, source: str = "human",
                annotator: str | None = None, note: str | None = None) -> None:
        self._tag_row(trajectory_id, code, message_index, source, 1, annotator, note)

    def remove_tag(self, trajectory_id: str, code: str, message_index: int | None = None, *,
                   annotator: str | None = None) -> None:
        """A human un-tag: hides the code on that message, whoever put it there."""
        self._tag_row(trajectory_id, code, message_index, "human", 0, annotator, None)

    def _tag_row(self, trajectory_id: str, code: str, message_index: int | None, source: str, present: int,
                 annotator: str | None, note: str | None) -> None:
        check_code(code)
        with self.transaction():
            self.conn.execute(
                "INSERT INTO tags (trajectory_id, message_index, code, source, present, annotator, note, origin, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (trajectory_id, message_index, code, source, present, annotator, note,
                 "flagger" if source == "auto" else None, now()),
            )

    def replace_auto_tags(self, trajectory_id: str, tags: Iterable[tuple[int | None, str, str | None]], *,
                          origin: str = "flagger", annotator: str | None = None) -> None:
        """Replace the auto tags one check (``origin``: the flagger, the judge, dedup) put on a trajectory with
        ``(message_index, code, note)`` triples, deduplicated; the other checks' tags stay. ``annotator`` names
        what tagged (the judge's model)."""
        unique = {(i, check_code(c)): n for i, c, n in tags}
        stamp = now()
        with self.transaction():
            self.conn.execute("DELETE FROM tags WHERE trajectory_id = ? AND source = 'auto' AND origin = ?",
                              (trajectory_id, origin))
            self.conn.executemany(
                "INSERT INTO tags (trajectory_id, message_index, code, source, note, annotator, origin, created_at) "
                "VALUES (?, ?, ?, 'auto', ?, ?, ?, ?)",
                [(trajectory_id, i, c, n, annotator, origin, stamp) for (i, c), n in unique.items()],
            )

    def effective_tags(self, trajectory_id: str) -> list[Tag]:
        return [
            Tag(r["code"], r["source"], r["message_index"], r["annotator"], r["note"], r["origin"])
            for r in self._rows(
                "SELECT * FROM effective_tags WHERE trajectory_id = ? ORDER BY message_index, code", (trajectory_id,)
            )
        ]

    # -- reviews, notes, corrections ----------------------------------------------------------------
    def decide(self, trajectory_id: str, decision: str, *, annotator: str | None = None,
               note: str | None = None, adjudication: bool = False) -> int:
        """Record accept / reject / skip (an adjudicator's, with ``adjudication``, settles a disagreement);
        committed before this returns, with the trajectory's current decision. Returns the review id."""
        check(decision, DECISIONS, "decision")
        with self.transaction():
            return self.record_review(trajectory_id, decision, annotator, note, adjudication)

    def undo(self, review_id: int, *, annotator: str | None = None) -> str:
        """Append the event that undoes one review; returns that review's trajectory id."""
        row = self.conn.execute("SELECT trajectory_id FROM reviews WHERE id = ?", (review_id,)).fetchone()
        if row is None:
            raise KeyError(f"no review {review_id}")
        with self.transaction():
            self.conn.execute(
                "INSERT INTO reviews (trajectory_id, decision, undoes, annotator, created_at) "
                "VALUES (?, 'undo', ?, ?, ?)",
                (row[0], review_id, annotator, now()),
            )
            self.refresh_decisions([row[0]])
        return row[0]

    def decision(self, trajectory_id: str) -> str | None:
        """The current decision (``accept``, ``reject``, ``skip``, ``disputed``), None before any review."""
        row = self.conn.execute(
            "SELECT decision FROM review_state WHERE trajectory_id = ?", (trajectory_id,)
        ).fetchone()
        return row[0] if row else None

    def disagreement(self, trajectory_id: str) -> bool:
        """True when the trajectory's annotators voted differently and no adjudicator decided it."""
        row = self.conn.execute(
            "SELECT disagreement FROM review_state WHERE trajectory_id = ?", (trajectory_id,)
        ).fetchone()
        return bool(row and row[0])

    def add_note(self, trajectory_id: str, text: str, message_index: int | None = None, *,
                 annotator: str | None = None) -> None:
        with self.transaction():
            self.conn.execute(_INSERT_NOTE, (trajectory_id, message_index, text, annotator, now()))

    def notes(self, trajectory_id: str) -> list[Note]:
        return self._notes("trajectory_id = ?", (trajectory_id,))

    def _notes(self, where: str, params: Sequence[Any]) -> list[Note]:
        return [Note(r["trajectory_id"], r["text"], r["message_index"], r["annotator"], r["created_at"], r["id"])
                for r in self._rows(f"SELECT * FROM notes WHERE {where} ORDER BY created_at, id", params)]

    def add_correction(self, correction: Correction) -> int:
        with self.transaction():
            cursor = self.conn.execute(
                _INSERT_CORRECTION,
                (correction.trajectory_id, correction.message_index, dumps(correction.tool_calls),
                 correction.annotator, correction.note, now()),
            )
        return int(cursor.lastrowid)

    def corrections(self, trajectory_id: str | None = None) -> list[Correction]:
        """Corrections, the latest per message only (an annotator may fix a call twice, two annotators the same call):
        latest by time, then by row, so a merged store picks the same one whatever order its sources came in."""
        where, params = ("trajectory_id = ?", (trajectory_id,)) if trajectory_id else ("1", ())
        return self._corrections(where, params, "id")

    def _corrections(self, where: str, params: Sequence[Any], order: str) -> list[Correction]:
        rows = self._rows(
            "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY trajectory_id, message_index "
            f"ORDER BY created_at DESC, id DESC) AS newest FROM corrections WHERE {where}) WHERE newest = 1 "
            f"ORDER BY {order}", params,
        )
        return [
            Correction(r["trajectory_id"], r["message_index"], loads(r["tool_calls"]), r["annotator"], r["note"],
                       r["created_at"], r["id"])
            for r in rows
        ]

    # -- gold calls -------------------------------------------------------------------------------
    def add_gold(self, items: Iterable[GoldItem]) -> int:
        stamp = now()
        rows = [
            (g.id, g.toolset, dumps(g.messages), dumps([{"name": c.name, "arguments": c.arguments} for c in g.calls]),
             g.source, stamp)
            for g in items
        ]
        with self.transaction():
            self.conn.executemany(
                "INSERT OR REPLACE INTO gold_calls (id, toolset, messages, calls, source, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def gold_items(self, toolset: str | None = None) -> Iterator[GoldItem]:
        where, params = ("WHERE toolset = ?", (toolset,)) if toolset else ("", ())
        tools_cache: dict[str | None, list[dict[str, Any]]] = {}
        for r in self._rows(f"SELECT * FROM gold_calls {where} ORDER BY rowid", params):
            if r["toolset"] not in tools_cache:
                found = self.toolset(r["toolset"]) if r["toolset"] else None
                tools_cache[r["toolset"]] = found.openai_tools() if found else []
            yield GoldItem(
                id=r["id"], toolset=r["toolset"], tools=tools_cache[r["toolset"]], messages=loads(r["messages"]),
                calls=[ToolCall(c["name"], c.get("arguments") or {}) for c in loads(r["calls"])], source=r["source"],
            )


#: Message rowids matching one FTS5 query parameter.
FTS_ROWIDS = "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?"

#: A message row's columns, as ``insert_message_rows`` takes its values.
MESSAGE_COLUMNS = ("trajectory_id, idx, role, content, tool_calls, tool_call_id, name, raw, weight, weight_source, "
                    "created_at")
_INSERT_MESSAGE = f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_CORRECTION = ("INSERT INTO corrections (trajectory_id, message_index, tool_calls, annotator, note, created_at) "
                      "VALUES (?, ?, ?, ?, ?, ?)")
_INSERT_NOTE = "INSERT INTO notes (trajectory_id, message_index, text, annotator, created_at) VALUES (?, ?, ?, ?, ?)"
_CREATE_MESSAGE_STAGE = f"CREATE TEMP TABLE IF NOT EXISTS message_stage ({MESSAGE_COLUMNS})"


def _message_row(trajectory_id: str, index: int, m: Message, stamp: str) -> tuple[Any, ...]:
    weight = (1 if m.weight is None else m.weight) if m.role == "assistant" else None
    return (trajectory_id, index, m.role, redact(m.content), redact(dumps(m.tool_calls)), m.tool_call_id,
            redact(m.name), redact(m.raw), weight, m.weight_source, stamp)


#: The columns of ``Message``'s fields, in its field order.
_MESSAGE_FIELDS = "role, content, tool_calls, tool_call_id, name, raw, weight, weight_source, idx"


def _message(row: dict[str, Any]) -> Message:
    return Message(
        role=row["role"], content=row["content"], tool_calls=loads(row["tool_calls"]),
        tool_call_id=row["tool_call_id"], name=row["name"], raw=row["raw"], weight=row["weight"],
        weight_source=row["weight_source"], index=row["idx"],
    )


def review_clause(review: str, state: str) -> tuple[str | None, list[Any]]:
    """The SQL condition a review filter puts on ``state`` (the alias of a joined ``review_state``), or None for
    "all"."""
    check(review, REVIEW_FILTERS, "review filter")
    if review == "all":
        return None, []
    if review == "disagreements":
        return f"{state}.disagreement = 1", []
    decision = FILTER_DECISION[review]
    return (f"{state}.decision IS NULL", []) if decision is None else (f"{state}.decision = ?", [decision])


def _select_ids(status: str | None, review: str) -> tuple[str, list[Any]]:
    """SQL selecting trajectory ids by status and review filter, in insertion order."""
    clauses, params = [], []
    if status is not None:
        check(status, STATUSES, "status")
        clauses.append("t.status = ?")
        params.append(status)
    condition, values = review_clause(review, "d")
    if condition:
        clauses.append(condition)
        params += values
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    join = "LEFT JOIN review_state d ON d.trajectory_id = t.id" if review != "all" else ""
    return f"SELECT t.id FROM trajectories t {join} {where} ORDER BY t.rowid", params
