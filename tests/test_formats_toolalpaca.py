"""ToolAlpaca import on the real fixtures, and the OpenAPI → function-schema conversion it rests on."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from conftest import fixture_path
from data_helpers import run_cli, snapshot
from store import InputError, Store
from store.formats.importing import content_id
from store.formats.openapi import toolset_from_openapi
from store.formats.toolalpaca import import_toolalpaca, read_toolalpaca

EVAL = "toolalpaca/eval_simulated.json"
TRAIN = "toolalpaca/train_format_sample.json"
#: Three whole API records of ToolAlpaca's real evaluation set (tests/data/toolalpaca/SOURCE.md).
REAL = Path(__file__).parent / "data" / "toolalpaca" / "eval_real_sample.json"


def operations(record: dict) -> list[str]:
    spec = json.loads(record["Documentation"])
    return [op["operationId"] for item in spec["paths"].values() for op in item.values()]


@pytest.fixture(scope="module")
def eval_data():
    path = fixture_path(EVAL)
    imported = read_toolalpaca(path)
    return json.loads(path.read_text()), (list(imported.toolsets.values()), imported.trajectories, imported.gold)


def test_eval_set_gives_every_api_every_operation_and_every_golden_answer(eval_data, tmp_path):
    records, _ = eval_data
    with Store.open(tmp_path / "s.db") as store:
        summary = import_toolalpaca(store, fixture_path(EVAL))
        assert (summary.toolsets, summary.gold, summary.trajectories) == (10, 100, 0)
        assert store.toolset_names() == sorted(r["Name"] for r in records)
        for record in records:
            assert [t.name for t in store.toolset(record["Name"]).tools] == operations(record)
        assert summary.tools == sum(len(operations(r)) for r in records) == 54
        gold = list(store.gold_items())
        assert len(gold) == 100 and all(g.calls for g in gold)


def test_every_tool_is_a_valid_json_schema_object(eval_data):
    _, (toolsets, _, _) = eval_data
    for toolset in toolsets:
        for tool in toolset.tools:
            Draft202012Validator.check_schema(tool.parameters)
            assert tool.parameters["type"] == "object" and tool.description


def test_parameters_keep_required_enums_types_and_descriptions(eval_data):
    _, (toolsets, _, _) = eval_data
    tools = {t.name: t.parameters for ts in toolsets for t in ts.tools}
    search = tools["searchAxolotlImages"]["properties"]
    assert search["color"] == {"type": "string", "enum": ["wild", "leucistic", "albino"],
                               "description": "The color of the axolotl (e.g., 'wild', 'leucistic', 'albino', etc.)"}
    assert search["page"]["type"] == "integer"
    details = tools["getHolidaysByCountry"]  # a path parameter and query parameters
    assert details["required"][0] == "country" and "year" in details["properties"]
    auth = tools["authenticateUser"]  # a JSON request body with its own required list
    assert auth["required"] == ["provider", "email", "password"]
    assert auth["properties"]["provider"]["enum"] == ["google", "facebook", "twitter"]
    tracking = tools["synchronizeTracking"]  # path parameter and body properties merged
    assert set(tracking["properties"]) == {"animeId", "trackingService", "progress"}
    avatar = tools["generateAvatar"]  # query and body both define userId: one property, the query's
    assert list(avatar["properties"]) == ["userId", "style", "format"] and avatar["required"] == ["userId"]


def test_request_body_refs_are_resolved(eval_data):
    _, (toolsets, _, _) = eval_data
    superset = next(ts for ts in toolsets if ts.name == "Apache Superset")
    dashboard = next(t for t in superset.tools if t.name == "createDashboard").parameters
    assert set(dashboard["properties"]) == {"dashboardName", "description", "charts"}
    assert "$ref" not in json.dumps(superset.openai_tools())


def test_golden_answers_become_gold_items_with_the_instruction_as_context(eval_data):
    records, (_, _, gold) = eval_data
    first = gold[0]
    assert first.id == "toolalpaca:Axolotl:1" and first.toolset == "Axolotl"
    assert [m["role"] for m in first.messages] == ["system", "user"]
    assert first.messages[1]["content"] == records[0]["Instructions"][0]
    assert [(c.name, c.arguments) for c in first.calls] == [("getRandomAxolotlImage", {})]
    assert {g.source for g in gold} == {"toolalpaca"}
    several = gold[6]  # three acceptable calls
    assert [c.arguments["size"] for c in several.calls] == ["small", "medium", "large"]


def test_annotator_placeholders_become_strings(eval_data):
    _, (_, _, gold) = eval_data
    calls = {(g.id, c.name): c.arguments for g in gold for c in g.calls}
    assert calls[("toolalpaca:AniAPI:1", "getCastAndCrew")] == {"animeId": "${animeId from searchAnime}"}
    # a placeholder never closed before the next argument
    assert calls[("toolalpaca:Auth0:11", "getUserProfile")] == {
        "userId": "${userId from authenticateUser}", "accessToken": "${accessToken from authenticateUser}"}
    # a stray quote after the placeholder
    assert calls[("toolalpaca:AbuseIPDB:4", "searchReports")]["startDate"] == "${start date of a month}"


def test_training_instances_become_trajectories(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        summary = import_toolalpaca(store, fixture_path(TRAIN))
        assert (summary.toolsets, summary.trajectories, summary.gold) == (1, 3, 0)
        trajectories = list(store.iter_trajectories())
    assert {(t.status, t.source, t.toolset) for t in trajectories} == {("imported", "imported", "Axolotl")}
    recovery = trajectories[1]
    assert [m.role for m in recovery.messages] == ["system", "user", "assistant", "tool", "assistant", "tool",
                                                   "assistant"]
    system, user, first_call, error = recovery.messages[:4]
    assert "Axolotl" in system.content and user.content == recovery.instruction
    assert first_call.content == "I should search for wild, medium axolotl images."
    assert first_call.tool_calls == [{"id": "call_1", "type": "function", "function": {
        "name": "searchAxolotlImages", "arguments": '{"colour": "wild", "size": "medium"}'}}]
    assert error.tool_call_id == "call_1" and error.name == "searchAxolotlImages" and "400" in error.content
    assert recovery.messages[-1].content.startswith("I found 2 medium-sized")
    assert recovery.meta == {"final_thought": "The second search returned matching images."}


def test_reimport_replaces_toolsets_and_skips_trajectories(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        import_toolalpaca(store, fixture_path(TRAIN))
        ids = store.trajectory_ids()
        again = import_toolalpaca(store, fixture_path(TRAIN))
        assert (again.trajectories, again.skipped) == (0, 3)
        assert store.trajectory_ids() == ids


def _broken(tmp_path, edit) -> str:
    records = json.loads(fixture_path(EVAL).read_text())
    edit(records)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(records))
    return str(path)


def _set_doc(records, index, change):
    spec = json.loads(records[index]["Documentation"])
    change(spec)
    records[index]["Documentation"] = json.dumps(spec)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r[2].update(Documentation="not json {"),
     "record 3 (AbuseIPDB): Documentation is not valid JSON (line 1, column 1"),
    (lambda r: r[2].update(Documentation='"a string"'),
     "record 3 (AbuseIPDB): Documentation: not an OpenAPI spec: expected an object with 'paths', got string"),
    (lambda r: r[1].update(Documentation=json.dumps({"openapi": "3.0.0", "info": {}})),
     "record 2 (AniAPI): Documentation: not an OpenAPI spec: expected an object with 'paths', got an object"),
    (lambda r: r[4].update(Function_Projection={"createRole": "/createRole"}),
     "record 5 (Auth0): 'Function_Projection' must map each tool name to [path, method]"),
    (lambda r: _set_doc(r, 8, lambda s: s["components"]["schemas"].pop("EmbedDashboardRequest")),
     "record 9 (Apache Superset), POST /embedDashboard: Documentation: $ref "
     "'#/components/schemas/EmbedDashboardRequest' does not resolve"),
    (lambda r: r[0]["Golden_Answers"].pop(), "record 1 (Axolotl): 'Golden_Answers' must be an array with one entry"),
    (lambda r: r.append(r[0]), "record 11 (Axolotl): the API name 'Axolotl' appears twice"),
    (lambda r: r[3].pop("Name"), "record 4: has no 'Name'"),
])
def test_a_bad_record_names_it_and_writes_nothing(tmp_path, edit, message):
    path = _broken(tmp_path, edit)
    with Store.open(tmp_path / "s.db") as store:
        import_toolalpaca(store, fixture_path(TRAIN))
        before = snapshot(tmp_path / "s.db")
        with pytest.raises(InputError) as caught:
            import_toolalpaca(store, path)
        assert snapshot(tmp_path / "s.db") == before
    assert str(caught.value).startswith(f"{path}: {message}")


def test_invalid_json_names_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"Name": "x",\n   "Documentation" "{}"}\n]\n')
    with pytest.raises(InputError, match=r"bad.json:3: invalid JSON at column 20: Expecting ':' delimiter"):
        read_toolalpaca(path)


# -- the OpenAPI conversion on its own ---------------------------------------------------------------
def spec(paths: dict, **extra) -> dict:
    return {"openapi": "3.0.0", "info": {"title": "T", "description": "Test API"}, "paths": paths, **extra}


def test_recursive_schemas_stop_at_the_cycle():
    node = {"type": "object", "properties": {"name": {"type": "string"},
                                             "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}}}}
    doc = spec({"/tree": {"post": {"operationId": "plant", "requestBody": {"content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Node"}}}}}}}, components={"schemas": {"Node": node}})
    [tool] = toolset_from_openapi(doc, "trees", "t.json").tools
    children = tool.parameters["properties"]["children"]
    assert children["items"] == {"description": "recursive reference to #/components/schemas/Node"}
    Draft202012Validator.check_schema(tool.parameters)


def test_path_level_parameters_refs_and_swagger2_habits():
    doc = spec({"/items/{id}": {
        "parameters": [{"$ref": "#/components/parameters/Id"}, {"name": "lang", "in": "query", "type": "str"}],
        "get": {"operationId": "getItem", "summary": "Get one item",
                "parameters": [{"name": "lang", "in": "query", "schema": {"type": "string", "enum": ["en", "fr"]}},
                               {"name": "X-Trace", "in": "header", "schema": {"type": "string", "nullable": True}},
                               {"name": "when", "in": "query", "schema": {"type": "date"}}]},
        "put": {"operationId": "putItem", "parameters": [
            {"name": "item", "in": "body", "required": True, "schema": {"type": "array", "items": {"type": "int"}}}]},
    }}, components={"parameters": {"Id": {"name": "id", "in": "path", "schema": {"type": "integer"}}}})
    get, put = toolset_from_openapi(doc, "items", "t.json").tools
    assert get.description == "Get one item"
    assert get.parameters == {"type": "object", "properties": {
        "id": {"type": "integer"},
        "lang": {"type": "string", "enum": ["en", "fr"]},
        "X-Trace": {"type": ["string", "null"]},
        "when": {"type": "string", "format": "date"},
    }, "required": ["id"]}
    assert put.parameters == {"type": "object", "properties": {"id": {"type": "integer"}, "lang": {"type": "string"},
                                                               "body": {"type": "array", "items": {"type": "integer"}}},
                              "required": ["id", "body"]}


def test_required_true_on_a_property_is_lifted_and_all_of_is_merged():
    body = {"allOf": [{"type": "object", "properties": {"a": {"type": "string", "required": True}}},
                      {"type": "object", "properties": {"b": {"type": "number"}}, "required": ["b"]}]}
    doc = spec({"/x": {"post": {"operationId": "x", "requestBody": {"content": {"application/json": {
        "schema": body}}}}}})
    [tool] = toolset_from_openapi(doc, "x", "t.json").tools
    assert tool.parameters["properties"] == {"a": {"type": "string"}, "b": {"type": "number"}}
    assert tool.parameters["required"] == ["a", "b"]


@pytest.mark.parametrize("doc, message", [
    ([1, 2], "t.json: not an OpenAPI spec: expected an object with 'paths', got array"),
    (spec({}), "t.json: the OpenAPI spec has no operations under 'paths'"),
    (spec({"/a": {"get": {"operationId": "f"}}, "/b": {"post": {"operationId": "f"}}}),
     "t.json: POST /b: tool name 'f' is also used by GET /a"),
    (spec({"/a_b": {"get": {}}, "/a/b": {"get": {}}}), "t.json: GET /a/b: tool name 'a_b_get' is also used by GET /a_b"),
    (spec({"/a": {"get": {"operationId": "f", "parameters": [{"name": "q", "in": "query",
                                                               "schema": {"type": "wat"}}]}}}),
     "t.json: GET /a: parameter 'q': unknown type 'wat'"),
    (spec({"/a": {"get": {"operationId": "f", "parameters": [{"name": "q", "in": "nowhere"}]}}}),
     "t.json: GET /a: parameter 'q' has 'in': 'nowhere'"),
    (spec({"/a": {"get": {"operationId": "f", "parameters": [{"$ref": "other.yaml#/P"}]}}}),
     "t.json: GET /a: $ref 'other.yaml#/P' points outside the document"),
    (spec({"/a": {"get": {"operationId": "f", "parameters": [{"name": "q", "in": "query",
                                                               "schema": {"type": "string", "enum": "x"}}]}}}),
     "t.json: GET /a: parameters are not a valid JSON schema at 'properties/q/enum'"),
])
def test_openapi_problems_name_the_operation(doc, message):
    with pytest.raises(InputError) as caught:
        toolset_from_openapi(doc, "t", "t.json")
    assert str(caught.value).startswith(message)


# -- the real evaluation set: operations without operationId -----------------------------------------
def test_real_apis_without_operation_ids_import_with_toolalpacas_names(tmp_path):
    records = json.loads(REAL.read_text())
    with Store.open(tmp_path / "s.db") as store:
        summary = import_toolalpaca(store, REAL)
        assert (summary.toolsets, summary.tools, summary.gold) == (3, 7, 20)
        for record in records:  # each tool is named as Function_Projection names its operation
            tools = store.toolset(record["Name"]).tools
            assert {t.name: None for t in tools}.keys() == record["Function_Projection"].keys()
        jokes = {t.name: t for t in store.toolset("chucknorris.io").tools}
        assert jokes["jokes_search_get"].parameters == {"type": "object", "properties": {"query": {
            "type": "string", "description": "The search query for filtering jokes."}}, "required": ["query"]}
        assert jokes["jokes_random_category_get"].parameters["required"] == ["category"]  # a path parameter
        gold = list(store.gold_items())
        assert len(gold) == sum(len(r["Golden_Answers"]) for r in records) == 20
        for item in gold:  # every golden answer's tool exists in its toolset
            names = {t.name for t in store.toolset(item.toolset).tools}
            assert item.calls and all(c.name in names for c in item.calls) and item.source == "toolalpaca"
        facts = next(g for g in gold if g.id == "toolalpaca:Random Useless Facts:6")
        assert [(c.name, c.arguments) for c in facts.calls] == [("api_v2_facts_random_get", {})]


def test_without_a_projection_the_names_are_derived_as_toolalpaca_derives_them(tmp_path):
    records = json.loads(REAL.read_text())
    for record in records:
        record.pop("Function_Projection")
    path = tmp_path / "no_projection.json"
    path.write_text(json.dumps(records))
    imported = read_toolalpaca(path)
    assert [t.name for t in imported.toolsets["chucknorris.io"].tools] == [
        "jokes_random_get", "jokes_random_category_get", "jokes_categories_get", "jokes_search_get"]
    assert [t.name for t in imported.toolsets["airportsapi"].tools] == ["AirportApi_getAirport"]  # operationId


def test_a_projection_name_wins_over_the_derived_one_and_the_simulator_needs_none():
    doc = spec({"/jokes/random/{category}": {"get": {}}, "/jokes/search": {"get": {}}})
    named = toolset_from_openapi(doc, "t", "t.json", {"randomJoke": ["/jokes/random/{category}", "GET"]})
    assert [t.name for t in named.tools] == ["randomJoke", "jokes_search_get"]
    assert [t.name for t in toolset_from_openapi(doc, "t", "t.json").tools] == [
        "jokes_random_category_get", "jokes_search_get"]


def test_ids_are_the_content_digests_they_always_were():
    parts = ("Axolotl", "2", "Show me wild axolotls")
    assert content_id(*parts) == hashlib.sha1("\x00".join(parts).encode()).hexdigest()[:16]


def test_reimporting_the_real_sample_adds_nothing_and_the_cli_tells_its_format(tmp_path, capsys):
    db = tmp_path / "s.db"
    code, out, err = run_cli(capsys, "--db", str(db), "import", str(REAL))
    assert code == 0 and "(toolalpaca)" in out and "20 gold" in out, (out, err)
    with Store.open(db) as store:
        before = (store.toolset_names(), [g.id for g in store.gold_items()], store.trajectory_ids())
    code, out, _ = run_cli(capsys, "--db", str(db), "import", str(REAL))
    assert code == 0
    with Store.open(db) as store:  # toolsets and gold items are replaced by themselves, nothing is added
        assert (store.toolset_names(), [g.id for g in store.gold_items()], store.trajectory_ids()) == before
