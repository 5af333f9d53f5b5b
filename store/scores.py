"""One number per trajectory and kind that a model gave it: the latest model's perplexity of the assistant
steps (``perplexity``, for reviewing hardest first) or the semantic judge's confidence (``judge``).

A new score replaces the old one of its kind; each row keeps the model (and run) that computed it, so the
queue can say whose number it shows.
"""
from __future__ import annotations

import sqlite3
from typing import Mapping

from .records import Score, now

#: The kinds of score a trajectory can carry.
SCORE_KINDS = ("perplexity", "judge")


class ScoreBookkeeping:
    """The ``scores`` table, for a class with ``conn``, ``_rows`` and ``transaction``."""

    conn: sqlite3.Connection

    def set_scores(self, kind: str, values: Mapping[str, float], *, model: str | None = None,
                   run_id: str | None = None) -> int:
        """Store ``values`` (trajectory id → number) as the trajectories' ``kind`` score; ids the store does
        not hold are left out. How many were stored."""
        if kind not in SCORE_KINDS:
            raise ValueError(f"score kind must be one of {', '.join(SCORE_KINDS)}, got {kind!r}")
        stamp = now()
        with self.transaction():
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT INTO scores (trajectory_id, kind, value, model, run_id, created_at) "
                "SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM trajectories WHERE id = ?) "
                "ON CONFLICT (trajectory_id, kind) DO UPDATE SET value = excluded.value, model = excluded.model, "
                "run_id = excluded.run_id, created_at = excluded.created_at",
                [(tid, kind, float(v), model, run_id, stamp, tid) for tid, v in values.items()])
            return self.conn.total_changes - before

    def scores(self, kind: str) -> dict[str, Score]:
        """Every trajectory's ``kind`` score, by trajectory id."""
        return {r["trajectory_id"]: Score(**r) for r in self._rows(
            "SELECT trajectory_id, kind, value, model, run_id, created_at FROM scores WHERE kind = ?", (kind,))}
