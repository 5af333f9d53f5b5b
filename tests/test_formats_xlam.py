"""xLAM / APIGen import on real published records (tests/data/xlam/SOURCE.md)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from data_helpers import assert_gold_fits_its_toolsets, run_cli, snapshot
from store import InputError, Store
from store.formats import detect_format
from store.formats.schema_types import python_type
from store.formats.xlam import import_xlam, read_xlam

DATA = Path(__file__).parent / "data" / "xlam" / "xlam_examples.json"


def records() -> list[dict]:
    return json.loads(DATA.read_text())


def test_records_become_trajectories_with_parallel_calls_and_gold_items(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        summary = import_xlam(store, DATA)
        assert (summary.toolsets, summary.tools, summary.trajectories, summary.gold) == (2, 3, 2, 2)
        split, giveaways = list(store.iter_trajectories())
        gold = {g.id: g for g in store.gold_items()}
    # one user message (no system prompt: the records have none), one assistant message with every answer
    assert [m.role for m in split.messages] == ["user", "assistant"]
    assert split.instruction == split.messages[0].content == records()[0]["query"]
    assert split.meta == {"format": "xlam", "xlam_id": 1234, "origin": "xLAM"}
    assert [c["function"]["name"] for c in split.messages[1].tool_calls] == ["split_list", "binary_search"]
    assert json.loads(split.messages[1].tool_calls[1]["function"]["arguments"]) == {
        "arr": [10, 20, 30, 40, 50, 60], "target": 30}
    assert [c["id"] for c in giveaways.messages[1].tool_calls] == ["call_1", "call_2"]
    assert giveaways.meta == {"format": "xlam"}  # the quoted record has no id
    item = gold["xlam:1234"]
    assert item.source == "xlam" and item.toolset == split.toolset
    assert item.messages == [{"role": "user", "content": split.instruction}]
    assert [(c.name, c.arguments) for c in item.calls] == [
        ("split_list", {"lst": [10, 20, 30, 40, 50, 60], "chunk_size": 4}),
        ("binary_search", {"arr": [10, 20, 30, 40, 50, 60], "target": 30})]


def test_every_gold_call_is_in_its_toolset_fits_it_and_judges_correct_against_itself(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        import_xlam(store, DATA)
        assert assert_gold_fits_its_toolsets(store) == 2


def test_parameters_become_json_schema_with_required_from_optional_and_default():
    tools = {t.name: t.parameters for ts in read_xlam(DATA).toolsets.values() for t in ts.tools}
    for schema in tools.values():
        Draft202012Validator.check_schema(schema)
    assert tools["binary_search"] == {"type": "object", "properties": {
        "arr": {"type": "array", "items": {"type": "integer"}, "description": "The sorted list of integers."},
        "target": {"type": "integer", "description": "The target value to search for."}},
        "required": ["arr", "target"]}
    assert tools["split_list"]["properties"]["lst"]["type"] == "array"
    giveaways = tools["live_giveaways_by_type"]  # a default makes it optional
    assert giveaways["properties"]["type"] == {
        "type": "string", "description": "The type of giveaways to retrieve (e.g., game, loot, beta).",
        "default": "game"}
    assert giveaways["required"] == []


@pytest.mark.parametrize("name, schema, optional", [
    ("str", {"type": "string"}, False),
    ("float", {"type": "number"}, False),
    ("bool", {"type": "boolean"}, False),
    ("List[int]", {"type": "array", "items": {"type": "integer"}}, False),
    ("Dict[str, Any]", {"type": "object"}, False),
    ("Dict[str, int]", {"type": "object", "additionalProperties": {"type": "integer"}}, False),
    ("str, optional", {"type": "string"}, True),
    ("int, default=5", {"type": "integer"}, True),
    ("Optional[List[str]]", {"type": "array", "items": {"type": "string"}}, True),
    ("Union[int, float]", {"type": ["integer", "number"]}, False),
    ("callable", {}, False),
])
def test_python_type_names(name, schema, optional):
    assert python_type(name) == (schema, optional)


def test_reimport_adds_nothing(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        import_xlam(store, DATA)
        before = snapshot(tmp_path / "s.db")
        again = import_xlam(store, DATA)
        assert (again.trajectories, again.skipped) == (0, 2)
        after = snapshot(tmp_path / "s.db")
    # gold items are replaced (same ids, new timestamps): compare everything but their rows' times
    assert {k: v for k, v in after.items() if k != "gold_calls"} == {k: v for k, v in before.items()
                                                                     if k != "gold_calls"}
    assert [r[0] for r in after["gold_calls"]] == [r[0] for r in before["gold_calls"]]


def test_lists_instead_of_json_strings_and_jsonl_import_too(tmp_path):
    lines = [{**r, "tools": json.loads(r["tools"]), "answers": json.loads(r["answers"])} for r in records()]
    path = tmp_path / "x.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    imported = read_xlam(path)
    assert [len(t.messages[1].tool_calls) for t in imported.trajectories] == [2, 2]
    assert [g.id for g in imported.gold] == [g.id for g in read_xlam(DATA).gold]


def test_detection_and_the_cli_summary(tmp_path, capsys):
    assert detect_format(DATA) == "xlam"
    db = str(tmp_path / "s.db")
    code, out, _ = run_cli(capsys, "--db", db, "import", str(DATA))
    assert code == 0
    assert f"imported 2 toolsets (3 tools), 2 trajectories, 2 gold items from {DATA} (xlam)" in out


def test_a_call_breaking_its_schema_is_imported_and_auto_flagged(tmp_path, capsys):
    broken = records()[:1]
    answers = json.loads(broken[0]["answers"])
    answers[1]["arguments"]["target"] = "thirty"  # an integer parameter given a string
    broken[0]["answers"] = json.dumps(answers)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    db = tmp_path / "s.db"
    assert run_cli(capsys, "--db", str(db), "import", str(path))[0] == 0
    with Store.open(db) as store:
        [tid] = store.trajectory_ids()
        assert "param_invalid" in {t.code for t in store.effective_tags(tid) if t.source == "auto"}
        assert json.loads(store.trajectory(tid).messages[1].tool_calls[1]["function"]["arguments"])["target"] == \
            "thirty"


def _edit(index: int, **changes) -> list[dict]:
    data = records()
    data[index].update(changes)
    return data


@pytest.mark.parametrize("data, message", [
    (_edit(1, tools='{"name": "x"}'), "record 2: 'tools' must be an array, got object"),
    (_edit(0, answers='[{"name": "split_list", "arguments": {"lst": [1,}}]'),
     "record 1: 'answers' is not JSON (column 49: Expecting value)"),
    (_edit(0, answers=json.dumps([{"name": "split_list", "arguments": "{lst: 1}"}])),
     "record 1: answers[0] (split_list): 'arguments' is not JSON (column 2: Expecting property name"),
    ({k: v for k, v in records()[1].items() if k != "answers"}, "record 1: has no 'answers'"),
    (_edit(1, query=None), "record 2: 'query' must be a non-empty string, got null"),
    (_edit(0, tools=json.dumps([{"name": "a", "parameters": {"p": "str"}}])),
     "record 1: tools[0] (a): parameter 'p' must be an object, got string"),
    (_edit(0, answers=json.dumps([{"arguments": {}}])), "record 1: answers[0]: an answer needs a 'name' string"),
])
def test_bad_input_is_one_line_naming_file_record_and_field_and_writes_nothing(tmp_path, capsys, data, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([data] if isinstance(data, dict) else data))
    db = tmp_path / "s.db"
    assert run_cli(capsys, "--db", str(db), "import", str(DATA))[0] == 0
    before = snapshot(db)
    code, out, err = run_cli(capsys, "--db", str(db), "import", str(path), "--format", "xlam")
    assert code != 0 and "Traceback" not in out + err
    [line] = err.strip().splitlines()
    assert f"{path}: {message}" in line
    assert snapshot(db) == before


def test_not_json_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"query": "q", "tools": "[]", "answers": "[]"}\n{"query": \n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: invalid JSON at column 11"):
        read_xlam(path)
