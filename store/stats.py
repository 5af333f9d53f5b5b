"""Counts over the whole store, for ``curator stats``, the home screen and the watch screen's counters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .db import Store


@dataclass(frozen=True)
class Activity:
    """What the watch screen samples: trajectories by status, how many carry the flagger's auto
    flags (not the judge's or dedup's: they come later, from other commands), the newest message.

    ``last_message`` is the newest message's rowid: it grows by one for every message written, so its
    change between two samples is the number of messages written in between.
    """

    by_status: dict[str, int]
    flagged: int
    last_message: int

    def status(self, status: str) -> int:
        return self.by_status.get(status, 0)

    @property
    def finished(self) -> int:
        return self.status("complete") + self.status("failed")


def activity(store: Store) -> Activity:
    """Three indexed queries (about 0.1 s at 100,000 trajectories: callers run it off the UI thread)."""
    conn = store.conn
    return Activity(
        by_status=status_counts(store),
        flagged=conn.execute("SELECT count(DISTINCT trajectory_id) FROM tags "
                             "WHERE source = 'auto' AND origin = 'flagger'").fetchone()[0],
        last_message=conn.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()[0],
    )


def status_counts(store: Store) -> dict[str, int]:
    """Trajectories by status; a status no trajectory has is left out."""
    return _counts(store, "SELECT status, count(*) FROM trajectories GROUP BY status ORDER BY status")


def backend_counts(store: Store) -> dict[str, int]:
    """Trajectories by the backend that simulated them (imported ones, without a backend, are left out)."""
    return _counts(store, "SELECT backend, count(*) FROM trajectories WHERE backend IS NOT NULL "
                          "GROUP BY backend ORDER BY backend")


def store_stats(store: Store) -> dict[str, Any]:
    """Trajectories by status, current decision (``pending``: none yet), effective tag code and toolset."""
    conn = store.conn
    total = conn.execute("SELECT count(*) FROM trajectories").fetchone()[0]
    decisions = _counts(store, "SELECT decision, count(*) FROM review_state GROUP BY decision ORDER BY decision")
    decided = sum(decisions.values())
    return {
        "trajectories": total,
        "status": status_counts(store),
        "decision": {**decisions, "pending": total - decided},
        "tags": _counts(store, "SELECT code, count(*) FROM effective_tags GROUP BY code ORDER BY count(*) DESC, code"),
        "toolsets": {  # every toolset, also those without trajectories yet
            **{name: 0 for name in store.toolset_names()},
            **_counts(store, "SELECT coalesce(toolset, '(none)'), count(*) FROM trajectories GROUP BY toolset"),
        },
        "gold_items": conn.execute("SELECT count(*) FROM gold_calls").fetchone()[0],
    }


def _counts(store: Store, sql: str) -> dict[str, int]:
    """``{key: n}`` from a query selecting a key and a count."""
    return {str(key): int(n) for key, n in store.conn.execute(sql)}
