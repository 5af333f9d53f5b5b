"""The store's schema as forward migrations, versioned with ``PRAGMA user_version``.

Add a migration by appending to ``MIGRATIONS``; never edit one that has shipped.
"""
from __future__ import annotations

import sqlite3

from .errors import StoreError

V1 = """
CREATE TABLE toolsets (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    spec TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE tools (
    toolset TEXT NOT NULL REFERENCES toolsets(name) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    parameters TEXT NOT NULL,
    PRIMARY KEY (toolset, name)
);
CREATE TABLE trajectories (
    id TEXT PRIMARY KEY,
    toolset TEXT,
    instruction TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed', 'imported')),
    source TEXT NOT NULL DEFAULT 'simulated',
    backend TEXT,
    model TEXT,
    difficulty TEXT,
    reason TEXT,
    meta TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX trajectories_status ON trajectories(status);
CREATE INDEX trajectories_toolset ON trajectories(toolset);
CREATE INDEX trajectories_updated ON trajectories(updated_at);
CREATE TABLE messages (
    trajectory_id TEXT NOT NULL REFERENCES trajectories(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content TEXT,
    tool_calls TEXT,
    tool_call_id TEXT,
    name TEXT,
    raw TEXT,
    weight INTEGER CHECK (weight IN (0, 1)),
    weight_source TEXT NOT NULL DEFAULT 'auto' CHECK (weight_source IN ('auto', 'human')),
    created_at TEXT NOT NULL,
    UNIQUE (trajectory_id, idx)
);
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, tool_calls, content='messages', content_rowid='rowid'
);
CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content, tool_calls) VALUES (new.rowid, new.content, new.tool_calls);
END;
CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content, tool_calls)
    VALUES ('delete', old.rowid, old.content, old.tool_calls);
END;
CREATE TRIGGER messages_fts_au AFTER UPDATE OF content, tool_calls ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content, tool_calls)
    VALUES ('delete', old.rowid, old.content, old.tool_calls);
    INSERT INTO messages_fts(rowid, content, tool_calls) VALUES (new.rowid, new.content, new.tool_calls);
END;
CREATE TABLE tags (
    id INTEGER PRIMARY KEY,
    trajectory_id TEXT NOT NULL REFERENCES trajectories(id) ON DELETE CASCADE,
    message_index INTEGER,
    code TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('auto', 'human')),
    present INTEGER NOT NULL DEFAULT 1 CHECK (present IN (0, 1)),
    annotator TEXT,
    note TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX tags_trajectory ON tags(trajectory_id, message_index);
CREATE INDEX tags_code ON tags(code);
CREATE TABLE reviews (
    id INTEGER PRIMARY KEY,
    trajectory_id TEXT NOT NULL REFERENCES trajectories(id) ON DELETE CASCADE,
    decision TEXT NOT NULL CHECK (decision IN ('accept', 'reject', 'skip', 'undo')),
    undoes INTEGER REFERENCES reviews(id),
    annotator TEXT,
    note TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX reviews_trajectory ON reviews(trajectory_id, id);
CREATE INDEX reviews_undoes ON reviews(undoes);
CREATE VIEW current_decisions AS
    SELECT trajectory_id, decision, annotator, created_at, max(id) AS review_id
    FROM reviews
    WHERE decision != 'undo' AND id NOT IN (SELECT undoes FROM reviews WHERE undoes IS NOT NULL)
    GROUP BY trajectory_id;
CREATE VIEW effective_tags AS
    WITH human AS (
        SELECT trajectory_id, message_index, code, present, note, annotator, max(id) AS tag_id
        FROM tags WHERE source = 'human'
        GROUP BY trajectory_id, message_index, code
    )
    SELECT trajectory_id, message_index, code, 'human' AS source, note, annotator, tag_id
    FROM human WHERE present = 1
    UNION ALL
    SELECT a.trajectory_id, a.message_index, a.code, 'auto', a.note, a.annotator, a.id
    FROM tags a
    WHERE a.source = 'auto' AND NOT EXISTS (
        SELECT 1 FROM tags h
        WHERE h.source = 'human' AND h.trajectory_id = a.trajectory_id
          AND h.message_index IS a.message_index AND h.code = a.code
    );
CREATE TABLE notes (
    id INTEGER PRIMARY KEY,
    trajectory_id TEXT NOT NULL REFERENCES trajectories(id) ON DELETE CASCADE,
    message_index INTEGER,
    text TEXT NOT NULL,
    annotator TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX notes_trajectory ON notes(trajectory_id);
CREATE TABLE corrections (
    id INTEGER PRIMARY KEY,
    trajectory_id TEXT NOT NULL REFERENCES trajectories(id) ON DELETE CASCADE,
    message_index INTEGER NOT NULL,
    tool_calls TEXT NOT NULL,
    annotator TEXT,
    note TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX corrections_trajectory ON corrections(trajectory_id, message_index);
CREATE TABLE gold_calls (
    id TEXT PRIMARY KEY,
    toolset TEXT,
    messages TEXT NOT NULL,
    calls TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT 'imported',
    created_at TEXT NOT NULL
);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    base_model TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    config TEXT NOT NULL,
    dataset TEXT,
    output_dir TEXT,
    pid INTEGER,
    error TEXT,
    summary TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);
CREATE TABLE run_metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX run_metrics_run ON run_metrics(run_id, key, step);
"""

#: V2: each trajectory's current decision kept in a table by triggers, so the review queue can
#: count and page "pending" on 100,000 trajectories through an index instead of re-deriving
#: ``current_decisions`` over every review. ``reviews`` stays the append-only truth. The tags
#: index lets "is there a human row for this tag" be one probe (``effective_tags`` and the queue's
#: tag filter ask it per row; through ``tags_code`` it was a scan per row).
V2 = """
CREATE TABLE review_state (
    trajectory_id TEXT PRIMARY KEY REFERENCES trajectories(id) ON DELETE CASCADE,
    decision TEXT NOT NULL,
    review_id INTEGER NOT NULL
);
CREATE INDEX review_state_decision ON review_state(decision);
INSERT INTO review_state (trajectory_id, decision, review_id)
    SELECT trajectory_id, decision, review_id FROM current_decisions;
CREATE TRIGGER review_state_decide AFTER INSERT ON reviews WHEN new.decision != 'undo' BEGIN
    INSERT INTO review_state (trajectory_id, decision, review_id) VALUES (new.trajectory_id, new.decision, new.id)
    ON CONFLICT(trajectory_id) DO UPDATE SET decision = excluded.decision, review_id = excluded.review_id
    WHERE excluded.review_id > review_state.review_id;
END;
CREATE TRIGGER review_state_undo AFTER INSERT ON reviews WHEN new.decision = 'undo' BEGIN
    DELETE FROM review_state WHERE trajectory_id = new.trajectory_id;
    INSERT INTO review_state (trajectory_id, decision, review_id)
        SELECT r.trajectory_id, r.decision, r.id FROM reviews r
        WHERE r.trajectory_id = new.trajectory_id AND r.decision != 'undo'
          AND NOT EXISTS (SELECT 1 FROM reviews u WHERE u.undoes = r.id)
        ORDER BY r.id DESC LIMIT 1;
END;
CREATE INDEX tags_lookup ON tags(trajectory_id, code, message_index, source);
"""

V3 = """
DROP VIEW effective_tags;
CREATE VIEW effective_tags AS
    SELECT g.trajectory_id, g.message_index, g.code, g.source, g.note, g.annotator, g.id AS tag_id
    FROM tags g
    WHERE (g.source = 'human' AND g.present = 1 AND NOT EXISTS (
            SELECT 1 FROM tags h WHERE h.trajectory_id = g.trajectory_id AND h.code = g.code
            AND h.message_index IS g.message_index AND h.source = 'human' AND h.id > g.id))
       OR (g.source = 'auto' AND NOT EXISTS (
            SELECT 1 FROM tags h WHERE h.trajectory_id = g.trajectory_id AND h.code = g.code
            AND h.message_index IS g.message_index AND h.source = 'human'));
DROP VIEW current_decisions;
"""
"""V3: ``effective_tags`` says its rule per tag row (the latest human row for a (message, code)
wins; an auto row counts while no human touched it), so SQLite flattens the view into a query and
probes ``tags_lookup`` for the rows it needs instead of grouping every tag. The current decision
is ``review_state`` (V2), kept by triggers, so the ``current_decisions`` view goes."""

V4 = """
CREATE TABLE leases (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started TEXT NOT NULL,
    created_at TEXT NOT NULL,
    heartbeat_at REAL NOT NULL
);
ALTER TABLE trajectories ADD COLUMN lease_id TEXT;
ALTER TABLE runs ADD COLUMN lease_id TEXT;
"""
"""V4: leases. A process that writes rows which only it can finish (a ``running`` trajectory, an
active run) holds a lease: its pid, host and start time, and a heartbeat it refreshes now and then.
Each such row names its lease, so the next process can tell a row whose writer died (kill -9, a
full disk, a reboot) from one a live process is still writing, and mark it failed
(``store.leases``). Rows from before V4 name no lease: nothing is writing them any more."""

#: Each trajectory's current decision from its live reviews (neither an undo nor undone) under a rule:
#: an adjudication (the latest) decides; otherwise each annotator's latest review is their vote, a skip is
#: no vote, and ``rule`` (``majority``: more accepts than rejects or the reverse, a tie is ``disputed``;
#: ``unanimous``: every vote the same, else ``disputed``) decides; with only skips the state is ``skip``.
#: ``disagreement`` marks votes that differ with no adjudication. One annotator: their latest review, as
#: before V5. ``{scope}`` narrows the trajectories (``AND r.trajectory_id IN (…)`` or nothing).
REFRESH_DECISIONS = """
INSERT INTO review_state (trajectory_id, decision, review_id, disagreement)
SELECT trajectory_id,
       CASE WHEN adjudicated IS NOT NULL THEN adjudicated
            WHEN accepts = 0 AND rejects = 0 THEN 'skip'
            WHEN {rule} = 'unanimous' THEN
                CASE WHEN rejects = 0 THEN 'accept' WHEN accepts = 0 THEN 'reject' ELSE 'disputed' END
            ELSE CASE WHEN accepts > rejects THEN 'accept' WHEN rejects > accepts THEN 'reject' ELSE 'disputed' END
       END,
       review_id,
       adjudicated IS NULL AND accepts > 0 AND rejects > 0
FROM (
    SELECT trajectory_id,
           sum(adjudication = 0 AND decision = 'accept') AS accepts,
           sum(adjudication = 0 AND decision = 'reject') AS rejects,
           max(CASE WHEN adjudication = 1 THEN decision END) AS adjudicated,
           max(id) AS review_id
    FROM (
        SELECT r.id, r.trajectory_id, r.decision, r.adjudication,
               row_number() OVER (
                   PARTITION BY r.trajectory_id, r.adjudication,
                                CASE r.adjudication WHEN 1 THEN '' ELSE coalesce(r.annotator, '') END
                   ORDER BY r.created_at DESC, r.id DESC) AS newest
        FROM reviews r
        WHERE r.decision != 'undo' {scope}
          AND NOT EXISTS (SELECT 1 FROM reviews u WHERE u.undoes = r.id)
    )
    WHERE newest = 1
    GROUP BY trajectory_id
)
"""

V5 = """
DROP TRIGGER review_state_decide;
DROP TRIGGER review_state_undo;
ALTER TABLE reviews ADD COLUMN adjudication INTEGER NOT NULL DEFAULT 0 CHECK (adjudication IN (0, 1));
DROP TABLE review_state;
CREATE TABLE review_state (
    trajectory_id TEXT PRIMARY KEY REFERENCES trajectories(id) ON DELETE CASCADE,
    decision TEXT NOT NULL CHECK (decision IN ('accept', 'reject', 'skip', 'disputed')),
    review_id INTEGER NOT NULL,
    disagreement INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX review_state_decision ON review_state(decision);
CREATE INDEX review_state_disagreement ON review_state(disagreement) WHERE disagreement = 1;
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE weight_marks (
    id INTEGER PRIMARY KEY,
    trajectory_id TEXT NOT NULL REFERENCES trajectories(id) ON DELETE CASCADE,
    message_index INTEGER NOT NULL,
    weight INTEGER NOT NULL CHECK (weight IN (0, 1)),
    annotator TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX weight_marks_trajectory ON weight_marks(trajectory_id, message_index);
INSERT INTO weight_marks (trajectory_id, message_index, weight, annotator, created_at)
    SELECT trajectory_id, idx, weight, NULL, created_at FROM messages WHERE weight_source = 'human';
""" + REFRESH_DECISIONS.format(rule="'majority'", scope="") + ";"
"""V5: annotation teams. Several annotators' reviews of one trajectory (their own stores, merged) give one
current decision by a documented rule (``REFRESH_DECISIONS``) instead of "the latest review", so the
state is kept by ``store.decisions`` rather than by triggers; an adjudicator's review
(``adjudication``) settles a disagreement; ``settings`` holds the store's decision rule; a mask toggle
is a ``weight_marks`` row with its annotator and time, as a review or a tag is."""

V6 = """
DROP VIEW effective_tags;
CREATE VIEW effective_tags AS
    SELECT g.trajectory_id, g.message_index, g.code, g.source, g.note, g.annotator, g.id AS tag_id
    FROM tags g
    WHERE (g.source = 'human' AND g.present = 1 AND NOT EXISTS (
            SELECT 1 FROM tags h WHERE h.trajectory_id = g.trajectory_id AND h.code = g.code
            AND h.message_index IS g.message_index AND h.source = 'human'
            AND (h.created_at > g.created_at OR (h.created_at = g.created_at AND h.id > g.id))))
       OR (g.source = 'auto' AND NOT EXISTS (
            SELECT 1 FROM tags h WHERE h.trajectory_id = g.trajectory_id AND h.code = g.code
            AND h.message_index IS g.message_index AND h.source = 'human'));
"""
"""V6: the human tag row that wins for a (message, code) is the latest by time (then by row), not the last
inserted: a store merged from several annotators' stores (``store.merge``) inserts their rows in the order
the stores came in, and the tag a trajectory shows must not depend on that order. In one annotator's own
store time and row order agree, so nothing changes there."""

V7 = """
ALTER TABLE tags ADD COLUMN origin TEXT;
UPDATE tags SET origin = 'flagger' WHERE source = 'auto';
DROP VIEW effective_tags;
CREATE VIEW effective_tags AS
    SELECT g.trajectory_id, g.message_index, g.code, g.source, g.note, g.annotator, g.id AS tag_id, g.origin
    FROM tags g
    WHERE (g.source = 'human' AND g.present = 1 AND NOT EXISTS (
            SELECT 1 FROM tags h WHERE h.trajectory_id = g.trajectory_id AND h.code = g.code
            AND h.message_index IS g.message_index AND h.source = 'human'
            AND (h.created_at > g.created_at OR (h.created_at = g.created_at AND h.id > g.id))))
       OR (g.source = 'auto' AND NOT EXISTS (
            SELECT 1 FROM tags h WHERE h.trajectory_id = g.trajectory_id AND h.code = g.code
            AND h.message_index IS g.message_index AND h.source = 'human'));
CREATE TABLE scores (
    trajectory_id TEXT NOT NULL REFERENCES trajectories(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    value REAL NOT NULL,
    model TEXT,
    run_id TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (trajectory_id, kind)
);
CREATE INDEX scores_kind ON scores(kind, value);
ALTER TABLE runs ADD COLUMN parent_id TEXT REFERENCES runs(id) ON DELETE CASCADE;
CREATE INDEX runs_parent ON runs(parent_id) WHERE parent_id IS NOT NULL;
CREATE TABLE pairs (
    id INTEGER PRIMARY KEY,
    run_id TEXT REFERENCES runs(id) ON DELETE CASCADE,
    round INTEGER NOT NULL DEFAULT 0,
    trajectory_id TEXT REFERENCES trajectories(id) ON DELETE CASCADE,
    message_index INTEGER NOT NULL,
    tools TEXT NOT NULL,
    prefix TEXT NOT NULL,
    chosen TEXT NOT NULL,
    rejected TEXT NOT NULL,
    chosen_reward REAL,
    rejected_reward REAL,
    rejected_error TEXT,
    source TEXT NOT NULL DEFAULT 'search',
    decision TEXT CHECK (decision IN ('accept', 'reject')),
    annotator TEXT,
    decided_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX pairs_run ON pairs(run_id, round);
CREATE INDEX pairs_decision ON pairs(decision);
"""
"""V7: the automatic checks beside the flagger, and what a model learned of the data. An auto tag names the
check that put it (``origin``: ``flagger``, ``judge``, ``dedup``), so re-flagging replaces only the flagger's
tags. ``scores`` holds one number per trajectory and kind with the model that gave it (``perplexity``: the
latest model's perplexity of the trajectory's assistant steps, for review hardest-first; ``judge``: the
semantic judge's confidence). A run may belong to another (``parent_id``: the rounds of an iTool loop), and
``pairs`` holds the step-level preference pairs a loop made (the shared prefix, the chosen and rejected
step, their rewards), each reviewable: a pair an annotator rejected is not trained on."""

MIGRATIONS: tuple[str, ...] = (V1, V2, V3, V4, V5, V6, V7)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(StoreError):
    """The file was written by a newer curator than this one."""


def migrate(conn: sqlite3.Connection, path: str) -> int:
    """Bring the schema up to ``SCHEMA_VERSION``; each step is one transaction.

    The version is read again inside the write lock, so two processes opening
    a new file at once do not both create it.
    """
    for number in range(check_curator_file(conn, path), SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if _version(conn, path) == number:
                if number == 0:
                    check_curator_file(conn, path)
                for statement in _statements(MIGRATIONS[number]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


def check_curator_file(conn: sqlite3.Connection, path: str) -> int:
    """The file's schema version; refuses a newer curator's store and a SQLite file that holds other tables.

    A store at version 0 is new and empty: tables in it belong to some other program, and curator
    must not add its own beside them (nor switch the file to WAL).
    """
    version = _version(conn, path)
    if version == 0:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name LIMIT 4")]
        if tables:
            shown = ", ".join(tables[:3]) + (", …" if len(tables) > 3 else "")
            raise StoreError(f"{path}: not a curator store (a SQLite file with other tables: {shown})")
    return version


def _version(conn: sqlite3.Connection, path: str) -> int:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{path}: store schema version {version} is newer than this curator's ({SCHEMA_VERSION}); upgrade curator"
        )
    return version


def _statements(script: str) -> list[str]:
    """Split a script into statements (triggers hold ';' inside BEGIN … END)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements
