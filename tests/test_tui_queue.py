"""store/queue.py: the paged review queue the TUI draws from, and the review_state the triggers keep."""
from __future__ import annotations

from pathlib import Path

import pytest
from tui_fixtures import make_store

from store import Store
from store.queue import Progress, QueueFilter, count, position, progress, window


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with make_store(tmp_path / "queue.db") as opened:
        yield opened


def ids(store: Store, queue: QueueFilter, offset: int = 0, limit: int = 100) -> list[str]:
    return [row.id for row in window(store, queue, offset, limit)]


def test_pending_queue_pages_oldest_first_and_follows_decisions(store: Store) -> None:
    pending = QueueFilter()
    assert count(store, pending) == 4 and ids(store, pending, 1, 2) == ["traj-02", "traj-03"]
    first = window(store, pending, 0, 1)[0]
    assert (first.flags, first.masked, first.decision, first.status) == (1, 1, None, "complete")
    review = store.decide("traj-02", "reject")
    assert ids(store, pending) == ["traj-01", "traj-03", "traj-04"]
    assert ids(store, QueueFilter(review="rejected")) == ["traj-02"]
    store.decide("traj-02", "accept")  # the latest decision wins
    assert ids(store, QueueFilter(review="accepted")) == ["traj-02"]
    assert ids(store, QueueFilter(review="rejected")) == []
    store.undo(review + 1)  # undo the accept: back to the reject
    assert store.decision("traj-02") == "reject" and ids(store, QueueFilter(review="rejected")) == ["traj-02"]
    store.undo(review)
    assert count(store, pending) == 4
    assert store.conn.execute("SELECT count(*) FROM review_state").fetchone()[0] == 0


def test_filters_by_status_toolset_tag_and_text(store: Store) -> None:
    assert ids(store, QueueFilter(status="failed")) == ["traj-03"]
    assert ids(store, QueueFilter(toolset="weather", review="all")) == ["traj-01", "traj-02", "traj-03", "traj-04"]
    assert ids(store, QueueFilter(toolset="other")) == []
    assert ids(store, QueueFilter(tag="param_missing")) == ["traj-01"]
    assert ids(store, QueueFilter(text="Brittany")) == ["traj-02"]
    assert ids(store, QueueFilter(text='"unbalanced')) == []  # not valid FTS5: searched as a phrase
    store.remove_tag("traj-01", "param_missing", 2)  # a human un-tag hides the auto flag
    assert ids(store, QueueFilter(tag="param_missing")) == [] and window(store, QueueFilter(), 0, 1)[0].flags == 0
    store.add_tag("traj-01", "param_missing", 2)  # and a human tag brings it back
    assert ids(store, QueueFilter(tag="param_missing")) == ["traj-01"]
    store.add_tag("traj-04", "content_error", 4)
    assert ids(store, QueueFilter(tag="content_error")) == ["traj-04"]
    with pytest.raises(ValueError, match="unknown error code"):
        QueueFilter(tag="nonsense")
    with pytest.raises(ValueError, match="review must be one of"):
        QueueFilter(review="maybe")


def test_position_in_either_order(store: Store) -> None:
    assert position(store, QueueFilter(), "traj-03") == 2
    assert position(store, QueueFilter(review="all", order="newest"), "traj-03") == 1
    assert position(store, QueueFilter(status="failed"), "traj-01") is None


def test_progress_counts_every_decision_and_moves_in_place(store: Store) -> None:
    store.decide("traj-01", "accept")
    store.decide("traj-02", "reject")
    store.decide("traj-03", "skip")
    done = progress(store, QueueFilter())  # the pending filter's progress covers decided ones too
    assert done == Progress(total=4, accepted=1, rejected=1, skipped=1)
    assert done.reviewed == 3 and done.accept_rate == 0.5
    store.decide("traj-03", "accept")
    assert done.moved("skip", "accept") == progress(store, QueueFilter())
    assert QueueFilter().admits(None) and not QueueFilter().admits("accept")
    assert QueueFilter(review="all").admits("skip") and QueueFilter(review="skipped").admits("skip")
