"""Several annotators, one current decision: the rule, who voted what, and keeping ``review_state`` right.

Every review is kept (``reviews`` is append-only); what exports, ``T`` and the
review filters use is each trajectory's current decision in ``review_state``,
refreshed here after every review, undo or merge by the rule in
``schema.REFRESH_DECISIONS``:

1. an adjudicator's decision (a review with ``adjudication``), the latest, wins;
2. otherwise each annotator's latest review is their vote (a skip is no vote);
3. ``majority`` (the default): more accepts than rejects accepts, more rejects
   rejects, a tie is ``disputed``; ``unanimous``: every vote the same, else
   ``disputed``; only skips: ``skip``.

A trajectory whose annotators voted differently and that no adjudicator decided
is a *disagreement* (the review screen's "disagreements" filter). With one
annotator the rule is simply their latest review.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Iterable, Sequence

from .records import check, now
from .schema import REFRESH_DECISIONS

RULES = ("majority", "unanimous")
DEFAULT_RULE = "majority"
_RULE_KEY = "decision_rule"
#: Ids refreshed per statement (SQLite's bound-parameter limit is far above this).
_CHUNK = 500


@dataclass(frozen=True)
class Vote:
    """One annotator's standing decision on a trajectory (an adjudication is marked as such)."""

    annotator: str | None
    decision: str
    adjudication: bool
    created_at: str


class DecisionBookkeeping:
    """``Store``'s part that turns reviews into current decisions."""

    conn: sqlite3.Connection

    def setting(self, key: str) -> str | None:
        """The store's setting ``key`` (the ``settings`` table: the decision rule, the demo's mark), or None."""
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction():  # type: ignore[attr-defined]
            self.conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                              "value = excluded.value", (key, value))

    @property
    def decision_rule(self) -> str:
        return self.setting(_RULE_KEY) or DEFAULT_RULE

    def set_decision_rule(self, rule: str) -> bool:
        """Keep ``rule`` in the store and re-decide every trajectory by it; True when it changed."""
        check(rule, RULES, "decision rule")
        if rule == self.decision_rule:
            return False
        with self.transaction():  # type: ignore[attr-defined]
            self.set_setting(_RULE_KEY, rule)
            self.refresh_decisions(None)
        return True

    def refresh_decisions(self, trajectory_ids: Iterable[str] | None) -> None:
        """Recompute the current decision of ``trajectory_ids`` (None: of every trajectory)."""
        rule = self.decision_rule
        if trajectory_ids is None:
            self.conn.execute("DELETE FROM review_state")
            self.conn.execute(REFRESH_DECISIONS.format(rule="?", scope=""), (rule,))
            return
        ids = list(dict.fromkeys(trajectory_ids))
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            self.conn.execute(f"DELETE FROM review_state WHERE trajectory_id IN ({marks})", chunk)
            self.conn.execute(REFRESH_DECISIONS.format(rule="?", scope=f"AND r.trajectory_id IN ({marks})"),
                              (rule, *chunk))

    def votes(self, trajectory_id: str) -> list[Vote]:
        """Each annotator's standing decision (their latest live review), then the latest adjudication."""
        return self.standing_votes(trajectory_id).get(trajectory_id, [])

    def standing_votes(self, trajectory_id: str | None = None) -> dict[str, list[Vote]]:
        """``votes`` of one trajectory, or (None) of every reviewed trajectory in one query, by trajectory id."""
        scope, params = ("AND trajectory_id = ? ", (trajectory_id,)) if trajectory_id is not None else ("", ())
        rows = self.conn.execute(
            "SELECT trajectory_id, annotator, decision, adjudication, created_at FROM reviews r "
            f"WHERE decision != 'undo' AND NOT EXISTS (SELECT 1 FROM reviews u WHERE u.undoes = r.id) {scope}"
            "ORDER BY created_at, id", params).fetchall()
        standing: dict[str, dict[tuple[bool, str | None], Vote]] = {}
        for trajectory, annotator, decision, adjudication, created_at in rows:
            key = (bool(adjudication), None if adjudication else annotator)
            votes = standing.setdefault(trajectory, {})
            votes.pop(key, None)
            votes[key] = Vote(annotator, decision, bool(adjudication), created_at)
        return {trajectory: sorted(votes.values(), key=lambda v: (v.adjudication, v.created_at))
                for trajectory, votes in standing.items()}

    def annotator_tags(self, trajectory_id: str) -> dict[str, list[tuple[int | None, str]]]:
        """Each named annotator's standing tags on the trajectory, ``(message index, code)`` in message order:
        their latest human row per (message, code) by time, kept when it tags rather than un-tags."""
        latest: dict[tuple[str, int | None, str], bool] = {}
        for annotator, index, code, present in self.conn.execute(
                "SELECT annotator, message_index, code, present FROM tags WHERE trajectory_id = ? AND "
                "source = 'human' AND annotator IS NOT NULL ORDER BY created_at, id", (trajectory_id,)):
            latest[(annotator, index, code)] = bool(present)
        tags: dict[str, list[tuple[int | None, str]]] = {}
        for (annotator, index, code), present in sorted(latest.items(), key=lambda kv: (kv[0][0], kv[0][1] or -1,
                                                                                         kv[0][2])):
            if present:
                tags.setdefault(annotator, []).append((index, code))
        return tags

    def record_review(self, trajectory_id: str, decision: str, annotator: str | None, note: str | None,
                      adjudication: bool) -> int:
        """Append one review and re-decide its trajectory, in the caller's transaction."""
        cursor = self.conn.execute(
            "INSERT INTO reviews (trajectory_id, decision, annotator, note, adjudication, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", (trajectory_id, decision, annotator, note, int(adjudication), now()))
        self.refresh_decisions([trajectory_id])
        return int(cursor.lastrowid)


def describe_tags(votes: Sequence[Vote], tags: dict[str, list[tuple[int | None, str]]]) -> str:
    """``ana: #3 param_missing, #5 content_error · ben: none``: each voter's tags side by side, for comparing a
    disagreement; empty when fewer than two annotators voted."""
    voters = list(dict.fromkeys(v.annotator for v in votes if not v.adjudication and v.annotator))
    if len(voters) < 2:
        return ""
    return " · ".join(f"{name}: " + (", ".join(f"#{i} {code}" if i is not None else code for i, code in tags[name])
                                     if tags.get(name) else "none") for name in voters)


def describe_votes(votes: Sequence[Vote]) -> str:
    """``accepted by ana, rejected by ben; adjudicated: accept by cy`` for the review screen."""
    words = {"accept": "accepted", "reject": "rejected", "skip": "skipped"}
    people = [f"{words.get(v.decision, v.decision)} by {v.annotator or 'someone'}" for v in votes if not v.adjudication]
    text = ", ".join(people)
    for vote in votes:
        if vote.adjudication:
            text += f"{'; ' if text else ''}adjudicated: {vote.decision} by {vote.annotator or 'someone'}"
    return text
