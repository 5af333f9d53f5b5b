"""The store: schema, migrations, append-only review state, tags, weights, runs."""
from __future__ import annotations

import multiprocessing
import sqlite3
import time

import pytest

from store import Correction, GoldItem, Message, Store, StoreError, Tool, Toolset, Trajectory
from store.schema import SCHEMA_VERSION
from store.toolcalls import ToolCall

WEATHER = Toolset(
    "weather",
    [
        Tool("getWeatherForecast", "Forecast", {"type": "object", "properties": {"city": {"type": "string"}},
                                                "required": ["city"]}),
        Tool("getWeatherHistory", "History", {"type": "object", "properties": {"city": {"type": "string"}}}),
    ],
    description="Weather",
)


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "t.db")
    s.add_toolset(WEATHER)
    yield s
    s.close()


def call(name: str, arguments: str, id: str = "c1") -> dict:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


def simple_trajectory(store: Store, instruction: str = "Weather in Paris?") -> str:
    tid = store.new_trajectory("weather", instruction)
    store.append_message(tid, Message("user", instruction))
    store.append_message(tid, Message("assistant", None, tool_calls=[call("getWeatherForecast", '{"town": "Paris"}')]))
    store.append_message(tid, Message("tool", '{"error": "unknown parameter town"}', tool_call_id="c1"))
    store.append_message(tid, Message("assistant", None, tool_calls=[call("getWeatherForecast", '{"city": "Paris"}',
                                                                          "c2")]))
    store.append_message(tid, Message("tool", '{"temp": 21}', tool_call_id="c2"))
    store.append_message(tid, Message("assistant", "It will be 21 degrees in Paris."))
    store.set_status(tid, "complete")
    return tid


def test_new_store_is_wal_at_current_schema(tmp_path):
    path = tmp_path / "new.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    Store.open(path).close()  # reopening migrates nothing and keeps working


def test_store_from_a_newer_curator_is_refused(tmp_path):
    path = tmp_path / "future.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this curator"):
        Store.open(path)


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not a database\n" * 100)
    with pytest.raises(StoreError, match="notes.txt: not a curator store"):
        Store.open(path)


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(tmp_path / "nope" / "t.db")


def _open_and_write(path: str, n: int) -> None:
    s = Store.open(path)
    for i in range(n):
        tid = s.new_trajectory(None, f"from process {i}")
        s.append_message(tid, Message("user", "hi"))
    s.close()


def test_processes_creating_and_writing_one_store_at_once(tmp_path):
    path = str(tmp_path / "shared.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open_and_write, args=(path, 20)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = Store.open(path)
    assert len(s.trajectory_ids()) == 60
    assert s.conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 60


def test_toolset_round_trip_and_replace(store):
    assert store.toolset("weather").openai_tools()[0]["function"]["name"] == "getWeatherForecast"
    store.add_toolset(Toolset("weather", [Tool("getWeatherAlerts")]))
    assert [t.name for t in store.toolset("weather").tools] == ["getWeatherAlerts"]
    assert store.toolset("missing") is None


def test_messages_are_appended_in_order_with_weights(store):
    tid = simple_trajectory(store)
    t = store.trajectory(tid)
    assert [m.role for m in t.messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert [m.index for m in t.messages] == list(range(6))
    assert [m.weight for m in t.messages if m.role == "assistant"] == [1, 1, 1]
    assert t.status == "complete"


def test_failed_transaction_leaves_nothing(store):
    before = store.conn.execute("SELECT count(*) FROM trajectories").fetchone()[0]
    bad = Trajectory("x1", "weather", "i", status="imported", messages=[Message("user", "a")])
    with pytest.raises(sqlite3.IntegrityError):
        store.insert_trajectories([bad, Trajectory("x1", "weather", "dup", status="imported")])
    assert store.conn.execute("SELECT count(*) FROM trajectories").fetchone()[0] == before
    assert store.conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0


def test_decisions_are_append_only_and_undo_restores_the_previous_one(store):
    tid = simple_trajectory(store)
    first = store.decide(tid, "reject")
    second = store.decide(tid, "accept")
    assert store.decision(tid) == "accept"
    store.undo(second)
    assert store.decision(tid) == "reject"
    store.undo(first)
    assert store.decision(tid) is None
    assert store.conn.execute("SELECT count(*) FROM reviews").fetchone()[0] == 4


def test_review_filters(store):
    accepted, rejected, pending = (simple_trajectory(store, f"q{i}") for i in range(3))
    store.decide(accepted, "accept")
    store.decide(rejected, "reject")
    assert store.trajectory_ids(review="accepted") == [accepted]
    assert store.trajectory_ids(review="rejected") == [rejected]
    assert store.trajectory_ids(review="pending") == [pending]
    assert len(store.trajectory_ids(review="all")) == 3
    with pytest.raises(ValueError, match="review filter"):
        store.trajectory_ids(review="maybe")


def test_human_untag_wins_over_auto_and_survives_reflagging(store):
    tid = simple_trajectory(store)
    store.replace_auto_tags(tid, [(1, "param_hallucination", None), (1, "tool_call_failure", None)])
    store.remove_tag(tid, "tool_call_failure", 1, annotator="ann")
    store.add_tag(tid, "answer_unsupported", 5, annotator="ann", note="no source")
    store.replace_auto_tags(tid, [(1, "param_hallucination", None), (1, "tool_call_failure", None)])
    tags = {(t.message_index, t.code, t.source) for t in store.effective_tags(tid)}
    assert tags == {(1, "param_hallucination", "auto"), (5, "answer_unsupported", "human")}
    store.add_tag(tid, "tool_call_failure", 1)  # re-tagging by hand brings it back
    assert (1, "tool_call_failure", "human") in {(t.message_index, t.code, t.source)
                                                  for t in store.effective_tags(tid)}


def test_unknown_tag_code_is_refused(store):
    tid = simple_trajectory(store)
    with pytest.raises(ValueError, match="unknown error code 'typo'"):
        store.add_tag(tid, "typo", 1)


def test_auto_weights_never_override_a_human_mask_toggle(store):
    tid = simple_trajectory(store)
    store.set_weight(tid, 3, 0, source="human")
    store.set_auto_weights(tid, {1: 0, 3: 1})
    weights = {m.index: m.weight for m in store.messages(tid) if m.role == "assistant"}
    assert weights == {1: 0, 3: 0, 5: 1}


def test_records_carry_weights_tags_and_decision(store):
    tid = simple_trajectory(store)
    store.replace_auto_tags(tid, [(1, "param_hallucination", None)])
    store.set_auto_weights(tid, {1: 0})
    store.decide(tid, "accept")
    (record,) = store.iter_records("accepted")
    assert record["id"] == tid
    assert [m.get("weight") for m in record["messages"] if m["role"] == "assistant"] == [0, 1, 1]
    assert record["meta"]["decision"] == "accept"
    assert record["meta"]["tags"] == [{"message": 1, "code": "param_hallucination", "source": "auto"}]
    assert record["tools"][0]["function"]["name"] == "getWeatherForecast"


def test_full_text_search_finds_content_and_tool_names(store):
    paris = simple_trajectory(store, "Weather in Paris?")
    tid = store.new_trajectory("weather", "Rome")
    store.append_message(tid, Message("user", "What happened in Rome last week?"))
    store.append_message(tid, Message("assistant", None, tool_calls=[call("getWeatherHistory", "{}")]))
    assert store.search("Paris") == [paris]
    assert store.search("getWeatherHistory") == [tid]
    assert store.search('unbalanced "quote') == []


def test_latest_correction_per_message(store):
    tid = simple_trajectory(store)
    store.add_correction(Correction(tid, 1, [call("getWeatherForecast", '{"city": "Pariss"}')]))
    store.add_correction(Correction(tid, 1, [call("getWeatherForecast", '{"city": "Paris"}')]))
    (latest,) = store.corrections(tid)
    assert latest.tool_calls[0]["function"]["arguments"] == '{"city": "Paris"}'


def test_gold_items_come_back_with_their_toolset(store):
    store.add_gold([GoldItem("g1", "weather", [], [{"role": "user", "content": "Paris?"}],
                             [ToolCall("getWeatherForecast", {"city": "Paris"})])])
    (item,) = store.gold_items()
    assert item.calls == [ToolCall("getWeatherForecast", {"city": "Paris"})]
    assert [t["function"]["name"] for t in item.tools] == ["getWeatherForecast", "getWeatherHistory"]


def test_runs_and_metrics(store):
    rid = store.create_run("train", "sft", "tiny", {"epochs": 1}, output_dir="out")
    store.update_run(rid, status="running", pid=123)
    for step, loss in enumerate([3.0, 2.5, 2.0]):
        store.add_run_metrics(rid, step, {"loss": loss, "learning_rate": 1e-4})
    store.update_run(rid, status="completed", summary={"final_loss": 2.0})
    run = store.run(rid)
    assert (run.status, run.pid, run.summary) == ("completed", 123, {"final_loss": 2.0})
    assert store.run_metrics(rid, "loss") == [(0, 3.0), (1, 2.5), (2, 2.0)]
    with pytest.raises(ValueError, match="run status"):
        store.update_run(rid, status="exploded")
    with pytest.raises(ValueError, match="unknown run field"):
        store.update_run(rid, api_key="sk-secret")


def test_nested_transaction_rolls_back_only_the_inner_part(store):
    with store.transaction():
        store.new_trajectory("weather", "kept")
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.new_trajectory("weather", "dropped")
                raise RuntimeError("inner failure")
    assert [t.instruction for t in store.iter_trajectories()] == ["kept"]


def test_data_version_moves_only_when_another_connection_commits(store):
    before = store.data_version()
    store.new_trajectory("weather", "our own write")
    assert store.data_version() == before  # our own commits do not count
    with Store.open(store.path) as other:
        other.new_trajectory("weather", "theirs")
    assert store.data_version() != before


def test_emptiness_status_and_the_latest_running_trajectory(store):
    assert store.is_empty() and store.latest_running() is None
    done = simple_trajectory(store)
    first, second = store.new_trajectory("weather", "first"), store.new_trajectory("weather", "second")
    time.sleep(0.01)  # timestamps are in milliseconds
    store.append_message(first, Message("user", "first grows last"))
    assert not store.is_empty()
    assert (store.trajectory_status(done), store.trajectory_status(first), store.trajectory_status("nope")) == (
        "complete", "running", None)
    assert store.latest_running() == first
    store.set_status(first, "failed", "cancelled")
    assert store.latest_running() == second


def test_activity_and_backend_counts(store):
    from store.stats import activity, backend_counts, status_counts

    flagged = simple_trajectory(store)
    store.replace_auto_tags(flagged, [(1, "param_hallucination", None), (2, "tool_call_failure", None)])
    store.new_trajectory("weather", "by a model", backend="openai")
    store.new_trajectory("weather", "imported", status="imported", source="imported")
    counts = activity(store)
    assert counts.by_status == status_counts(store) == {"complete": 1, "imported": 1, "running": 1}
    assert (counts.status("failed"), counts.finished, counts.flagged, counts.last_message) == (0, 1, 1, 6)
    assert backend_counts(store) == {"openai": 1}


def test_a_snapshot_made_self_contained_is_one_file(store, tmp_path):
    simple_trajectory(store)
    store.make_self_contained()
    store.close()
    assert not (tmp_path / "t.db-wal").exists()
    conn = sqlite3.connect(tmp_path / "t.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 6
    conn.close()


def test_sqlite_utils_view_of_the_same_store(store):
    simple_trajectory(store)
    assert store.db["messages"].count == 6
    assert [r["role"] for r in store.db["messages"].rows_where("idx < 2", order_by="idx")] == ["user", "assistant"]


def test_opening_the_cli_does_not_load_heavy_libraries():
    import subprocess
    import sys

    code = "import curator.cli, sys; print(sorted(m for m in ('torch', 'pandas', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
