"""`curator dedup`: near-duplicate instructions (MinHash LSH, then exact Jaccard) and identical call sequences
are tagged `duplicate` on every member but the one kept; the review queue can hide them."""
from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import pytest
from click.testing import CliRunner
from conftest import fixture_path
from data_helpers import everyday_store, run_cli
from textual.widgets import Checkbox
from tui_fixtures import call

from bench.dedup import paraphrases

from curator.app import CuratorApp
from curator.cli import cli
from curator.screens.filter import FilterDialog
from curator.settings import Config
from curator.sim.backends.scripted import write_instruction
from curator.sim.config import SimConfig
from curator.sim.toolsets import SimToolset, demo_toolset
from curator.widgets.queue_view import QueueView
from store import Message, Store, Trajectory
from store.dedup import _NUMBER, Cluster, find_duplicates, write_tags
from store.flagging import flag_all
from store.queue import QueueFilter, count, window
from store.taxonomy import MaskPolicy

def everyday_requests(n: int) -> list[str]:
    """``n`` requests the everyday simulation's user writes, distinct even once their numbers are made 0."""
    toolset, config = SimToolset(demo_toolset("everyday")), SimConfig(toolset="everyday")
    found: dict[str, str] = {}
    for i in itertools.count():
        text = write_instruction(toolset, random.Random(f"dedup-test:{i}"), config, set()).text
        found.setdefault(_NUMBER.sub("0", text.lower()), text)
        if len(found) == n:
            return list(found.values())
    raise AssertionError("unreachable")


def toolalpaca_requests() -> list[str]:
    data = json.loads(fixture_path("toolalpaca/eval_simulated.json").read_text())
    return [text for api in data for text in api["Instructions"]]


# -- stores -----------------------------------------------------------------------------------------------
def trajectory(id: str, instruction: str, calls: Sequence[tuple[str, dict[str, Any]]] = (),
               **fields: Any) -> Trajectory:
    messages = [Message("user", instruction)]
    for k, (name, arguments) in enumerate(calls):
        messages += [Message("assistant", None, tool_calls=[call(f"c{k}", name, arguments)]),
                     Message("tool", '{"ok": true}', tool_call_id=f"c{k}")]
    messages.append(Message("assistant", "Done."))
    return Trajectory(id, "everyday", instruction, fields.pop("status", "complete"), messages=messages, **fields)


def planted_store(path: Path, texts: list[str]) -> Store:
    store = Store.open(path)
    store.insert_trajectories(trajectory(f"t{i:04d}", text) for i, text in enumerate(texts))
    return store


def pair_scores(clusters: list[Cluster], group_of: dict[str, int]) -> tuple[float, float]:
    """Precision and recall over pairs: a pair found is a pair of one cluster; a true pair, two ids of one group."""
    found = {frozenset(p) for c in clusters if c.kind == "instruction" for p in itertools.combinations(c.members, 2)}
    truth = {frozenset((a, b)) for a, b in itertools.combinations(group_of, 2) if group_of[a] == group_of[b]}
    right = len(found & truth)
    return right / len(found), right / len(truth)


@pytest.mark.parametrize("source", ["everyday", "toolalpaca"])
def test_planted_paraphrases_are_clustered_with_precision_and_recall(tmp_path: Path, source: str) -> None:
    """Distinct requests, each with two paraphrases (other numbers and a synonym; other numbers and clauses in
    another order), shuffled into one store: the clusters are the requests."""
    bases = everyday_requests(150) if source == "everyday" else toolalpaca_requests()
    rng = random.Random(11)
    planted = [(text, group) for group, base in enumerate(bases) for text in [base, *paraphrases(base, rng)]]
    rng.shuffle(planted)
    with planted_store(tmp_path / "p.db", [text for text, _ in planted]) as store:
        result = find_duplicates(store)
    group_of = {f"t{i:04d}": group for i, (_, group) in enumerate(planted)}
    precision, recall = pair_scores(result.clusters, group_of)
    print(f"{source}: {len(bases)} requests x 3, precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.9 and recall >= 0.9


def plan_names(meta: dict[str, Any]) -> Counter[str]:
    """The names a simulated request's plan passes (cities, titles, authors, currencies, people): the capitalised
    string arguments, but the one the user left vague ("my city") for a clarifying question."""
    plan = meta["plan"]
    vague = plan.get("clarify") or {}
    names: Counter[str] = Counter()
    for k, planned in enumerate(plan["calls"]):
        for param, value in planned["arguments"].items():
            if (vague.get("call"), vague.get("param")) != (k, param):
                names.update(v for v in (value if isinstance(value, list) else [value])
                             if isinstance(v, str) and v[:1].isupper())
    return names


def assistant_calls(store: Store, trajectory_id: str) -> list[tuple[str, Any]]:
    return [(c["function"]["name"], json.loads(c["function"]["arguments"]))
            for m in store.messages(trajectory_id) if m.role == "assistant" for c in m.tool_calls or []]


@pytest.mark.slow
def test_the_everyday_simulation_clusters_only_requests_for_the_same_things(tmp_path: Path) -> None:
    """2,000 scripted trajectories on the 25-tool everyday toolset. Read by hand (40 clusters of 148): the same
    template with the same city, title, word or currency, differing in numbers (dates, ISBNs, counts, event ids)
    or the joiner of two clauses in another order; two differ in a lowercase word (a genre, the word looked up)
    and one swaps two currencies (GBP to CAD, CAD to GBP). Checked against the simulation's plans: every
    cluster's requests ask for the same tools with the same names."""
    with everyday_store(tmp_path / "everyday.db") as store:
        result = find_duplicates(store)
        meta = {t.id: t.meta for t in store.iter_trajectories()}
        instructions = [c for c in result.clusters if c.kind == "instruction"]
        for cluster in instructions:
            print(" | ".join(result.instructions[m] for m in cluster.members))
        assert len(instructions) >= 100  # the generator does repeat itself
        for cluster in instructions:
            tools = {tuple(sorted(c["name"] for c in meta[m]["plan"]["calls"])) for m in cluster.members}
            names = {tuple(sorted(plan_names(meta[m]).elements())) for m in cluster.members}
            assert len(tools) == 1 and len(names) == 1, [result.instructions[m] for m in cluster.members]
        calls = [c for c in result.clusters if c.kind == "calls"]
        assert calls
        for cluster in calls:
            first, *others = (assistant_calls(store, m) for m in cluster.members)
            assert first and all(other == first for other in others)


def test_identical_call_sequences_form_their_own_clusters(tmp_path: Path) -> None:
    alerts = [("getWeatherAlerts", {"city": "Perth", "severity": "minor"})]
    store = Store.open(tmp_path / "c.db")
    store.insert_trajectories([
        trajectory("a", "Are there any weather warnings for Perth right now?", alerts),
        trajectory("b", "Check whether Perth has active storm or flood alerts.",
                   [("getWeatherAlerts", {"severity": "minor", "city": "Perth"})], decision="accept"),
        trajectory("c", "Any alerts in Perth?", [("getWeatherAlerts", {"city": "Perth", "severity": "major"})]),
        trajectory("d", "Are there any weather warnings for Perth right now, please?", alerts, status="running"),
        trajectory("e", "Hello there.", []),
        trajectory("f", "Hello there!", []),
    ])
    result = find_duplicates(store)
    by_kind = {c.kind: c for c in result.clusters}
    assert by_kind["calls"] == Cluster("calls", "b", ("a", "b"))  # same arguments in another order; b accepted
    assert by_kind["instruction"] == Cluster("instruction", "e", ("e", "f"))  # no calls: not a call cluster
    assert result.tagged == {"a": "near-duplicate of b (same calls): Check whether Perth has active storm or "
                                  "flood alerts.", "f": "near-duplicate of e: Hello there."}
    store.close()


def test_a_cluster_keeps_the_accepted_member_else_the_earliest_not_rejected(tmp_path: Path) -> None:
    text = "What will the weather be like in Oslo over the next {} days?"
    store = Store.open(tmp_path / "k.db")
    store.insert_trajectories([trajectory("r", text.format(2), decision="reject"),
                               trajectory("p", text.format(3)),
                               trajectory("x", text.format(4), decision="accept"),
                               trajectory("y", text.format(5), decision="accept")])
    [cluster] = find_duplicates(store).clusters
    assert cluster.kept == "x" and cluster.duplicates == ("r", "p", "y")
    store.decide("x", "reject")
    store.decide("y", "reject")
    [cluster] = find_duplicates(store).clusters
    assert cluster.kept == "p"
    store.close()


# -- the command --------------------------------------------------------------------------------------------
OSLO = "What will the weather be like in Oslo over the next {} days? Metric units, please."
REQUESTS = [OSLO.format(3), OSLO.format(5),
            "Metric units, please. Over the next 2 days, what will the weather be like in Oslo?",
            "What will the weather be like in Lima over the next 3 days?",
            "Are there any weather warnings for Perth right now?"]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    planted_store(tmp_path / "d.db", REQUESTS).close()
    return tmp_path / "d.db"


def dedup_tags(db: Path) -> list[tuple[Any, ...]]:
    with Store.open(db) as store:
        return store.conn.execute("SELECT * FROM tags ORDER BY id").fetchall()


def duplicates(store: Store) -> dict[str, str]:
    """Trajectory id -> note of its effective ``duplicate`` tag."""
    return dict(store.conn.execute("SELECT trajectory_id, note FROM effective_tags WHERE code = 'duplicate' "
                                   "AND message_index IS NULL").fetchall())


def test_dedup_tags_every_member_but_the_kept_one(db: Path, capsys) -> None:
    code, out, err = run_cli(capsys, "--db", str(db), "dedup")
    assert code == 0, err
    assert out.splitlines()[0] == ("5 trajectories read: 1 clusters of near-duplicates (threshold 0.8), "
                                   "2 trajectories tagged duplicate")
    assert "2 tags written, 0 cleared" in out
    with Store.open(db) as store:
        note = f"near-duplicate of t0000: {OSLO.format(3)[:59]}…"
        assert duplicates(store) == {"t0001": note, "t0002": note}
        [tag] = [t for t in store.effective_tags("t0001") if t.code == "duplicate"]
        assert tag.source == "auto" and tag.origin == "dedup" and tag.message_index is None


def test_a_rerun_changes_nothing_and_a_human_untag_survives_it(db: Path, capsys) -> None:
    run_cli(capsys, "--db", str(db), "dedup")
    before = dedup_tags(db)
    code, out, _ = run_cli(capsys, "--db", str(db), "dedup")
    assert code == 0 and "0 tags written, 0 cleared" in out and dedup_tags(db) == before
    with Store.open(db) as store:
        store.remove_tag("t0002", "duplicate", annotator="ana")
    assert run_cli(capsys, "--db", str(db), "dedup")[0] == 0
    with Store.open(db) as store:
        assert set(duplicates(store)) == {"t0001"}  # the human un-tag still wins
        assert store.conn.execute("SELECT count(*) FROM tags WHERE trajectory_id = 't0002' AND origin = 'dedup'"
                                  ).fetchone()[0] == 1


def test_a_rerun_follows_the_store_decisions_and_the_threshold(db: Path, capsys) -> None:
    run_cli(capsys, "--db", str(db), "dedup")
    with Store.open(db) as store:
        store.decide("t0002", "accept")
    code, out, _ = run_cli(capsys, "--db", str(db), "dedup")
    assert code == 0 and "2 tags written, 1 cleared" in out  # t0000 tagged, t0001's note changed, t0002 cleared
    with Store.open(db) as store:
        assert set(duplicates(store)) == {"t0000", "t0001"}
    code, out, _ = run_cli(capsys, "--db", str(db), "dedup", "--threshold", "0.99")
    assert code == 0 and "1 tags written, 1 cleared" in out  # the clauses in another order are out of it
    with Store.open(db) as store:
        assert duplicates(store) == {"t0001": f"near-duplicate of t0000: {OSLO.format(3)[:59]}…"}


def test_dry_run_and_json_write_nothing_but_show_the_clusters(db: Path, capsys) -> None:
    before = dedup_tags(db)
    code, out, err = run_cli(capsys, "--db", str(db), "dedup", "--dry-run", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["dry_run"] and shown["tagged"] == 2 and shown["written"] == 0
    assert shown["by_kind"] == {"instruction": {"clusters": 1, "duplicates": 2}, "calls": {"clusters": 0,
                                                                                          "duplicates": 0}}
    [cluster] = shown["clusters"]
    assert cluster["kept"] == "t0000" and [m["instruction"] for m in cluster["members"]] == REQUESTS[:3]
    assert dedup_tags(db) == before
    code, out, _ = run_cli(capsys, "--db", str(db), "dedup", "--dry-run")
    assert code == 0 and out.splitlines()[-1] == "dry run: nothing written" and dedup_tags(db) == before


@pytest.mark.parametrize("value", ["1.5", "0", "abc", "nan"])
def test_a_bad_threshold_is_one_line(db: Path, capsys, value: str) -> None:
    before = dedup_tags(db)
    code, out, err = run_cli(capsys, "--db", str(db), "dedup", "--threshold", value)
    assert code != 0 and out == "" and "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("error: --threshold: ") and value in err
    assert dedup_tags(db) == before


def test_the_tag_masks_nothing_and_reflagging_keeps_it(db: Path, capsys) -> None:
    assert not MaskPolicy.of().masks("duplicate")
    with Store.open(db) as store:
        write_tags(store, find_duplicates(store))
        store.add_tag("t0003", "duplicate", source="human", annotator="ana")  # a human may tag one too
        flag_all(store, MaskPolicy.of())
        assert set(duplicates(store)) == {"t0001", "t0002", "t0003"}
        assert store.conn.execute("SELECT count(*) FROM messages WHERE weight = 0").fetchone()[0] == 0


# -- the review queue ---------------------------------------------------------------------------------------
def test_the_queue_filters_or_hides_duplicates(db: Path, capsys) -> None:
    run_cli(capsys, "--db", str(db), "dedup")
    with Store.open(db) as store:
        hidden = QueueFilter(hide_duplicates=True)
        assert [r.id for r in window(store, hidden, 0, 10)] == ["t0000", "t0003", "t0004"]
        assert count(store, hidden) == 3 and hidden.describe() == "pending · no duplicates"
        assert [r.id for r in window(store, QueueFilter(tag="duplicate"), 0, 10)] == ["t0001", "t0002"]
        store.remove_tag("t0001", "duplicate", annotator="ana")
        assert count(store, hidden) == 4


async def test_the_filter_screen_toggle_hides_duplicates(db: Path, capsys) -> None:
    run_cli(capsys, "--db", str(db), "dedup")
    with Store.open(db) as store:
        app = CuratorApp(store, Config(), screen="review", annotator="ann")
        async with app.run_test(size=(140, 44)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            queue = app.screen.query_one(QueueView)
            assert queue.total == 5
            await pilot.press("slash")
            assert isinstance(app.screen, FilterDialog)
            await pilot.press("tab")  # from the text box to the toggle
            assert app.screen.focused is app.screen.query_one("#hide-duplicates", Checkbox)
            await pilot.press("space", "ctrl+s")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert queue.filter.hide_duplicates and queue.total == 3
            assert queue.current is not None and queue.current.id == "t0000"
            await pilot.press("J", "J")  # the next trajectories: the tagged ones are skipped
            assert app.screen.shown.trajectory.id == "t0004"
            await pilot.press("slash", "tab", "space", "ctrl+s")  # toggled back
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert not queue.filter.hide_duplicates and queue.total == 5


def test_review_hide_duplicates_opens_the_queue_without_them(db: Path, capsys,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    run_cli(capsys, "--db", str(db), "dedup")
    seen: list[tuple[bool, int]] = []

    def run_under_pilot(app: CuratorApp) -> None:
        async def look() -> None:
            async with app.run_test(size=(140, 44)) as pilot:
                await app.workers.wait_for_complete()
                await pilot.pause()
                queue = app.screen.query_one(QueueView)
                seen.append((queue.filter.hide_duplicates, queue.total))

        asyncio.run(look())

    monkeypatch.setattr(CuratorApp, "run", run_under_pilot)
    for args in (["review", "--hide-duplicates"], ["review"]):
        result = CliRunner().invoke(cli, ["--db", str(db), *args], obj={})
        assert result.exit_code == 0, result.output
    assert seen == [(True, 3), (False, 5)]
