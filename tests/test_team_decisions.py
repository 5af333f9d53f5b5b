"""Several annotators' reviews give one current decision by the documented rule (store.decisions)."""
from __future__ import annotations

import sqlite3

import pytest

from data_helpers import rich_store, weather_trajectory
from store import Store
from store.decisions import describe_votes
from store.queue import QueueFilter, window
from store.schema import MIGRATIONS


@pytest.fixture
def store(tmp_path):
    store = Store.open(tmp_path / "team.db")
    store.insert_trajectories([weather_trajectory(f"t{i}", "Oslo") for i in range(5)])
    yield store
    store.close()


def test_one_annotator_decides_by_their_latest_review_as_before(store):
    store.decide("t0", "accept", annotator="ana")
    store.decide("t0", "reject", annotator="ana")
    assert store.decision("t0") == "reject" and not store.disagreement("t0")
    review = store.decide("t0", "skip", annotator="ana")
    assert store.decision("t0") == "skip"
    store.undo(review, annotator="ana")
    assert store.decision("t0") == "reject"


def test_two_annotators_who_disagree_leave_it_disputed_until_an_adjudicator_decides(store):
    store.decide("t1", "accept", annotator="ana")
    store.decide("t1", "reject", annotator="ben")
    assert store.decision("t1") == "disputed" and store.disagreement("t1")
    assert describe_votes(store.votes("t1")) == "accepted by ana, rejected by ben"
    assert "t1" not in store.trajectory_ids(review="accepted") and store.trajectory_ids(review="disagreements") == [
        "t1"]
    store.decide("t1", "reject", annotator="cy", adjudication=True)
    assert store.decision("t1") == "reject" and not store.disagreement("t1")
    assert describe_votes(store.votes("t1")) == "accepted by ana, rejected by ben; adjudicated: reject by cy"
    assert store.trajectory_ids(review="disagreements") == []


def test_the_majority_decides_and_a_skip_is_no_vote(store):
    store.decide("t2", "accept", annotator="ana")
    store.decide("t2", "accept", annotator="ben")
    store.decide("t2", "reject", annotator="cy")
    store.decide("t2", "skip", annotator="dee")
    assert store.decision("t2") == "accept" and store.disagreement("t2")  # decided, but they disagreed
    store.decide("t3", "skip", annotator="ana")
    store.decide("t3", "accept", annotator="ben")
    assert store.decision("t3") == "accept" and not store.disagreement("t3")


def test_the_unanimous_rule_accepts_only_what_everyone_accepted(store):
    store.decide("t2", "accept", annotator="ana")
    store.decide("t2", "accept", annotator="ben")
    store.decide("t2", "reject", annotator="cy")
    assert store.set_decision_rule("unanimous") and store.decision("t2") == "disputed"
    assert not store.set_decision_rule("unanimous")  # unchanged: nothing recomputed
    assert store.set_decision_rule("majority") and store.decision("t2") == "accept"
    with pytest.raises(ValueError, match="decision rule must be one of majority, unanimous"):
        store.set_decision_rule("latest")


def test_an_annotator_changing_their_mind_changes_only_their_vote(store):
    store.decide("t4", "accept", annotator="ana")
    store.decide("t4", "reject", annotator="ben")
    store.decide("t4", "accept", annotator="ben")
    assert store.decision("t4") == "accept" and not store.disagreement("t4")
    assert describe_votes(store.votes("t4")) == "accepted by ana, accepted by ben"


def test_the_queue_filter_of_disagreements_pages_exactly_those(store):
    store.decide("t0", "accept", annotator="ana")
    store.decide("t0", "reject", annotator="ben")
    store.decide("t1", "accept", annotator="ana")
    assert [row.id for row in window(store, QueueFilter(review="disagreements"), 0, 10)] == ["t0"]
    assert QueueFilter(review="disagreements").admits("disputed", True)
    assert not QueueFilter(review="disagreements").admits("accept", False)


def test_a_mask_toggle_is_kept_with_its_annotator(store):
    store.set_weight("t0", 2, 0, annotator="ana")
    row = store.conn.execute("SELECT message_index, weight, annotator FROM weight_marks").fetchall()
    assert row == [(2, 0, "ana")]


def test_a_v4_store_migrates_with_its_decisions(tmp_path):
    path = tmp_path / "old.db"
    with rich_store(tmp_path / "new.db") as current:
        expected = {t: current.decision(t) for t in ("w1", "w2", "w3", "t1")}
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:4]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 4")
    conn.execute("INSERT INTO trajectories (id, status, source, instruction, created_at, updated_at) "
                 "VALUES ('w1', 'complete', 'simulated', 'x', '2026-01-01', '2026-01-01')")
    conn.executemany("INSERT INTO reviews (trajectory_id, decision, annotator, created_at) VALUES ('w1', ?, ?, ?)",
                     [("accept", "ann", "2026-01-01T00:00:00Z"), ("reject", "ann", "2026-01-01T00:00:01Z")])
    conn.commit()
    conn.close()
    with Store.open(path) as store:
        assert store.decision("w1") == "reject" and store.decision_rule == "majority"
    assert expected == {"w1": "accept", "w2": "accept", "w3": "reject", "t1": None}


def test_progress_counts_disputed_trajectories_as_neither_pending_nor_settled(store):
    from store.queue import progress

    store.decide("t0", "accept", annotator="ana")
    store.decide("t0", "reject", annotator="ben")
    store.decide("t1", "accept", annotator="ana")
    done = progress(store, QueueFilter(review="all"))
    assert (done.total, done.reviewed, done.disputed, done.pending, done.accepted) == (5, 1, 1, 3, 1)
    assert done.moved("disputed", "accept") == done.moved("disputed", "accept")  # a plain value
    assert (done.moved("disputed", "accept").disputed, done.moved("disputed", "accept").accepted) == (0, 2)


def test_each_annotators_tags_side_by_side(store):
    from store.decisions import describe_tags

    store.decide("t0", "accept", annotator="ana")
    store.decide("t0", "reject", annotator="ben")
    store.add_tag("t0", "param_missing", 2, annotator="ben")
    store.add_tag("t0", "content_error", 4, annotator="ben")
    store.add_tag("t0", "content_error", 4, annotator="ana")
    store.remove_tag("t0", "content_error", 4, annotator="ana")  # ana changed her mind
    tags = store.annotator_tags("t0")
    assert tags == {"ben": [(2, "param_missing"), (4, "content_error")]}
    assert describe_tags(store.votes("t0"), tags) == "ana: none · ben: #2 param_missing, #4 content_error"
    store.decide("t1", "accept", annotator="ana")
    assert describe_tags(store.votes("t1"), store.annotator_tags("t1")) == ""  # one voter: nothing to compare
