"""The review queue, paged: a filter, its count and a window of rows by offset.

The TUI never loads the whole queue; it asks for the rows it is about to show.
Every query here is written to stay fast on 100,000 trajectories: the current
decision comes from ``review_state`` (kept by triggers, see schema V2), and tags
are looked up per row through ``tags_lookup``, so nothing scans the reviews or
the tags of trajectories that are not on screen. Counts over a whole filter
still visit every trajectory (tens of ms at 100,000): the TUI runs them in a
worker.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .db import FILTER_DECISION, FTS_ROWIDS, REVIEW_FILTERS, Store, review_clause
from .records import STATUSES
from .taxonomy import DUPLICATE, check_code

@dataclass(frozen=True)
class Order:
    """How a queue is sorted: by rowid, or by a score (``store.scores``) with unscored trajectories last;
    ties in rowid order, so a row keeps its place while its trajectory grows."""

    descending: bool = False
    #: The score kind the queue is sorted by (None: by rowid alone).
    score: str | None = None
    describe: str = ""

    @property
    def sql(self) -> str:
        rowid = "t.rowid DESC" if self.descending and not self.score else "t.rowid ASC"
        if not self.score:
            return rowid
        return f"sc.value IS NULL, sc.value {'DESC' if self.descending else 'ASC'}, {rowid}"


#: Queue orders: "queue" is oldest first (review), "newest" newest first (watch), "hardest" by the latest
#: model's perplexity of the assistant steps, highest first (iTool: review where the model is weakest),
#: "judge" by the semantic judge's confidence, least confident first.
ORDERS: dict[str, Order] = {
    "queue": Order(describe="oldest first"),
    "newest": Order(descending=True, describe="newest first"),
    "hardest": Order(descending=True, score="perplexity", describe="hardest first (model perplexity)"),
    "judge": Order(score="judge", describe="least confident judge first"),
}


@dataclass(frozen=True)
class QueueFilter:
    """Which trajectories a queue holds. The defaults are the review queue: pending, oldest first."""

    status: str | None = None
    review: str = "pending"
    tag: str | None = None
    toolset: str | None = None
    text: str = ""
    order: str = "queue"
    #: Leave out the trajectories tagged ``duplicate`` (``curator dedup``) that no human un-tagged.
    hide_duplicates: bool = False

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if self.review not in REVIEW_FILTERS:
            raise ValueError(f"review must be one of {', '.join(REVIEW_FILTERS)}, got {self.review!r}")
        if self.tag is not None:
            check_code(self.tag)
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {self.order!r}")

    def describe(self) -> str:
        """One line for the screen, e.g. ``pending · complete · tag param_missing · "paris"``."""
        parts = [self.review, self.status, self.toolset and f"toolset {self.toolset}", self.tag and f"tag {self.tag}",
                 self.text and f'"{self.text}"', self.hide_duplicates and "no duplicates",
                 ORDERS[self.order].score and ORDERS[self.order].describe]
        return " · ".join(p for p in parts if p)

    def admits(self, decision: str | None, disagreement: bool = False) -> bool:
        """Whether a trajectory with this current decision (and disagreement) passes the filter's decision part."""
        if self.review == "all":
            return True
        if self.review == "disagreements":
            return disagreement
        return decision == FILTER_DECISION[self.review]


@dataclass(frozen=True)
class QueueRow:
    id: str
    instruction: str
    status: str
    decision: str | None
    flags: int
    masked: int
    toolset: str | None
    #: The score the queue is sorted by (None when it is sorted by rowid, or the trajectory has none).
    score: float | None = None


@dataclass(frozen=True)
class Progress:
    """Review progress over a filter's trajectories, whatever their decision."""

    total: int
    accepted: int
    rejected: int
    skipped: int
    #: Reviewed by annotators who disagree, with no rule-given or adjudicated decision yet: neither pending
    #: nor settled (``reviewed`` counts the settled, so the adjudication queue's progress moves as it is worked).
    disputed: int = 0

    @property
    def reviewed(self) -> int:
        return self.accepted + self.rejected + self.skipped

    @property
    def pending(self) -> int:
        """Trajectories nobody has reviewed yet."""
        return self.total - self.reviewed - self.disputed

    @property
    def accept_rate(self) -> float | None:
        decided = self.accepted + self.rejected
        return self.accepted / decided if decided else None

    def moved(self, old: str | None, new: str | None) -> "Progress":
        """The progress after one trajectory's decision changed from ``old`` to ``new`` (no query)."""
        counts = {"accept": self.accepted, "reject": self.rejected, "skip": self.skipped, "disputed": self.disputed}
        if old is not None:
            counts[old] -= 1
        if new is not None:
            counts[new] += 1
        return Progress(self.total, counts["accept"], counts["reject"], counts["skip"], counts["disputed"])


def count(store: Store, queue: QueueFilter) -> int:
    where, params = _where(store, queue)
    return store.conn.execute(f"SELECT count(*) FROM trajectories t {_JOIN} {where}", params).fetchone()[0]


def window(store: Store, queue: QueueFilter, offset: int, limit: int) -> list[QueueRow]:
    """Rows ``offset`` … ``offset + limit - 1`` of the queue, in its order."""
    order = ORDERS[queue.order]
    join, join_params = _order_join(order)
    where, params = _where(store, queue)
    sql = (
        "SELECT t.id, t.instruction, t.status, s.decision, t.toolset, "
        "(SELECT count(*) FROM effective_tags g WHERE g.trajectory_id = t.id) AS flags, "
        "(SELECT count(*) FROM messages m WHERE m.trajectory_id = t.id AND m.weight = 0) AS masked, "
        f"{'sc.value' if order.score else 'NULL'} "
        f"FROM trajectories t {_JOIN} {join} {where} ORDER BY {order.sql} LIMIT ? OFFSET ?"
    )
    cursor = store.conn.execute(sql, (*join_params, *params, limit, offset))
    return [
        QueueRow(id=r[0], instruction=r[1], status=r[2], decision=r[3], toolset=r[4], flags=r[5], masked=r[6],
                 score=r[7])
        for r in cursor
    ]


def position(store: Store, queue: QueueFilter, trajectory_id: str) -> int | None:
    """The offset of one trajectory in the queue, or None when the filter leaves it out."""
    order = ORDERS[queue.order]
    join, join_params = _order_join(order)
    where, params = _where(store, queue)
    joiner = "AND" if where else "WHERE"
    row = store.conn.execute(
        f"SELECT t.rowid, {'sc.value' if order.score else 'NULL'} FROM trajectories t {_JOIN} {join} {where} "
        f"{joiner} t.id = ?", (*join_params, *params, trajectory_id)
    ).fetchone()
    if row is None:
        return None
    before, before_params = _before(order, row[0], row[1])
    return store.conn.execute(
        f"SELECT count(*) FROM trajectories t {_JOIN} {join} {where} {joiner} ({before})",
        (*join_params, *params, *before_params)
    ).fetchone()[0]


def _order_join(order: Order) -> tuple[str, list[Any]]:
    """The join that brings the order's score as ``sc.value`` (nothing for a rowid order)."""
    if not order.score:
        return "", []
    return "LEFT JOIN scores sc ON sc.trajectory_id = t.id AND sc.kind = ?", [order.score]


def _before(order: Order, rowid: int, score: float | None) -> tuple[str, list[Any]]:
    """The condition that holds for the rows sorted before the row at ``rowid`` with ``score``."""
    if not order.score:
        return ("t.rowid > ?" if order.descending else "t.rowid < ?"), [rowid]
    if score is None:  # unscored rows come last, in rowid order
        return "sc.value IS NOT NULL OR t.rowid < ?", [rowid]
    ahead = "sc.value > ?" if order.descending else "sc.value < ?"
    return f"{ahead} OR (sc.value = ? AND t.rowid < ?)", [score, score, rowid]


def progress(store: Store, queue: QueueFilter) -> Progress:
    """Reviewed / total over the filter's trajectories, every decision included."""
    where, params = _where(store, replace(queue, review="all"))
    counts = dict(store.conn.execute(
        f"SELECT coalesce(s.decision, ''), count(*) FROM trajectories t {_JOIN} {where} GROUP BY 1", params
    ).fetchall())
    return Progress(total=sum(counts.values()), accepted=counts.get("accept", 0),
                    rejected=counts.get("reject", 0), skipped=counts.get("skip", 0),
                    disputed=counts.get("disputed", 0))


_JOIN = "LEFT JOIN review_state s ON s.trajectory_id = t.id"


def _where(store: Store, queue: QueueFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if queue.status:
        clauses.append("t.status = ?")
        params.append(queue.status)
    condition, values = review_clause(queue.review, "s")
    if condition:
        clauses.append(condition)
        params += values
    if queue.toolset:
        clauses.append("t.toolset = ?")
        params.append(queue.toolset)
    if queue.tag:
        clauses.append("EXISTS (SELECT 1 FROM effective_tags g WHERE g.trajectory_id = t.id AND g.code = ?)")
        params.append(queue.tag)
    if queue.hide_duplicates:
        clauses.append("NOT EXISTS (SELECT 1 FROM effective_tags g WHERE g.trajectory_id = t.id AND g.code = ?)")
        params.append(DUPLICATE)
    if queue.text:
        clauses.append(f"t.id IN (SELECT trajectory_id FROM messages WHERE rowid IN ({FTS_ROWIDS}))")
        params.append(store.fts_query(queue.text))
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params
