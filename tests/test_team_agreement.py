"""`curator agreement`: annotators' agreement on decisions and error codes, and the auto-flagger against them.

The expected numbers are worked out here from the definitions (po, pe; the coincidence matrix), never by
asking scikit-learn or krippendorff again.
"""
from __future__ import annotations

import json
import sys

import pytest

from data_helpers import run_cli, weather_trajectory
from store import Store, Tag

ASSISTANT = (2, 4, 6)  # weather_trajectory's assistant messages: the misspelled call, the fixed call, the answer
#: Planted standing votes (a skip, an undone review, a changed mind and an adjudication are planted on top).
VOTES = {
    "t0": {"ana": "accept", "ben": "accept", "cy": "accept"},
    "t1": {"ana": "accept", "ben": "reject", "cy": "reject"},
    "t2": {"ana": "reject", "ben": "reject"},
    "t3": {"ana": "accept", "ben": "accept"},
    "t4": {"ana": "reject", "ben": "accept", "cy": "accept"},
    "t5": {"ana": "accept", "cy": "reject"},
}


def kappa(first: list, second: list) -> float:
    """Cohen's kappa from its definition: (po - pe) / (1 - pe)."""
    n = len(first)
    po = sum(x == y for x, y in zip(first, second)) / n
    pe = sum((first.count(v) / n) * (second.count(v) / n) for v in set(first) | set(second))
    return (po - pe) / (1 - pe)


def percent(first: list, second: list) -> float:
    return 100 * sum(x == y for x, y in zip(first, second)) / len(first)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "team.db"
    store = Store.open(path)
    auto = [Tag("param_hallucination", "auto", 2)]
    store.insert_trajectories(
        [weather_trajectory(f"t{i}", "Oslo", tags=auto + ([Tag("content_error", "auto", 4)] if i == 0 else []))
         for i in range(7)])
    store.decide("t4", "reject", annotator="ben")  # ben changes his mind: his standing vote is the accept below
    for trajectory, votes in VOTES.items():
        for annotator, decision in votes.items():
            store.decide(trajectory, decision, annotator=annotator)
    store.decide("t3", "skip", annotator="cy")  # a skip is no decision
    store.undo(store.decide("t2", "accept", annotator="cy"), annotator="cy")  # undone: no vote
    store.decide("t1", "reject", annotator="dee", adjudication=True)  # an adjudicator is not an annotator's vote
    for trajectory in ("t0", "t1", "t2"):
        store.add_tag(trajectory, "param_hallucination", 2, annotator="ana")
    for trajectory in ("t0", "t1", "t2", "t3"):
        store.add_tag(trajectory, "param_hallucination", 2, annotator="ben")
    store.remove_tag("t2", "param_hallucination", 2, annotator="ben")  # ben's latest on t2#2: not there
    store.add_tag("t5", "param_hallucination", 2, annotator="ana")
    store.add_tag("t5", "param_hallucination", 4, annotator="cy")
    store.add_tag("t4", "content_error", 6, annotator="ana")
    store.add_tag("t0", "tool_instability", 3, annotator="ben")  # on a tool message: it joins ana/ben's messages
    store.remove_tag("t6", "param_hallucination", 2, annotator="cy")  # an un-tag of an auto tag, t6 undecided
    store.close()
    return path


def report(capsys, db) -> dict:
    code, out, err = run_cli(capsys, "--db", str(db), "agreement", "--json")
    assert code == 0, err
    return json.loads(out)


def pair(rows: list[dict], a: str, b: str, code: str | None = None) -> dict:
    return next(r for r in rows if r["annotators"] == [a, b] and r.get("code") == code)


def test_decision_agreement_per_pair_is_percent_and_kappa_on_what_both_decided(capsys, db):
    result = report(capsys, db)
    assert result["annotators"] == ["ana", "ben", "cy"]
    pairs = result["decisions"]["pairs"]
    assert [p["annotators"] for p in pairs] == [["ana", "ben"], ["ana", "cy"], ["ben", "cy"]]
    for a, b in (("ana", "ben"), ("ana", "cy"), ("ben", "cy")):
        shared = sorted(t for t, votes in VOTES.items() if a in votes and b in votes)
        first, second = [VOTES[t][a] for t in shared], [VOTES[t][b] for t in shared]
        row = pair(pairs, a, b)
        assert row["n"] == len(shared)
        assert row["percent_agreement"] == pytest.approx(percent(first, second))
        assert row["kappa"] == pytest.approx(kappa(first, second)) and row["kappa_undefined"] is None
    assert [pair(pairs, *names)["n"] for names in (("ana", "ben"), ("ana", "cy"), ("ben", "cy"))] == [5, 4, 3]
    assert pair(pairs, "ana", "ben")["percent_agreement"] == pytest.approx(60.0)
    assert pair(pairs, "ben", "cy")["kappa"] == pytest.approx(1.0)


def test_overall_alpha_is_the_hand_computed_value_and_the_mean_of_the_pairs(capsys, db):
    overall = report(capsys, db)["decisions"]["overall"]
    # Coincidences (a: accept, r: reject), each unit's ordered pairs weighted 1 / (its values - 1):
    # t0 aaa → aa 3; t1 arr → ar 1, ra 1, rr 1; t2 rr → rr 2; t3 aa → aa 2; t4 raa → ar 1, ra 1, aa 1;
    # t5 ar → ar 1, ra 1. So o_aa 6, o_rr 3, o_ar = o_ra 3; n = 15, n_a = 9, n_r = 6.
    observed = (3 + 3) / 15
    expected = 2 * 9 * 6 / (15 * 14)
    assert overall["krippendorff_alpha"] == pytest.approx(1 - observed / expected) == pytest.approx(2 / 9)
    assert overall["annotators"] == 3 and overall["trajectories"] == 6
    assert overall["mean_pairwise_percent_agreement"] == pytest.approx((60 + 25 + 100) / 3)


def test_code_agreement_is_on_the_messages_both_could_have_tagged(capsys, db):
    codes = report(capsys, db)["codes"]
    assert sorted(r["code"] for r in codes if r["annotators"] == ["ana", "ben"]) == [
        "content_error", "param_hallucination", "tool_instability"]  # only codes one of them used
    # ana and ben both decided t0..t4: their assistant messages, and the tool message ben tagged.
    units = sorted([(t, i) for t in ("t0", "t1", "t2", "t3", "t4") for i in ASSISTANT] + [("t0", 3)])
    tagged = {
        ("ana", "param_hallucination"): {("t0", 2), ("t1", 2), ("t2", 2)},
        ("ben", "param_hallucination"): {("t0", 2), ("t1", 2), ("t3", 2)},  # t2#2 un-tagged again
        ("ana", "content_error"): {("t4", 6)},
        ("ben", "content_error"): set(),
        ("ana", "tool_instability"): set(),
        ("ben", "tool_instability"): {("t0", 3)},
    }
    for code in ("param_hallucination", "content_error", "tool_instability"):
        first = [u in tagged[("ana", code)] for u in units]
        second = [u in tagged[("ben", code)] for u in units]
        row = pair(codes, "ana", "ben", code)
        assert row["n"] == 16
        assert row["percent_agreement"] == pytest.approx(percent(first, second))
        assert row["kappa"] == pytest.approx(kappa(first, second))
    assert pair(codes, "ana", "ben", "param_hallucination")["percent_agreement"] == pytest.approx(100 * 14 / 16)
    # ana and cy both decided t0, t1, t4 and t5 (cy's t2 was undone, t3 skipped): only assistant messages.
    units = [(t, i) for t in ("t0", "t1", "t4", "t5") for i in ASSISTANT]
    first = [u in {("t0", 2), ("t1", 2), ("t5", 2)} for u in units]
    second = [u in {("t5", 4)} for u in units]
    row = pair(codes, "ana", "cy", "param_hallucination")
    assert row["n"] == 12 and row["percent_agreement"] == pytest.approx(100 * 8 / 12)
    assert row["kappa"] == pytest.approx(kappa(first, second))

def test_flagger_precision_and_recall_against_the_humans(capsys, db):
    flagger = {row["code"]: row for row in report(capsys, db)["flagger"]}
    # param_hallucination, auto on every #2: t0, t1, t3, t5 a human tagged (tp); t2 ben un-tagged last, t4 was
    # decided and nobody tagged it, t6 cy un-tagged (fp); cy's tag on t5#4 has no auto tag (fn).
    assert {k: flagger["param_hallucination"][k] for k in ("tp", "fp", "fn")} == {"tp": 4, "fp": 3, "fn": 1}
    assert flagger["param_hallucination"]["precision"] == pytest.approx(4 / 7)
    assert flagger["param_hallucination"]["recall"] == pytest.approx(4 / 5)
    # content_error: the auto tag on t0#4 nobody confirmed, ana's tag on t4#6 the flagger missed.
    assert flagger["content_error"] == {"code": "content_error", "tp": 0, "fp": 1, "fn": 1, "precision": 0.0,
                                             "recall": 0.0}
    # tool_instability: never flagged, so no precision; ben's tag was missed.
    assert flagger["tool_instability"] == {"code": "tool_instability", "tp": 0, "fp": 0, "fn": 1, "precision": None,
                                           "recall": 0.0}


def test_kappa_and_alpha_are_undefined_not_a_crash_when_everyone_gives_one_value(capsys, tmp_path):
    path = tmp_path / "same.db"
    with Store.open(path) as store:
        store.insert_trajectories([weather_trajectory(f"s{i}", "Oslo") for i in range(3)])
        for i in range(3):
            store.decide(f"s{i}", "accept", annotator="ana")
            store.decide(f"s{i}", "accept", annotator="ben")
        store.add_tag("s0", "wrong_tool", 4, annotator="ana")
    result = report(capsys, path)
    decided = result["decisions"]["pairs"][0]
    assert decided["n"] == 3 and decided["percent_agreement"] == 100.0 and decided["kappa"] is None
    assert decided["kappa_undefined"] == "both said accept every time (3 trajectories): chance agreement is 1"
    overall = result["decisions"]["overall"]
    assert overall["krippendorff_alpha"] is None and "decided is accept" in overall["alpha_undefined"]
    assert result["codes"][0]["kappa"] is not None  # ana tagged once, ben never: defined (kappa 0)
    assert result["codes"][0]["kappa"] == pytest.approx(0.0)

    code, out, err = run_cli(capsys, "--db", str(path), "agreement")
    assert code == 0 and err == ""
    row = next(line for line in out.splitlines() if "ana / ben" in line)
    assert "100.0%" in row and "—" in row and "both said accept" in row  # kappa shown as undefined, and why
    assert "Krippendorff's alpha undefined (every decision" in out


def test_the_tables_show_each_pair_code_and_the_flagger(capsys, db):
    code, out, err = run_cli(capsys, "--db", str(db), "agreement")
    assert code == 0 and err == ""
    assert "ana / ben" in out and "60.0%" in out and "ben / cy" in out and "100.0%" in out
    assert "Krippendorff's alpha 0.222" in out and "mean pairwise agreement 61.7%" in out
    assert "param_hallucination" in out and "87.5%" in out
    assert "0.571" in out and "0.800" in out  # the flagger's precision and recall for param_hallucination


def test_no_overlap_says_so_and_exits_zero(capsys, tmp_path):
    path = tmp_path / "solo.db"
    with Store.open(path) as store:
        store.insert_trajectories([weather_trajectory("o1", "Oslo"), weather_trajectory("o2", "Rome")])
        store.decide("o1", "accept", annotator="ana")
        store.decide("o2", "reject", annotator="ben")
    code, out, err = run_cli(capsys, "--db", str(path), "agreement")
    assert code == 0 and err == ""
    assert out.splitlines()[0] == ("no trajectory was decided (accept or reject) by two annotators yet: "
                                   "there is no agreement to measure")
    pairs = report(capsys, path)["decisions"]["pairs"]
    assert pairs == [{"annotators": ["ana", "ben"], "n": 0, "percent_agreement": None, "kappa": None,
                      "kappa_undefined": "no trajectories both judged"}]


def test_hostile_annotator_names_are_shown_inert(capsys, tmp_path):
    path = tmp_path / "hostile.db"
    with Store.open(path) as store:
        store.insert_trajectories([weather_trajectory("h1", "Oslo"), weather_trajectory("h2", "Rome")])
        for trajectory, decision in (("h1", "accept"), ("h2", "reject")):
            store.decide(trajectory, decision, annotator="ana")
            store.decide(trajectory, decision, annotator="\x1b[31mbob[/]")
    code, out, err = run_cli(capsys, "--db", str(path), "agreement")
    assert code == 0 and "\x1b" not in out and "\\x1b[31mbob[/]" in out


def test_without_the_team_extra_it_says_what_to_install(capsys, db, monkeypatch):
    monkeypatch.setitem(sys.modules, "krippendorff", None)  # import krippendorff now raises ImportError
    code, out, err = run_cli(capsys, "--db", str(db), "agreement")
    assert code == 1 and out == ""
    assert err == ("error: curator agreement needs scikit-learn and krippendorff: "
                   "pip install 'tool-curator[team]'\n")


def test_curator_starts_without_the_team_extra(capsys, monkeypatch):
    for name in ("sklearn", "sklearn.metrics", "krippendorff"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "curator.cli.agreement", raising=False)
    monkeypatch.delitem(sys.modules, "store.agreement", raising=False)
    code, out, _ = run_cli(capsys, "agreement", "--help")  # loads the command's modules
    assert code == 0 and "Krippendorff's alpha" in out
