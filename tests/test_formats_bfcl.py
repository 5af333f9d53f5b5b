"""BFCL import on real question and possible-answer files from the gorilla repository (tests/data/bfcl/SOURCE.md)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from data_helpers import assert_gold_fits_its_toolsets, run_cli, snapshot
from store import InputError, Store
from store.formats import detect_format
from store.formats.bfcl import MAX_CALLS, _acceptable_calls, category, import_bfcl, read_bfcl
from store.formats.schema_types import bfcl_schema

DATA = Path(__file__).parent / "data" / "bfcl"
SIMPLE = DATA / "BFCL_v3_simple.json"
PARALLEL = DATA / "BFCL_v3_parallel_multiple.json"
IRRELEVANCE = DATA / "BFCL_v3_irrelevance.json"


def gold(path: Path) -> dict:
    return {g.id: g for g in read_bfcl(path).gold}


def test_simple_items_become_gold_items_only(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        summary = import_bfcl(store, SIMPLE)
        assert (summary.toolsets, summary.tools, summary.trajectories, summary.gold) == (6, 6, 0, 6)
        assert store.trajectory_ids() == []
        items = {g.id: g for g in store.gold_items()}
    assert list(items) == [f"bfcl:simple_{n}" for n in (0, 2, 13, 94, 96, 109)]
    first = items["bfcl:simple_0"]
    assert first.source == "bfcl"
    assert first.messages == [{"role": "user", "content": "Find the area of a triangle with a base of 10 units "
                                                           "and height of 5 units."}]
    # "unit": ["units", ""]: with the value, and without the parameter
    assert [(c.name, c.arguments) for c in first.calls] == [
        ("calculate_triangle_area", {"base": 10, "height": 5, "unit": "units"}),
        ("calculate_triangle_area", {"base": 10, "height": 5})]


def test_acceptable_values_expand_to_every_combination_nested_objects_too():
    items = gold(SIMPLE)
    curve = items["bfcl:simple_13"].calls  # 3 functions x (omitted, "trapezoidal")
    assert len(curve) == 6 and curve[0].arguments == {"function": "x**2", "interval": [1.0, 3.0]}
    assert {c.arguments["function"] for c in curve} == {"x**2", "lambda x: x**2", "y=x**2"}
    update = items["bfcl:simple_94"].calls  # a nested object's keys hold alternatives too
    assert update[0].arguments["update_info"] == {"name": "John Doe", "email": "johndoe@email.com"}
    [query] = items["bfcl:simple_96"].calls  # a list of such objects, element by element
    assert query.arguments["conditions"] == [{"field": "age", "operation": ">", "value": "25"},
                                             {"field": "job", "operation": "=", "value": "engineer"}]


def test_parallel_multiple_acceptable_calls_are_the_union_of_the_ground_truth_entries():
    items = gold(PARALLEL)
    assert [(c.name, c.arguments) for c in items["bfcl:parallel_multiple_5"].calls] == [
        ("gcd", {"num1": 96, "num2": 128}), ("lcm", {"num1": 15, "num2": 25})]
    rectangle = items["bfcl:parallel_multiple_3"].calls  # "tolerance": [""] means always left out
    assert [c.arguments.get("property") for c in rectangle] == ["width", "length", "length"]
    assert rectangle[0].arguments == {"perimeter": 14, "area": 15, "property": "width"}
    assert rectangle[2].arguments["tolerance"] == 0.1


def test_every_gold_call_is_in_its_toolset_fits_it_and_judges_correct_against_itself(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        import_bfcl(store, SIMPLE)
        import_bfcl(store, PARALLEL)
        assert assert_gold_fits_its_toolsets(store) == 10


def test_types_become_json_schema():
    tools = {t.name: t.parameters for ts in read_bfcl(SIMPLE).toolsets.values() for t in ts.tools}
    tools |= {t.name: t.parameters for ts in read_bfcl(PARALLEL).toolsets.values() for t in ts.tools}
    for schema in tools.values():
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object"
    assert tools["calculate_area_under_curve"]["properties"]["interval"]["items"] == {"type": "number"}
    update = tools["update_user_info"]["properties"]["update_info"]  # "dict" with properties of its own
    assert update["type"] == "object" and update["properties"]["email"]["type"] == "string"
    assert tools["database.query"]["properties"]["conditions"]["items"]["type"] == "object"
    assert tools["random_forest.train"]["properties"]["data"] == {"description": "The training data for the model."}
    assert tools["area_circle.calculate"]["properties"]["radius"]["type"] == "number"  # "float"
    assert tools["calculate_triangle_area"]["required"] == ["base", "height"]


def test_type_name_variants():
    assert bfcl_schema({"type": "dict", "properties": {
        "a": {"type": "String"}, "b": {"type": "Boolean"}, "c": {"type": "tuple", "items": {"type": "float"}},
        "d": {"type": "any"}, "e": {"type": "HashMap"}}}) == {"type": "object", "properties": {
        "a": {"type": "string"}, "b": {"type": "boolean"}, "c": {"type": "array", "items": {"type": "number"}},
        "d": {}, "e": {"type": "object"}}}


def test_a_wide_answer_is_capped():
    wide = [{"f": {f"p{i}": [1, 2, ""] for i in range(8)}}]  # 3**8 combinations
    calls = _acceptable_calls(("pa.json", 1, wide), "simple_0")
    assert len(calls) == MAX_CALLS and calls[0].arguments == {f"p{i}": 1 for i in range(8)}


def test_categories_without_possible_answers_are_skipped_and_counted(tmp_path, capsys):
    assert category("irrelevance_0") == "irrelevance" and category("live_multiple_3-1-0") == "live_multiple"
    imported = read_bfcl(IRRELEVANCE)  # no possible_answer/BFCL_v3_irrelevance.json exists, by design
    assert (imported.gold, imported.toolsets, imported.unanswered) == ([], {}, 2)
    code, out, _ = run_cli(capsys, "--db", str(tmp_path / "s.db"), "import", str(IRRELEVANCE))
    assert code == 0 and "(2 BFCL items without possible answers skipped)" in out


def test_possible_answers_are_found_beside_the_parent_folder_too(tmp_path):
    questions = tmp_path / "data" / "questions"
    questions.mkdir(parents=True)
    shutil.copy(SIMPLE, questions / SIMPLE.name)
    shutil.copytree(DATA / "possible_answer", tmp_path / "data" / "possible_answer")
    assert len(read_bfcl(questions / SIMPLE.name).gold) == 6


def test_a_missing_possible_answer_file_imports_nothing_and_names_where_it_looked(tmp_path, capsys):
    lonely = tmp_path / SIMPLE.name
    shutil.copy(SIMPLE, lonely)
    db = tmp_path / "s.db"
    assert run_cli(capsys, "--db", str(db), "import", str(PARALLEL))[0] == 0
    before = snapshot(db)
    code, out, err = run_cli(capsys, "--db", str(db), "import", str(lonely))
    [line] = err.strip().splitlines()
    assert code != 0 and "Traceback" not in out + err
    assert f"{lonely}: no possible answers, nothing imported: looked for " \
           f"{tmp_path / 'possible_answer' / SIMPLE.name} and " in line
    assert snapshot(db) == before


def test_reimport_adds_nothing(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        import_bfcl(store, SIMPLE)
        names, ids = store.toolset_names(), [g.id for g in store.gold_items()]
        import_bfcl(store, SIMPLE)
        assert (store.toolset_names(), [g.id for g in store.gold_items()]) == (names, ids)


def test_detection_and_the_cli_summary(tmp_path, capsys):
    assert detect_format(SIMPLE) == detect_format(PARALLEL) == "bfcl"
    code, out, _ = run_cli(capsys, "--db", str(tmp_path / "s.db"), "import", str(PARALLEL))
    assert code == 0
    assert f"imported 4 toolsets (10 tools), 0 trajectories, 4 gold items from {PARALLEL} (bfcl)" in out


def _copy(tmp_path: Path, question_edit=None, answer_edit=None) -> Path:
    """The simple files copied with the first record of each edited (a dict change or a replacement line)."""
    (tmp_path / "possible_answer").mkdir()
    for source, target, edit in ((SIMPLE, tmp_path / SIMPLE.name, question_edit),
                                 (DATA / "possible_answer" / SIMPLE.name, tmp_path / "possible_answer" / SIMPLE.name,
                                  answer_edit)):
        lines = source.read_text().splitlines()
        if edit is not None:
            lines[0] = edit if isinstance(edit, str) else json.dumps({**json.loads(lines[0]), **edit})
        target.write_text("\n".join(lines) + "\n")
    return tmp_path / SIMPLE.name


@pytest.mark.parametrize("question, answer, where, message", [
    ({"function": "calc"}, None, "q", "simple_0: 'function' must be a non-empty array, got string"),
    ({"question": [[{"role": "user"}]]}, None, "q", "simple_0: question, message 0: expected {'role', 'content'}"),
    ({"id": None}, None, "q", "'id' must be a non-empty string, got null"),
    ('{"id": "simple_0", "question": [[', None, "q", "invalid JSON at column"),
    (None, {"ground_truth": [["calculate_triangle_area(base=10)"]]}, "a",
     "simple_0: ground_truth[0] must be one {function: {param: [values]}}, got array"),
    (None, {"ground_truth": [{"calculate_triangle_area": {"base": 10}}]}, "a",
     "simple_0: ground_truth[0] (calculate_triangle_area): every parameter needs a list of acceptable values"),
])
def test_bad_input_is_one_line_naming_file_line_and_field_and_writes_nothing(tmp_path, capsys, question, answer,
                                                                            where, message):
    path = _copy(tmp_path, question, answer)
    named = path if where == "q" else tmp_path / "possible_answer" / SIMPLE.name
    db = tmp_path / "s.db"
    assert run_cli(capsys, "--db", str(db), "import", str(PARALLEL))[0] == 0
    before = snapshot(db)
    code, out, err = run_cli(capsys, "--db", str(db), "import", str(path), "--format", "bfcl")
    [line] = err.strip().splitlines()
    assert code != 0 and "Traceback" not in out + err
    assert f"{named}:1: {message}" in line
    assert snapshot(db) == before
    with pytest.raises(InputError):
        read_bfcl(path)
