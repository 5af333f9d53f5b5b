"""Counts over the whole store, for ``curator stats`` and the app's overview."""
from __future__ import annotations

from typing import Any

from .db import Store


def store_stats(store: Store) -> dict[str, Any]:
    """Trajectories by status, current decision (``pending``: none yet), effective tag code and toolset."""
    conn = store.conn

    def counts(sql: str) -> dict[str, int]:
        return {str(key): int(n) for key, n in conn.execute(sql)}

    total = conn.execute("SELECT count(*) FROM trajectories").fetchone()[0]
    decisions = counts("SELECT decision, count(*) FROM review_state GROUP BY decision ORDER BY decision")
    decided = sum(decisions.values())
    return {
        "trajectories": total,
        "status": counts("SELECT status, count(*) FROM trajectories GROUP BY status ORDER BY status"),
        "decision": {**decisions, "pending": total - decided},
        "tags": counts("SELECT code, count(*) FROM effective_tags GROUP BY code ORDER BY count(*) DESC, code"),
        "toolsets": {  # every toolset, also those without trajectories yet
            **{name: 0 for name in store.toolset_names()},
            **counts("SELECT coalesce(toolset, '(none)'), count(*) FROM trajectories GROUP BY toolset"),
        },
        "gold_items": conn.execute("SELECT count(*) FROM gold_calls").fetchone()[0],
    }
