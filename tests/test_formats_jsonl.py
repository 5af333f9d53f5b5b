"""The canonical JSONL format: lossless round trip, re-import, foreign lines, and bad lines."""
from __future__ import annotations

import json

import pytest

from data_helpers import export_lines, read_line, rich_store, snapshot, weather_trajectory, write_jsonl
from store import InputError, Store
from store.formats import ExportSummary
from store.formats.jsonl import export_jsonl, import_jsonl, record_line


@pytest.fixture
def store(tmp_path):
    s = rich_store(tmp_path / "rich.db")
    yield s
    s.close()


def test_export_import_export_is_byte_for_byte_the_same(store, tmp_path):
    first = tmp_path / "first.jsonl"
    assert export_jsonl(store, first, "all") == ExportSummary(trajectories=4, examples=1)
    with Store.open(tmp_path / "copy.db") as copy:
        summary = import_jsonl(copy, first)
        assert (summary.trajectories, summary.toolsets, summary.skipped, summary.derived) == (4, 2, 0, 1)
        # w1's correction and note are rows again, as the annotator left them
        assert [(c.message_index, c.tool_calls, c.annotator, c.created_at) for c in copy.corrections()] == [
            (c.message_index, c.tool_calls, c.annotator, c.created_at) for c in store.corrections()]
        assert [n.to_json() for n in copy.notes("w1")] == [n.to_json() for n in store.notes("w1")] != []
        second = tmp_path / "second.jsonl"
        export_jsonl(copy, second, "all")
    assert second.read_bytes() == first.read_bytes()


def test_the_line_carries_weights_tags_decision_and_meta(store, tmp_path):
    out = tmp_path / "all.jsonl"
    export_jsonl(store, out, "all")
    records = {r["id"]: r for r in export_lines(out)}
    w1, w2 = records["w1"], records["w2"]
    assert set(w1) == {"id", "messages", "tools", "meta"}
    assert [m["weight"] for m in w1["messages"] if m["role"] == "assistant"] == [0, 1, 1]
    assert w2["messages"][4]["weight"] == 0 and w2["messages"][4]["weight_source"] == "human"
    assert w1["meta"]["tags"] == [{"message": 4, "code": "content_error", "source": "human", "note": "wrong city"}]
    assert w2["meta"]["tags"] == [{"message": None, "code": "other", "source": "human", "note": "whole trajectory"}]
    assert (w1["meta"]["decision"], w2["meta"]["decision"], records["w3"]["meta"]["decision"]) == (
        "accept", "accept", "reject")
    assert w1["meta"]["extra"] == {"seed": 7}
    assert [t["function"]["name"] for t in w1["tools"]] == ["getWeatherForecast", "getWeatherHistory"]
    assert records["t1"]["messages"][-1]["raw"] == "<raw model output>"


def test_export_filters_by_review_decision(store, tmp_path):
    counts = {status: export_jsonl(store, tmp_path / f"{status}.jsonl", status).trajectories
              for status in ("accepted", "rejected", "pending", "all")}
    assert counts == {"accepted": 2, "rejected": 1, "pending": 1, "all": 4}
    ids = [json.loads(line)["id"] for line in (tmp_path / "accepted.jsonl").read_text().splitlines()]
    assert ids == ["w1", "w1#correction-2", "w2"]


def test_record_line_with_the_tools_cache_is_json_dumps_with_tools_and_meta_as_text(store):
    def dumps(value):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    cache: dict = {}
    for record in store.iter_records("all"):
        as_text = {**record, "tools": dumps(record["tools"]), "meta": dumps(record["meta"])}
        assert record_line(record, cache) == record_line(record) == dumps(as_text) + "\n"
        assert read_line(record_line(record, cache)) == record
    assert len(cache) == 2  # one encoding per toolset


def test_importing_the_same_file_twice_skips_what_is_there(store, tmp_path):
    out = tmp_path / "all.jsonl"
    export_jsonl(store, out, "all")
    with Store.open(tmp_path / "copy.db") as copy:
        import_jsonl(copy, out)
        again = import_jsonl(copy, out)
        assert (again.trajectories, again.skipped, again.toolsets) == (0, 4, 0)
        assert len(copy.trajectory_ids()) == 4


def test_a_foreign_line_with_only_messages_imports_with_derived_ids(tmp_path):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    line = {"messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "tool_calls": [{"id": "1", "type": "function",
                                                               "function": {"name": "f", "arguments": {"a": 1}}}]}],
            "tools": tools}
    path = write_jsonl(tmp_path / "openai.jsonl", [line])
    with Store.open(tmp_path / "s.db") as store:
        assert import_jsonl(store, path).trajectories == 1
        [trajectory] = store.iter_trajectories()
        assert trajectory.status == "imported" and trajectory.instruction == "hi"
        assert trajectory.toolset.startswith("tools-") and store.toolset(trajectory.toolset).tools[0].name == "f"
        assert trajectory.messages[1].tool_calls[0]["function"]["arguments"] == '{"a": 1}'
        assert import_jsonl(store, path).skipped == 1  # the derived id is stable


FIX = {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
CALLED = {"id": "a", "messages": [
    {"role": "user", "content": "x"},
    {"role": "assistant", "tool_calls": [{**FIX, "function": {"name": "g", "arguments": "{}"}}]},
]}


@pytest.mark.parametrize("line, problem", [
    ("[1, 2]", "expected a JSON object, got array"),
    ('{"id": "a", "messages": [{"role": "user", "content": "x"}', "invalid JSON at column"),
    ({"id": "a"}, "'messages' is missing"),
    ({"id": "a", "messages": []}, "'messages' is empty"),
    ({"id": "a", "messages": [{"role": "robot"}]}, "message 0: message role must be one of"),
    ({"id": "a", "messages": [{"role": "assistant", "content": "x", "weight": 2}]}, "'weight' must be 0 or 1"),
    ({"id": "a", "messages": [{"role": "user", "content": "x"}], "meta": {"status": "done"}}, "meta.status"),
    ({"id": "a", "messages": [{"role": "user", "content": "x"}], "meta": {"tags": [{"code": "nope"}]}},
     "meta.tags[0]: unknown error code 'nope'"),
    ({"id": "a", "messages": [{"role": "user", "content": "x"}], "meta": {"tags": [{"code": "other", "message": 5}]}},
     "meta.tags[0]: 'message' must be null or a message index below 1"),
    ({"id": "a", "messages": [{"role": "assistant", "tool_calls": [{"function": "f"}]}]}, "message 0, tool call 0"),
    ({**CALLED, "meta": {"corrections": {}}}, "'meta.corrections' must be an array, got object"),
    ({**CALLED, "meta": {"corrections": [{"message": 0, "tool_calls": [FIX]}]}},
     "meta.corrections[0]: message 0 is a user message, not the assistant's"),
    ({**CALLED, "meta": {"corrections": [{"message": 1}]}}, "'meta.corrections[0].tool_calls' is missing"),
    ({**CALLED, "meta": {"corrections": [{"message": 1, "tool_calls": [{"function": 1}]}]}},
     "meta.corrections[0], tool call 0: expected"),
    ({**CALLED, "meta": {"corrections": [{"message": 1, "tool_calls": [FIX], "original": [FIX]}]}},
     "meta.corrections[0]: 'original' is not message 1's tool_calls"),
    ({**CALLED, "meta": {"corrections": [{"message": 1, "tool_calls": [FIX]}, {"message": 1, "tool_calls": [FIX]}]}},
     "meta.corrections[1]: message 1 is corrected twice"),
    ({**CALLED, "meta": {"corrections": [{"message": 1, "tool_calls": [FIX], "annotator": 7}]}},
     "'meta.corrections[0].annotator' must be a string, got number"),
    ({**CALLED, "meta": {"notes": [{"message": 0}]}}, "'meta.notes[0].text' is missing"),
    ({**CALLED, "meta": {"notes": [{"text": "x", "message": 2}]}},
     "meta.notes[0]: 'message' must be null or a message index below 2, got 2"),
])
def test_a_bad_line_names_the_file_and_line_and_writes_nothing(store, tmp_path, line, problem):
    good = read_line(record_line(next(store.iter_records("all"))))
    good["id"] = "new-one"
    path = write_jsonl(tmp_path / "bad.jsonl", [good, "", line])
    before = snapshot(tmp_path / "rich.db")
    with pytest.raises(InputError) as caught:
        import_jsonl(store, path)
    assert str(caught.value).startswith(f"{path}:3: ")
    assert problem in str(caught.value)
    assert snapshot(tmp_path / "rich.db") == before


def test_a_bad_line_after_thousands_of_good_ones_still_writes_nothing(tmp_path):
    lines = [read_line(record_line({"id": f"t{i}", "messages": [{"role": "user", "content": str(i)}]}))
             for i in range(1200)]
    path = write_jsonl(tmp_path / "big.jsonl", [*lines, "42"])
    with Store.open(tmp_path / "s.db") as store:
        before = snapshot(tmp_path / "s.db")
        with pytest.raises(InputError, match=r"big.jsonl:1201: expected a JSON object, got number"):
            import_jsonl(store, path)
        assert snapshot(tmp_path / "s.db") == before


def test_a_repeated_id_in_one_file_is_an_error(tmp_path):
    line = {"id": "same", "messages": [{"role": "user", "content": "x"}]}
    path = write_jsonl(tmp_path / "dup.jsonl", [line, line])
    with Store.open(tmp_path / "s.db") as store, pytest.raises(InputError, match="dup.jsonl:2: id 'same' was "
                                                                               "already used on line 1"):
        import_jsonl(store, path)


def test_a_toolset_redefined_with_other_tools_is_an_error(store, tmp_path):
    record = read_line(record_line(next(store.iter_records("all"))))
    record["id"] = "w9"
    record["tools"] = record["tools"][:1]
    path = write_jsonl(tmp_path / "conflict.jsonl", [record])
    with pytest.raises(InputError, match="conflict.jsonl:1: the tools of toolset 'weather' differ"):
        import_jsonl(store, path)


def test_missing_file_and_non_utf8_are_input_errors(tmp_path):
    (tmp_path / "latin1.jsonl").write_bytes('{"x": "caf\xe9"}\n'.encode("latin-1"))
    with Store.open(tmp_path / "s.db") as store:
        with pytest.raises(InputError, match="nope.jsonl: no such file"):
            import_jsonl(store, tmp_path / "nope.jsonl")
        with pytest.raises(InputError, match="latin1.jsonl: not UTF-8 text"):
            import_jsonl(store, tmp_path / "latin1.jsonl")


def test_an_exported_trajectory_keeps_its_insertion_order(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        store.insert_trajectories([weather_trajectory(f"z{i}", "Paris") for i in (3, 1, 2)])
        out = tmp_path / "o.jsonl"
        export_jsonl(store, out, "all")
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["z3", "z1", "z2"]


def test_a_byte_order_mark_and_windows_line_ends_are_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "a", "messages": [{"role": "user", "content": "hi"}]}\r\n')
    with Store.open(tmp_path / "s.db") as store:
        assert import_jsonl(store, path).trajectories == 1
