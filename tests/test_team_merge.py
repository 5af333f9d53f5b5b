"""Annotation teams: `curator merge` brings annotators' stores together (idempotent, commutative, conflicts
refused) and `curator assign` hands out the pending trajectories with overlap."""
from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from data_helpers import call, run_cli, snapshot
from store import Correction, GoldItem, Store
from store.formats import detect_format
from store.toolcalls import ToolCall

#: Tables that are one machine's own history or an index, not merged.
LOCAL = ("runs", "run_metrics", "leases")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Twelve scripted everyday simulations (auto-flagged), nobody's review yet."""
    from curator.sim import SimConfig, Simulation
    from store.taxonomy import MaskPolicy

    path = tmp_path_factory.mktemp("base") / "base.db"
    store = Store.open(path)
    asyncio.run(Simulation(store, SimConfig(toolset="everyday", n=12, seed=3), policy=MaskPolicy.of()).run())
    store.make_self_contained()
    store.close()
    return path


def copy_of(base: Path, path: Path) -> Path:
    shutil.copy(base, path)
    return path


def assistant_indices(store: Store, trajectory_id: str) -> list[int]:
    return [m.index for m in store.messages(trajectory_id) if m.role == "assistant"]


def later() -> None:
    """Let the clock move on (times are kept to the millisecond), so ben's work is after ana's."""
    time.sleep(0.005)


def ana_reviews(path: Path) -> list[str]:
    """ana works on the first eight trajectories: decisions (one changed, one undone), a tag, an un-tag of an
    auto tag, a note, a correction and a mask toggle. Returns the ids."""
    with Store.open(path) as store:
        ids = store.trajectory_ids()
        for trajectory_id in ids[:8]:
            store.decide(trajectory_id, "accept", annotator="ana")
        store.decide(ids[1], "reject", annotator="ana")
        store.undo(store.decide(ids[6], "reject", annotator="ana"), annotator="ana")
        first = assistant_indices(store, ids[2])[0]
        store.add_tag(ids[2], "content_error", first, annotator="ana", note="wrong city")
        auto = next((trajectory_id, tag) for trajectory_id in ids for tag in store.effective_tags(trajectory_id)
                    if tag.source == "auto" and tag.message_index is not None)
        store.remove_tag(auto[0], auto[1].code, auto[1].message_index, annotator="ana")
        store.add_note(ids[0], "nice recovery", annotator="ana")
        store.add_correction(Correction(ids[4], assistant_indices(store, ids[4])[0],
                                        [call("getWeather", '{"city": "Paris"}', "c1")], "ana"))
        store.set_weight(ids[5], assistant_indices(store, ids[5])[0], 0, annotator="ana")
    return ids


def ben_reviews(path: Path) -> None:
    """ben works on the last eight (four overlap with ana), after her: he rejects, un-tags ana's tag (he sees
    the same message), fixes the call ana fixed and unmasks the message she masked."""
    later()
    with Store.open(path) as store:
        ids = store.trajectory_ids()
        for trajectory_id in ids[4:]:
            store.decide(trajectory_id, "reject", annotator="ben")
        store.decide(ids[5], "accept", annotator="ben")
        store.remove_tag(ids[2], "content_error", assistant_indices(store, ids[2])[0], annotator="ben")
        store.add_tag(ids[9], "other", None, annotator="ben", note="whole trajectory")
        store.add_note(ids[4], "ambiguous request", assistant_indices(store, ids[4])[0], annotator="ben")
        store.add_correction(Correction(ids[4], assistant_indices(store, ids[4])[0],
                                        [call("getWeather", '{"city": "Lyon"}', "c1")], "ben"))
        store.set_weight(ids[5], assistant_indices(store, ids[5])[0], 1, annotator="ben")


@pytest.fixture
def team(base, tmp_path) -> dict[str, Any]:
    ana, ben = copy_of(base, tmp_path / "ana.db"), copy_of(base, tmp_path / "ben.db")
    ids = ana_reviews(ana)
    ben_reviews(ben)
    return {"ana": ana, "ben": ben, "ids": ids, "dir": tmp_path}


def canonical(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every merged table's rows without row ids, sorted: an undo names the review it undoes by that review's
    natural key, a current decision leaves out its review id, an auto tag its flagging time."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'messages_fts%' "
            "AND name NOT LIKE 'sqlite_%'") if r[0] not in LOCAL]
        dump = {}
        for table in tables:
            rows = [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]
            if table == "reviews":
                keys: dict[int, tuple[Any, ...]] = {}
                for row in rows:
                    row["undoes"] = keys[row["undoes"]] if row["undoes"] else None
                    keys[row["id"]] = tuple((k, str(v)) for k, v in row.items() if k != "id")
            for row in rows:
                row.pop("id", None)
                row.pop("review_id", None)
                if table == "tags" and row["source"] == "auto":
                    row.pop("created_at")
            dump[table] = sorted(repr(sorted(row.items())) for row in rows)
        return dump
    finally:
        conn.close()


def merge(capsys, into: Path, *sources: Path) -> tuple[int, str, str]:
    return run_cli(capsys, "merge", *map(str, sources), "--into", str(into))


def count(path: Path, table: str, where: str = "1") -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]
    finally:
        conn.close()


def test_merging_in_either_order_and_twice_gives_the_same_store(team, capsys):
    one, other = team["dir"] / "one.db", team["dir"] / "other.db"
    code, out, err = merge(capsys, one, team["ana"], team["ben"])
    assert code == 0, err
    ana_line, ben_line, final = out.splitlines()
    assert ana_line.startswith(f"{team['ana']}: 12 new trajectories (0 already there), 11 reviews, 2 tags, 1 note, "
                               "1 correction, 1 mask mark")
    assert ben_line.startswith(f"{team['ben']}: 0 new trajectories (12 already there), 9 reviews, 2 tags, 1 note, "
                               "1 correction, 1 mask mark")
    assert merge(capsys, other, team["ben"], team["ana"])[0] == 0
    assert merge(capsys, other, team["ana"], team["ben"])[0] == 0  # twice: nothing more
    assert canonical(one) == canonical(other)
    for table, expected in (("reviews", 20), ("notes", 2), ("corrections", 2), ("weight_marks", 2)):
        assert count(one, table) == count(other, table) == expected
    assert count(other, "tags", "source = 'human'") == 4
    with Store.open(other) as store:
        disagreements = store.trajectory_ids(review="disagreements")
    assert final == (f"{one}: 12 trajectories, {len(disagreements)} with annotators who disagree "
                     "(review them with the disagreements filter)")
    assert len(disagreements) == 3  # ids 4, 6, 7: ana accepted, ben rejected (5: both accept in the end)


def test_the_merged_store_decides_by_every_annotator_and_the_latest_human_work(team, capsys):
    """What the team sees after merging, whichever store came first: ben's later un-tag, fix and unmask win."""
    ids = team["ids"]
    for name, order in (("ab.db", ("ana", "ben")), ("ba.db", ("ben", "ana"))):
        path = team["dir"] / name
        assert merge(capsys, path, *(team[who] for who in order))[0] == 0
        with Store.open(path) as store:
            assert store.decision(ids[0]) == "accept" and store.decision(ids[11]) == "reject"
            assert store.decision(ids[1]) == "reject"  # ana changed her mind
            assert store.decision(ids[4]) == "disputed" and store.disagreement(ids[4])
            assert store.decision(ids[5]) == "accept" and not store.disagreement(ids[5])
            assert store.decision(ids[6]) == "disputed"  # ana's undone reject left her accept standing
            first = assistant_indices(store, ids[2])[0]
            assert ("content_error", first) not in {(t.code, t.message_index) for t in store.effective_tags(ids[2])}
            assert [c.annotator for c in store.corrections(ids[4])] == ["ben"]
            fixed = store.messages(ids[5])[assistant_indices(store, ids[5])[0]]
            assert (fixed.weight, fixed.weight_source) == (1, "human")
            assert ("other", None) in {(t.code, t.message_index) for t in store.effective_tags(ids[9])}


@pytest.mark.parametrize("change", ["message", "instruction", "tools", "gold"])
def test_a_store_that_holds_something_else_under_the_same_name_is_refused_and_nothing_is_merged(
        base, team, capsys, change):
    other = copy_of(base, team["dir"] / "other.db")
    with Store.open(other) as store:
        trajectory_id = store.trajectory_ids()[3]
        if change == "message":
            store.conn.execute("UPDATE messages SET content = 'changed' WHERE trajectory_id = ? AND idx = 1",
                               (trajectory_id,))
        elif change == "instruction":
            store.conn.execute("UPDATE trajectories SET instruction = 'other' WHERE id = ?", (trajectory_id,))
        elif change == "tools":
            store.conn.execute("UPDATE tools SET description = 'other' WHERE position = 0")
        store.conn.commit()
    gold = [GoldItem("g1", "everyday", [], [{"role": "user", "content": "Weather?"}], [ToolCall("getWeather", {})])]
    with Store.open(team["ana"]) as store:
        store.add_gold(gold)
    with Store.open(other) as store:
        store.add_gold([GoldItem("g1", "everyday", [], gold[0].messages,
                                 [ToolCall("getWeather", {"city": "Oslo"} if change == "gold" else {})])])
    target = team["dir"] / "team.db"
    assert merge(capsys, target, team["ana"])[0] == 0
    before = snapshot(target)
    code, out, err = merge(capsys, target, team["ben"], other)
    assert code == 1 and out == ""
    what, difference = {"message": (f"trajectory {trajectory_id!r}", "message 1: content"),
                        "instruction": (f"trajectory {trajectory_id!r}", "its instruction"),
                        "tools": ("toolset 'everyday'", "its tools"), "gold": ("gold item 'g1'", "its calls")}[change]
    assert err == f"error: {what} differs between {other} and {target} ({difference}); nothing was merged\n"
    assert snapshot(target) == before  # ben's store, merged before the conflict, is not half in either


def test_a_failed_merge_into_a_new_store_leaves_no_file(team, capsys):
    target = team["dir"] / "new.db"
    code, _, err = merge(capsys, target, team["ana"], team["dir"] / "missing.db")
    assert code == 1 and err == f"error: {team['dir'] / 'missing.db'}: no such store\n"
    assert not target.exists()


def test_a_file_that_is_not_a_curator_store_is_one_line(team, capsys):
    text = team["dir"] / "notes.db"
    text.write_text("not a database, " * 500)
    other = team["dir"] / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.commit()
    conn.close()
    for path in (text, other):
        code, _, err = merge(capsys, team["dir"] / "team.db", path)
        assert code == 1 and err.startswith(f"error: {path}: not a curator store") and err.count("\n") == 1


def test_the_source_is_only_read(team, capsys):
    before = snapshot(team["ana"])
    with Store.open(team["ana"]) as open_in_the_app:  # ana still has it open
        assert merge(capsys, team["dir"] / "team.db", team["ana"])[0] == 0
        open_in_the_app.decide(team["ids"][0], "reject", annotator="ana")
    assert len(snapshot(team["ana"])["reviews"]) == len(before["reviews"]) + 1


def test_curator_import_of_a_store_merges_it(team, capsys):
    target = team["dir"] / "team.db"
    assert detect_format(team["ana"]) is None  # a SQLite file has no records to tell a format by
    code, out, err = run_cli(capsys, "--db", str(target), "import", str(team["ana"]))
    assert code == 0, err
    assert out.splitlines()[0] == (f"imported 12 new trajectories (0 already there), 11 reviews, 2 tags, 1 note, "
                                   f"1 correction, 1 mask mark, 1 toolset from {team['ana']} (sqlite) into {target}")
    assert run_cli(capsys, "--db", str(target), "import", str(team["ben"]))[0] == 0
    assert run_cli(capsys, "--db", str(target), "import", str(team["ana"]))[0] == 0
    merged = team["dir"] / "merged.db"
    assert merge(capsys, merged, team["ben"], team["ana"])[0] == 0
    assert canonical(target) == canonical(merged)


# -- assign ---------------------------------------------------------------------------------------------------
def shares(folder: Path) -> dict[str, list[str]]:
    found = {}
    for path in sorted(folder.glob("*.db")):
        with Store.open(path) as store:
            assert store.toolset_names() == ["everyday"]
            found[path.stem] = store.trajectory_ids()
            assert all(store.messages(i) for i in found[path.stem])
    return found


def test_assign_gives_each_pending_trajectory_to_overlap_annotators_in_near_equal_shares(base, tmp_path, capsys):
    db = copy_of(base, tmp_path / "curator.db")
    with Store.open(db) as store:
        decided = store.trajectory_ids()[0]
        store.decide(decided, "accept", annotator="lead")
        pending = store.trajectory_ids(review="pending")
    code, out, err = run_cli(capsys, "--db", str(db), "assign", "--annotators", "ana,ben,cy,dee,eve",
                             "--overlap", "2", "--seed", "7")
    assert code == 0, err
    got = shares(tmp_path / "assignments")
    assert sorted(got) == ["ana", "ben", "cy", "dee", "eve"]
    assert out.splitlines() == [f"{name}: {len(got[name])} trajectories in {tmp_path / 'assignments' / name}.db"
                                for name in ("ana", "ben", "cy", "dee", "eve")]
    seen = [i for ids in got.values() for i in ids]
    assert sorted(seen) == sorted(pending * 2) and decided not in seen  # 11 pending, each twice
    sizes = [len(ids) for ids in got.values()]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 22
    assert all(len(set(ids)) == len(ids) for ids in got.values())

    again = tmp_path / "again"
    assert run_cli(capsys, "--db", str(db), "assign", "--annotators", "ana,ben,cy,dee,eve", "--overlap", "2",
                   "--seed", "7", "--out", str(again))[0] == 0
    assert shares(again) == got
    other = tmp_path / "other"
    assert run_cli(capsys, "--db", str(db), "assign", "--annotators", "ana,ben,cy,dee,eve", "--overlap", "2",
                   "--seed", "8", "--out", str(other))[0] == 0
    assert shares(other) != got


def test_assigned_stores_come_back_with_a_merge(base, tmp_path, capsys):
    db = copy_of(base, tmp_path / "curator.db")
    assert run_cli(capsys, "--db", str(db), "assign", "--annotators", "ana,ben", "--overlap", "2")[0] == 0
    for name, decision in (("ana", "accept"), ("ben", "reject")):
        with Store.open(tmp_path / "assignments" / f"{name}.db") as store:
            store.decide(store.trajectory_ids()[0], decision, annotator=name)
    code, out, _ = run_cli(capsys, "--db", str(db), "merge", *(str(p) for p in (tmp_path / "assignments").glob("*.db")))
    assert code == 0 and out.splitlines()[-1].startswith(f"{db}: 12 trajectories, 1 with annotators who disagree")


@pytest.mark.parametrize("annotators, overlap, problem", [
    ("ana,ben", "3", "--overlap 3: must be between 1 and the number of annotators (2)"),
    ("ana,ben", "0", "--overlap 0: must be between 1 and the number of annotators (2)"),
    ("ana,,ben", "1", "--annotators 'ana,,ben': an empty name; give names separated by commas"),
    ("ana,ben,ana", "1", "--annotators: 'ana' is named twice"),
    ("ana,../ben", "1", "--annotators: '../ben' cannot be a file name; use letters, digits, '_', '-' and '.'"),
])
def test_bad_assignments_are_one_line_and_write_nothing(base, tmp_path, capsys, annotators, overlap, problem):
    db = copy_of(base, tmp_path / "curator.db")
    code, out, err = run_cli(capsys, "--db", str(db), "assign", "--annotators", annotators, "--overlap", overlap)
    assert (code, out, err) == (1, "", f"error: {problem}\n")
    assert not (tmp_path / "assignments").exists()


def test_assign_never_writes_over_an_annotators_store(base, tmp_path, capsys):
    db = copy_of(base, tmp_path / "curator.db")
    assert run_cli(capsys, "--db", str(db), "assign", "--annotators", "ana,ben")[0] == 0
    ana = tmp_path / "assignments" / "ana.db"
    with Store.open(ana) as store:
        store.decide(store.trajectory_ids()[0], "accept", annotator="ana")
    before = snapshot(ana)
    code, _, err = run_cli(capsys, "--db", str(db), "assign", "--annotators", "ana,ben")
    assert code == 1 and err.startswith(f"error: {ana}: already exists") and err.count("\n") == 1
    assert snapshot(ana) == before


def test_a_trajectory_still_being_written_is_left_for_a_later_merge(base, tmp_path, capsys):
    source = copy_of(base, tmp_path / "sim.db")
    with Store.open(source) as store:
        running = store.new_trajectory("everyday", "Still talking", status="running")
        code, out, err = merge(capsys, tmp_path / "team.db", source)
    assert code == 0, err
    assert out.startswith(f"{source}: 12 new trajectories (0 already there, 1 still running, left out)")
    with Store.open(tmp_path / "team.db") as team:
        assert not team.has_trajectory(running) and len(team.trajectory_ids()) == 12
