"""The team workflow end to end, as the README gives it: assign overlapping shares of one simulated store,
two annotators review their copies, the copies merge (in either order, twice: the same store), agreement
equals an independent computation, the disagreements are exactly the trajectories decided differently, an
adjudicator resolves them and the export follows the rule."""
from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from data_helpers import export_lines, run_cli
from store import Store

pytest.importorskip("sklearn")
pytest.importorskip("krippendorff")


def _simulated(path: Path, n: int = 12) -> None:
    from curator.sim import SimConfig, Simulation
    from store.taxonomy import MaskPolicy

    with Store.open(path) as store:
        asyncio.run(Simulation(store, SimConfig(toolset="everyday", n=n, seed=5), policy=MaskPolicy.of()).run())


def _review(path: Path, annotator: str, decide) -> dict[str, str]:
    """Decide every trajectory of the annotator's copy with ``decide(index, id)``; returns id → decision."""
    decisions = {}
    with Store.open(path, create=False) as store:
        for index, trajectory_id in enumerate(sorted(store.trajectory_ids())):
            decisions[trajectory_id] = decide(index, trajectory_id)
            store.decide(trajectory_id, decisions[trajectory_id], annotator=annotator)
    return decisions


def _dump(path: Path) -> dict[str, list]:
    """Every review-side table without row ids, sorted: what must not depend on the order of merging."""
    conn = sqlite3.connect(path)
    try:
        return {
            "reviews": sorted(conn.execute("SELECT trajectory_id, decision, annotator, note, adjudication, created_at "
                                           "FROM reviews").fetchall()),
            "review_state": sorted(conn.execute("SELECT trajectory_id, decision, disagreement FROM review_state")),
            "trajectories": sorted(conn.execute("SELECT id, toolset, instruction FROM trajectories")),
            "messages": sorted(conn.execute("SELECT trajectory_id, idx, role, content, weight FROM messages")),
        }
    finally:
        conn.close()


def _kappa(a: list[str], b: list[str]) -> float:
    """Cohen's kappa from its definition: (po - pe) / (1 - pe)."""
    n = len(a)
    po = sum(x == y for x, y in zip(a, b)) / n
    labels = set(a) | set(b)
    pe = sum((a.count(label) / n) * (b.count(label) / n) for label in labels)
    return (po - pe) / (1 - pe)


def test_two_annotators_assign_review_merge_agree_and_an_adjudicator_resolves(tmp_path, capsys):
    store = tmp_path / "sim.db"
    _simulated(store)
    code, out, err = run_cli(capsys, "--db", str(store), "assign", "--annotators", "ana,ben", "--overlap", "2",
                             "--out", str(tmp_path / "shares"))
    assert code == 0, err
    ana_db, ben_db = tmp_path / "shares" / "ana.db", tmp_path / "shares" / "ben.db"
    ana = _review(ana_db, "ana", lambda i, _: "accept" if i % 3 else "reject")
    ben = _review(ben_db, "ben", lambda i, _: "accept" if i % 4 else "reject")
    assert set(ana) == set(ben) and len(ana) == 12  # overlap 2 of 2: both see everything

    results = []
    for order in ((ana_db, ben_db), (ben_db, ana_db)):
        team = tmp_path / f"team-{order[0].stem}.db"
        shutil.copy(store, team)
        for _ in range(2):  # twice: nothing is added the second time
            code, out, err = run_cli(capsys, "--db", str(team), "merge", *map(str, order), "--into", str(team))
            assert code == 0, err
        results.append(_dump(team))
    assert results[0] == results[1]
    assert len(results[0]["reviews"]) == 24

    team = tmp_path / "team-ana.db"
    code, out, _ = run_cli(capsys, "--db", str(team), "agreement", "--json")
    assert code == 0
    report = json.loads(out)
    ids = sorted(ana)
    a, b = [ana[i] for i in ids], [ben[i] for i in ids]
    pair = report["decisions"]["pairs"][0]
    assert pair["annotators"] == ["ana", "ben"] and pair["n"] == 12
    assert pair["percent_agreement"] == pytest.approx(100 * sum(x == y for x, y in zip(a, b)) / 12)
    assert pair["kappa"] == pytest.approx(_kappa(a, b))

    differing = sorted(i for i in ids if ana[i] != ben[i])
    with Store.open(team, create=False) as merged:
        assert sorted(merged.trajectory_ids(review="disagreements")) == differing
        assert all(merged.decision(i) == "disputed" for i in differing)
        for trajectory_id in differing:
            merged.decide(trajectory_id, "accept", annotator="cy", adjudication=True)
        assert merged.trajectory_ids(review="disagreements") == []
    code, _, _ = run_cli(capsys, "--db", str(team), "export", str(tmp_path / "accepted.jsonl"))
    exported = {r["id"] for r in export_lines(tmp_path / "accepted.jsonl") if "derived_from" not in r["meta"]}
    both_accepted = {i for i in ids if ana[i] == ben[i] == "accept"}
    assert exported == both_accepted | set(differing)  # majority of two: agreement, else the adjudicator
