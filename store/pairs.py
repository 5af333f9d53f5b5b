"""Step-level preference pairs (iTool's loop writes them; annotators review them; DPO trains on them).

Kept in the ``pairs`` table with the prefix they share, so a pair stands on its own (a JSONL dataset's
pairs have no trajectory in the store). A pair's review is its ``decision``: ``accept``, ``reject`` or
pending (``None``); :meth:`PairBookkeeping.pairs` with ``trainable=True`` leaves out the rejected ones.
"""
from __future__ import annotations

import sqlite3
from typing import Any, Iterable, Sequence

from .records import PAIR_DECISIONS, StepPair, check, dumps, loads, now

_COLUMNS = ("run_id", "round", "trajectory_id", "message_index", "tools", "prefix", "chosen", "rejected",
            "chosen_reward", "rejected_reward", "rejected_error", "source", "created_at")


class PairBookkeeping:
    """The ``pairs`` table, for a class with ``conn``, ``_rows`` and ``transaction``."""

    conn: sqlite3.Connection

    def add_pairs(self, pairs: Iterable[StepPair]) -> list[int]:
        """Insert pairs in one transaction; their new ids, in order."""
        stamp = now()
        ids = []
        with self.transaction():
            for p in pairs:
                cursor = self.conn.execute(
                    f"INSERT INTO pairs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                    (p.run_id, p.round, p.trajectory_id, p.message_index, dumps(p.tools), dumps(p.prefix),
                     dumps(p.chosen), dumps(p.rejected), p.chosen_reward, p.rejected_reward, p.rejected_error,
                     p.source, stamp))
                ids.append(int(cursor.lastrowid))
        return ids

    def pairs(self, *, run_ids: Sequence[str] | None = None, trainable: bool = False,
              pending: bool = False) -> list[StepPair]:
        """Pairs oldest first: of the given runs (a loop and its rounds), only those not rejected
        (``trainable``), or only those no one reviewed (``pending``)."""
        clauses, params = [], []
        if run_ids is not None:
            clauses.append(f"run_id IN ({', '.join('?' * len(run_ids))})")
            params += list(run_ids)
        if trainable:
            clauses.append("decision IS NOT 'reject'")
        if pending:
            clauses.append("decision IS NULL")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return [_pair(r) for r in self._rows(f"SELECT * FROM pairs {where} ORDER BY id", params)]

    def pair(self, pair_id: int) -> StepPair | None:
        rows = self._rows("SELECT * FROM pairs WHERE id = ?", (pair_id,))
        return _pair(rows[0]) if rows else None

    def decide_pair(self, pair_id: int, decision: str | None, *, annotator: str | None = None) -> None:
        """Accept or reject a pair; ``None`` makes it pending again."""
        if decision is not None:
            check(decision, PAIR_DECISIONS, "pair decision")
        with self.transaction():
            cursor = self.conn.execute(
                "UPDATE pairs SET decision = ?, annotator = ?, decided_at = ? WHERE id = ?",
                (decision, annotator, now() if decision else None, pair_id))
        if cursor.rowcount == 0:
            raise KeyError(f"no pair {pair_id}")


def _pair(row: dict[str, Any]) -> StepPair:
    return StepPair(
        tools=loads(row["tools"]), prefix=loads(row["prefix"]), chosen=loads(row["chosen"]),
        rejected=loads(row["rejected"]), round=row["round"], run_id=row["run_id"],
        trajectory_id=row["trajectory_id"], chosen_reward=row["chosen_reward"],
        rejected_reward=row["rejected_reward"], rejected_error=row["rejected_error"], source=row["source"],
        decision=row["decision"], annotator=row["annotator"], id=row["id"],
    )
