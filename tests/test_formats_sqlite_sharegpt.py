"""SQLite export (a curated store of the selected trajectories), ShareGPT export, atomic writes."""
from __future__ import annotations

import json
import sqlite3

import pytest

from data_helpers import rich_store
from store import CuratorError, Store
from store.formats import ExportSummary
from store.formats import sqlite as sqlite_format
from store.formats.files import atomic_output
from store.formats.jsonl import export_jsonl
from store.formats.sharegpt import export_sharegpt, sharegpt_record
from store.formats.sqlite import export_sqlite


@pytest.fixture
def store(tmp_path):
    s = rich_store(tmp_path / "rich.db")
    yield s
    s.close()


def count(path, sql: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def test_sqlite_export_holds_only_the_accepted_trajectories_and_their_work(store, tmp_path):
    out = tmp_path / "curated.db"
    assert export_sqlite(store, out) == ExportSummary(2)
    assert count(out, "PRAGMA journal_mode") == "delete"  # one self-contained file
    with Store.open(out, create=False) as curated:
        assert curated.trajectory_ids() == ["w1", "w2"]
        assert curated.toolset_names() == ["weather"]
        assert [t.name for t in curated.toolset("weather").tools] == ["getWeatherForecast", "getWeatherHistory"]
        assert [g.id for g in curated.gold_items()] == ["g-weather"]
        assert curated.notes("w1")[0].text == "nice recovery"
        assert curated.corrections("w1")[0].message_index == 2
        assert curated.decision("w2") == "accept"
        assert curated.search("sunny") == ["w1", "w2"]  # the full-text index came along
    # the whole history, not only the current state: w2's reject and its undo, w1's auto tag and its un-tag
    assert count(out, "SELECT count(*) FROM reviews") == 4
    assert count(out, "SELECT count(*) FROM tags") == 4
    # tables the store derives by trigger (the current decision) are rebuilt from the copied history
    assert count(out, "SELECT group_concat(d) FROM (SELECT trajectory_id || ':' || decision AS d FROM review_state "
                      "ORDER BY trajectory_id)") == "w1:accept,w2:accept"


def test_the_curated_store_exports_the_same_jsonl_as_the_original(store, tmp_path):
    export_sqlite(store, tmp_path / "curated.db")
    export_jsonl(store, tmp_path / "original.jsonl", "accepted")
    with Store.open(tmp_path / "curated.db", create=False) as curated:
        export_jsonl(curated, tmp_path / "curated.jsonl", "all")
    assert (tmp_path / "curated.jsonl").read_bytes() == (tmp_path / "original.jsonl").read_bytes()


def test_sqlite_export_of_nothing_is_an_empty_store(store, tmp_path):
    store.decide("w3", "skip")
    assert export_sqlite(store, tmp_path / "skipped.db", "skipped").trajectories == 1
    with Store.open(tmp_path / "none.db") as empty:
        assert export_sqlite(empty, tmp_path / "empty.db", "all").trajectories == 0
    assert count(tmp_path / "empty.db", "SELECT count(*) FROM trajectories") == 0


def test_a_failed_sqlite_export_leaves_nothing_and_keeps_the_old_file(store, tmp_path, monkeypatch):
    out = tmp_path / "curated.db"
    out.write_text("previous export")
    monkeypatch.setattr(sqlite_format, "TABLES", (*sqlite_format.TABLES, ("no_such_table", "1")))
    with pytest.raises(sqlite3.OperationalError):
        export_sqlite(store, out)
    assert out.read_text() == "previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["curated.db", "rich.db", "rich.db-wal",
                                                                 "rich.db-shm"])
    monkeypatch.undo()
    assert export_sqlite(store, out).trajectories == 2  # the store's connection is usable again (nothing left attached)


def test_atomic_output_names_the_path_it_cannot_write(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(CuratorError, match=r"file/out.jsonl: cannot write: Not a directory"):
        with atomic_output(tmp_path / "file" / "out.jsonl"):
            pass
    with pytest.raises(CuratorError, match=r": is a directory"):
        with atomic_output(tmp_path):
            pass


def test_sharegpt_roles_tools_and_system(store, tmp_path):
    out = tmp_path / "sharegpt.jsonl"
    assert export_sharegpt(store, out, "all") == ExportSummary(4)  # no derived lines
    first = json.loads(out.read_text().splitlines()[0])
    assert first["system"] == "You have weather tools."
    assert [t["from"] for t in first["conversations"]] == ["human", "function_call", "observation", "function_call",
                                                           "observation", "gpt"]
    # w1's first call as the annotator corrected it ("town" → "city"), not as the model made it
    assert json.loads(first["conversations"][1]["value"]) == {"name": "getWeatherForecast",
                                                              "arguments": {"city": "Paris"}}
    assert first["conversations"][-1]["value"] == "It is 21 degrees in Paris — sunny ☀."
    tools = json.loads(first["tools"])
    assert [t["name"] for t in tools] == ["getWeatherForecast", "getWeatherHistory"] and "parameters" in tools[0]


def test_sharegpt_parallel_calls_share_one_observation_and_odd_arguments_stay_text():
    record = {"tools": [], "messages": [
        {"role": "user", "content": "Paris and Oslo?"},
        {"role": "assistant", "content": "thinking", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"city": "Paris"}'}},
            {"id": "b", "type": "function", "function": {"name": "f", "arguments": "not json"}}]},
        {"role": "tool", "content": "21", "tool_call_id": "a"},
        {"role": "tool", "content": "12", "tool_call_id": "b"},
        {"role": "assistant", "content": "21 and 12."},
    ]}
    example = sharegpt_record(record)
    assert example["system"] == "" and example["tools"] == ""
    call, observation, answer = example["conversations"][1:]
    assert json.loads(call["value"]) == [{"name": "f", "arguments": {"city": "Paris"}},
                                         {"name": "f", "arguments": "not json"}]
    assert json.loads(observation["value"]) == ["21", "12"] and answer == {"from": "gpt", "value": "21 and 12."}
