"""ToolACE import on a real published record (tests/data/toolace/SOURCE.md), and its refusals."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from data_helpers import run_cli, snapshot, write_jsonl
from store import InputError, Store
from store.formats import detect_format
from store.formats.toolace import UnreadableCall, import_toolace, looks_like, parse_calls, read_toolace

REAL = Path(__file__).parent / "data" / "toolace" / "data_sample.json"


@pytest.fixture(scope="module")
def record() -> dict:
    return json.loads(REAL.read_text())[0]


def write(tmp_path: Path, records: list, name: str = "edited.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(records))
    return path


def test_the_real_record_imports_with_its_tools_calls_results_and_answers(tmp_path, record):
    with Store.open(tmp_path / "s.db") as store:
        summary = import_toolace(store, REAL)
        assert (summary.toolsets, summary.tools, summary.trajectories, summary.gold) == (1, 4, 1, 0)
        [trajectory] = store.iter_trajectories()
        tools = {t.name: t for t in store.toolset(trajectory.toolset).tools}
    assert list(tools) == ["GetCompetitions", "Get Manager Placeholder Image", "Search Competition API",
                           "Get Category Image"]
    assert tools["Get Category Image"].parameters == {"type": "object", "properties": {"slug": {
        "description": "Slug of the sport or league, e.g. `france` `champions-league` `intl`.", "type": "string",
        "default": "france"}}, "required": ["slug"]}  # "type": "dict" became "object"
    for tool in tools.values():
        Draft202012Validator.check_schema(tool.parameters)
    messages = trajectory.messages
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "assistant", "user", "assistant",
                                          "user", "assistant", "tool", "assistant"]
    assert messages[0].content == record["system"]  # the format's prompt, as it is
    assert trajectory.instruction == messages[1].content == record["conversations"][0]["value"]
    assert (trajectory.status, trajectory.source, trajectory.meta) == ("imported", "imported", {"format": "toolace"})
    assert messages[2].content is None and messages[2].tool_calls == [
        {"id": "call_1", "type": "function", "function": {"name": "GetCompetitions", "arguments": "{}"}}]
    assert messages[3].tool_call_id == "call_1" and messages[3].name == "GetCompetitions"
    assert json.loads(messages[3].content)["competitions"][2]["name"] == "Liga 1 Peru"
    call = messages[8].tool_calls[0]  # a tool name with spaces, a keyword argument
    assert (call["id"], call["function"]["name"], json.loads(call["function"]["arguments"])) == (
        "call_2", "Get Manager Placeholder Image", {"sport": "football"})
    assert messages[9].tool_call_id == "call_2" and json.loads(messages[9].content)["sport_name"] == "football"
    assert messages[4].content.startswith("Here are the football competitions")  # answers between turns
    assert messages[10].content.startswith("Here is the manager placeholder image")


def test_parallel_calls_are_one_message_and_results_match_them_by_order(tmp_path, record):
    edited = copy.deepcopy(record)  # the real record, its second call turn made two parallel calls
    edited["conversations"][7]["value"] = ('[Get Manager Placeholder Image(sport="football"), '
                                           'Search Competition API(name="Liga 1")]')
    edited["conversations"][8]["value"] = json.dumps([
        {"name": "Get Manager Placeholder Image", "results": {"image": "x.png"}},
        {"name": "Search Competition API", "results": {"competitions": []}}])
    [trajectory] = read_toolace(write(tmp_path, [edited])).trajectories
    calls = trajectory.messages[8].tool_calls
    assert [(c["id"], c["function"]["name"]) for c in calls] == [
        ("call_2", "Get Manager Placeholder Image"), ("call_3", "Search Competition API")]
    results = trajectory.messages[9:11]
    assert [(m.role, m.tool_call_id, m.name) for m in results] == [
        ("tool", "call_2", "Get Manager Placeholder Image"), ("tool", "call_3", "Search Competition API")]


def test_call_syntax_names_with_dots_and_literal_values():
    calls = parse_calls('[weather.get(city="Oslo", days=3, hourly=True), Get Data(tags=["a", "b"], '
                        'box={"w": 1.5, "h": None}), GetCompetitions()]', ["Get Data", "GetCompetitions"])
    assert calls == [("weather.get", {"city": "Oslo", "days": 3, "hourly": True}),
                     ("Get Data", {"tags": ["a", "b"], "box": {"w": 1.5, "h": None}}), ("GetCompetitions", {})]
    assert parse_calls("[1, 2]", []) is None  # a bracketed answer is text
    assert parse_calls("Here are the results.", []) is None


@pytest.mark.parametrize("raw, schema", [
    ({"type": "dict", "properties": {"n": {"type": "int, optional"}}}, {"n": {"type": "integer"}}),
    ({"type": "dict", "properties": {"xs": {"type": "List[int]"}}}, {"xs": {"type": "array", "items": {
        "type": "integer"}}}),
    ({"type": "dict", "properties": {"p": {"type": "tuple"}, "f": {"type": "float"}}},
     {"p": {"type": "array"}, "f": {"type": "number"}}),
    ({"type": "dict", "properties": {"v": {"type": "any"}, "m": {"type": "Dict[str, Any]"}}},
     {"v": {"x-toolace-type": "any"}, "m": {"type": "object"}}),
])
def test_python_type_names_become_json_schema(tmp_path, record, raw, schema):
    edited = copy.deepcopy(record)
    tools = [{"name": "f", "description": "d", "parameters": raw}]
    head = edited["system"].split("[{")[0]
    edited["system"] = head + json.dumps(tools) + ". \nShould you decide to return the function call(s)."
    edited["conversations"] = edited["conversations"][:1]  # its calls name tools this list no longer has
    [tool] = read_toolace(write(tmp_path, [edited])).toolsets.popitem()[1].tools
    assert tool.parameters == {"type": "object", "properties": schema}
    Draft202012Validator.check_schema(tool.parameters)


def test_reimport_adds_nothing(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        import_toolace(store, REAL)
        before = snapshot(tmp_path / "s.db")
        again = import_toolace(store, REAL)
        assert (again.trajectories, again.skipped) == (0, 1)
        assert snapshot(tmp_path / "s.db") == before


def test_detection_tells_toolace_from_the_other_formats(tmp_path, record):
    assert detect_format(REAL) == "toolace"
    assert detect_format(write_jsonl(tmp_path / "t.jsonl", [record])) == "toolace"
    hermes = {"conversations": [{"from": "system", "value": "tools"}, {"from": "human", "value": "hi"},
                                {"from": "gpt", "value": "<tool_call>{}</tool_call>"}]}
    assert not looks_like(hermes) and not looks_like({**hermes, "system": "x"})
    assert not looks_like({"Name": "x", "Documentation": "{}"})
    assert not looks_like({"messages": [{"role": "user", "content": "hi"}]})


def test_curator_import_detects_the_format_and_prints_the_summary(tmp_path, capsys):
    code, out, err = run_cli(capsys, "--db", str(tmp_path / "s.db"), "import", str(REAL))
    assert code == 0, err
    assert "imported 1 toolset (4 tools), 1 trajectory" in out and "(toolace)" in out


def test_a_call_breaking_its_schema_is_imported_and_auto_tagged(tmp_path, capsys, record):
    edited = copy.deepcopy(record)
    edited["conversations"][7]["value"] = '[Get Manager Placeholder Image(colour="red")]'  # no sport, bad name
    db = tmp_path / "s.db"
    code, _, err = run_cli(capsys, "--db", str(db), "import", str(write(tmp_path, [edited])), "--format", "toolace")
    assert code == 0, err
    with Store.open(db) as store:
        [trajectory] = store.iter_trajectories()
        tags = store.effective_tags(trajectory.id)
    assert any(t.source == "auto" and t.message_index == 8 for t in tags)


def _set(index: int, value):
    def edit(records):
        records[0]["conversations"][index]["value"] = value
    return edit


BAD = {
    "not JSON": (None, ":1: invalid JSON at column 36"),
    "conversations not an array": (lambda r: r[0].update(conversations="hi"),
                                   ": record 1: 'conversations' must be a non-empty array"),
    "system missing": (lambda r: r[0].pop("system"), ": record 1: 'system' must be a string, got null"),
    "no tool list": (lambda r: r[0].update(system="You are helpful."), ": record 1: 'system' has no tool list"),
    "turn without value": (lambda r: r[0]["conversations"][1].pop("value"),
                           ": record 1, message 2: 'value' must be a string, got null"),
    "tool turn not JSON": (_set(8, "image: x.png"), ": record 1, message 9: the tool turn is not JSON"),
    "more results than calls": (_set(2, json.dumps([{"name": "GetCompetitions", "results": {}}] * 2)),
                                ": record 1, message 3: the tool turn has 2 results for 1 calls"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_naming_file_record_and_field_and_writes_nothing(tmp_path, capsys, record, case):
    edit, message = BAD[case]
    if edit is None:
        path = tmp_path / "edited.json"
        path.write_text('[{"system": "x", "conversations": [}]')
    else:
        records = [copy.deepcopy(record)]
        edit(records)
        path = write(tmp_path, records)
    db = tmp_path / "s.db"
    assert run_cli(capsys, "--db", str(db), "import", str(REAL))[0] == 0
    before = snapshot(db)
    code, out, err = run_cli(capsys, "--db", str(db), "import", str(path), "--format", "toolace")
    assert code != 0 and out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and f"{path}{message}" in err, err
    assert snapshot(db) == before
    with pytest.raises(InputError):
        read_toolace(path)


@pytest.mark.parametrize("call, why", [
    ('[Get Manager Placeholder Image(sport="football"]', "the call list is not Python call syntax"),
    ("[Get Manager Placeholder Image(sport=football)]",
     "argument 'sport' of 'Get Manager Placeholder Image' is not a literal (football)"),
    ('[Get Manager Placeholder Image("football")]', "'Get Manager Placeholder Image' has a positional argument"),
])
def test_a_call_list_nobody_can_read_is_kept_as_text_and_flagged_not_refused(tmp_path, capsys, record, call, why):
    """Published files hold some; refusing would refuse the whole file. The turn is kept as raw text, its
    tool answers keep no call id, and the flagger gives it parse_error (weight 0)."""
    with pytest.raises(UnreadableCall, match=re.escape(why)):
        parse_calls(call, ["Get Manager Placeholder Image"])
    records = [copy.deepcopy(record)]
    _set(7, call)(records)
    db = str(tmp_path / "s.db")
    assert run_cli(capsys, "--db", db, "import", str(write(tmp_path, records)))[0] == 0
    with Store.open(db) as store:
        [trajectory] = store.iter_trajectories()
        turn, answer = trajectory.messages[8], trajectory.messages[9]
        assert (turn.role, turn.content, turn.raw, turn.tool_calls) == ("assistant", call, call, None)
        assert answer.role == "tool" and answer.tool_call_id is None
        assert any(t.code == "parse_error" and t.message_index == 8 for t in store.effective_tags(trajectory.id))
        assert trajectory.messages[8].weight == 0
