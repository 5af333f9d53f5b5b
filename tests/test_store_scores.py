"""Schema V7: scores per trajectory and the queue orders they give, step-level pairs and their review,
auto tags that name the check that put them, runs linked to a parent run."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
from tui_fixtures import make_store

from store import Store
from store.queue import QueueFilter, count, position, window
from store.records import StepPair


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with make_store(tmp_path / "scores.db") as opened:
        yield opened


def ids(store: Store, queue: QueueFilter) -> list[str]:
    return [row.id for row in window(store, queue, 0, 100)]


def test_hardest_order_is_descending_perplexity_with_unscored_last(store: Store) -> None:
    assert store.set_scores("perplexity", {"traj-02": 3.5, "traj-04": 9.25, "traj-01": 3.5, "nope": 1.0},
                            model="runs/itool/round-2") == 3
    hardest = QueueFilter(review="all", order="hardest")
    assert ids(store, hardest) == ["traj-04", "traj-01", "traj-02", "traj-03"]  # a tie keeps rowid order
    rows = window(store, hardest, 0, 10)
    assert [r.score for r in rows] == [9.25, 3.5, 3.5, None]
    assert {s.model for s in store.scores("perplexity").values()} == {"runs/itool/round-2"}
    store.set_scores("perplexity", {"traj-03": 20.0}, model="newer")  # a new score replaces the old
    assert ids(store, hardest)[0] == "traj-03" and store.scores("perplexity")["traj-03"].model == "newer"


def test_judge_order_is_least_confident_first_and_counts_match_any_order(store: Store) -> None:
    store.set_scores("judge", {"traj-01": 0.9, "traj-03": 0.2})
    assert ids(store, QueueFilter(review="all", order="judge")) == ["traj-03", "traj-01", "traj-02", "traj-04"]
    for order in ("queue", "hardest", "judge"):
        assert count(store, QueueFilter(review="all", order=order)) == 4
    with pytest.raises(ValueError, match="score kind"):
        store.set_scores("nonsense", {"traj-01": 1.0})


def test_position_agrees_with_the_window_in_every_order(tmp_path: Path) -> None:
    """Position (where the review screen puts its cursor) is the row's offset in the window, ties and gaps
    included, on a store with many trajectories."""
    with make_store(tmp_path / "many.db") as store:
        base = store.trajectory("traj-02")
        copies = []
        for n in range(40):
            base.id = f"copy-{n:02d}"
            copies.append(base.id)
            store.insert_trajectories([base])
        rng = random.Random(3)
        store.set_scores("perplexity", {i: rng.choice([1.0, 2.0, 2.5, 7.0]) for i in copies[::2]})
        store.set_scores("judge", {i: rng.random() for i in copies[1::3]})
        for order in ("queue", "newest", "hardest", "judge"):
            queue = QueueFilter(review="all", order=order)
            shown = ids(store, queue)
            assert [position(store, queue, i) for i in shown] == list(range(len(shown))), order


def test_pairs_are_stored_whole_and_a_rejected_pair_is_not_trainable(store: Store) -> None:
    run = store.create_run("train", "itool", "tiny", {})
    prefix = [{"role": "user", "content": "Forecast for Paris?"}]
    chosen = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "getWeatherForecast", "arguments": '{"city":"Paris"}'}}]}
    rejected = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "b", "type": "function", "function": {"name": "getWeatherAlerts", "arguments": '{"region":"Paris"}'}}]}
    first, second = store.add_pairs([
        StepPair([], prefix, chosen, rejected, round=1, run_id=run, trajectory_id="traj-01", chosen_reward=1.0,
                 rejected_reward=-1.0, rejected_error="wrong_tool"),
        StepPair([], prefix, chosen, {"role": "assistant", "content": "No idea."}, round=1, run_id=run),
    ])
    loaded = store.pair(first)
    assert (loaded.prefix, loaded.chosen, loaded.rejected, loaded.message_index) == (prefix, chosen, rejected, 1)
    assert (loaded.rejected_error, loaded.rejected_reward, loaded.decision) == ("wrong_tool", -1.0, None)
    store.decide_pair(second, "reject", annotator="ana")
    assert [p.id for p in store.pairs(run_ids=[run], trainable=True)] == [first]
    assert [p.id for p in store.pairs(pending=True)] == [first]
    store.decide_pair(second, None)  # pending again, trainable again
    assert len(store.pairs(trainable=True)) == 2
    with pytest.raises(ValueError):
        store.decide_pair(first, "maybe")
    with pytest.raises(KeyError):
        store.decide_pair(999, "accept")


def test_reflagging_replaces_only_the_flaggers_auto_tags(store: Store) -> None:
    store.replace_auto_tags("traj-02", [(2, "content_error", "asked for Brittany, called for Paris")],
                            origin="judge", annotator="judge-model")
    store.replace_auto_tags("traj-02", [(2, "param_missing", None)])  # the flagger, again and again
    store.replace_auto_tags("traj-02", [])
    tags = store.effective_tags("traj-02")
    assert [(t.code, t.origin, t.annotator, t.note) for t in tags] == [
        ("content_error", "judge", "judge-model", "asked for Brittany, called for Paris")]
    store.replace_auto_tags("traj-02", [], origin="judge")
    assert store.effective_tags("traj-02") == []


def test_rounds_name_their_loop(store: Store) -> None:
    loop = store.create_run("train", "itool", "tiny", {})
    round_one = store.create_run("train", "dpo", "tiny", {}, parent_id=loop)
    assert store.run(round_one).parent_id == loop and store.run(loop).parent_id is None


def test_inserted_auto_tags_are_the_flaggers_unless_they_say_and_round_trip_through_jsonl(store: Store,
                                                                                          tmp_path: Path) -> None:
    """traj-01 came in with an auto tag (make_store inserts it): re-flagging must replace it, not add beside it;
    a judge's tag keeps its origin through an export and an import."""
    store.replace_auto_tags("traj-01", [(2, "param_missing", None)])
    assert [(t.code, t.origin) for t in store.effective_tags("traj-01")] == [("param_missing", "flagger")]
    store.replace_auto_tags("traj-01", [(4, "content_error", "Paris, not Lyon")], origin="judge", annotator="m")
    from store.formats import EXPORTERS, IMPORTERS

    out = tmp_path / "out.jsonl"
    EXPORTERS["jsonl"](store, out, status="all")
    with Store.open(tmp_path / "copy.db") as copy:
        IMPORTERS["jsonl"](copy, out)
        tags = {(t.code, t.origin) for t in copy.effective_tags("traj-01")}
        assert tags == {("param_missing", "flagger"), ("content_error", "judge")}
        copy.replace_auto_tags("traj-01", [])  # re-flagging the copy leaves the judge's verdict
        assert {(t.code, t.origin) for t in copy.effective_tags("traj-01")} == {("content_error", "judge")}
