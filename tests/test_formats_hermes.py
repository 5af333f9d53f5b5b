"""Hermes function-calling v1 import: the dataset card's real records (tests/data/hermes, see SOURCE.md), the
structured-extraction turns, parallel calls, detection (not ToolACE, not glaive, not curator's JSONL), the CLI,
and refusals that leave the store as it was."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_helpers import run_cli, snapshot
from store import Store
from store.formats import detect_format, glaive, hermes, jsonl, toolalpaca
from store.formats.hermes import import_hermes, parse_call, responses, split_calls, system_text
from store.formats.importing import Imported

DATA = Path(__file__).parent / "data" / "hermes"
CARD = DATA / "hermes-function-calling-v1-card.json"

# The card's "Structured extraction with function-calling" example: its system and gpt turns verbatim (the gpt
# turn wraps its call in a literal backslash-n and puts the name inside the arguments); its human turn, a long
# passage, cut to its opening words.
EXTRACTION_SYSTEM = (
    "You are an expert structured information extraction AI model. You will be provided with documents to extract "
    "information from. You are also provided with the json schema to output extracted information in the function "
    "signatures within XML tags <tools></tools>. Don't make assumptions about what values to plug into json schema. "
    "\n<tools>\n[{\"type\": \"function\", \"function\": {\"name\": \"ExpertQAExtractor\", \"description\": \"Extracts "
    "a list of questions that ask how a concept or information from the document can be applied to a real-world "
    "situation. These assess ability to apply knowledge.\", \"parameters\": {\"type\": \"object\", \"properties\": "
    "{\"application_questions\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}}}, \"required\": "
    "[\"application_questions\"]}}}]\n</tools>\nFor each extraction function call return a json object with function "
    "name and arguments followed by a <tool_call> tag with the following schema:\n<tool_call>\n{'arguments': "
    "<args-dict>, 'name': <function-name>}\n</tool_call>")
EXTRACTION_CALL = (
    "<tool_call>\\n{\"arguments\": {\"queries\": ['How can the concept of graph traversal be applied to real-world "
    "situations, such as project management workflows or social networks?', 'Can you think of any other real-world "
    "scenarios where understanding and effectively using spatial positioning in a graph would be important?', 'In "
    "what ways can the concept of marking nodes be useful in problem-solving or decision-making processes?'], "
    "\"name\": \"ExpertQAExtractor\"}}\\n</tool_call>")
EXTRACTION = {"id": "afba1f0c-3212-467d-8594-d72a06da4d05", "conversations": [
    {"from": "system", "value": EXTRACTION_SYSTEM},
    {"from": "human", "value": "Can you help me extract queries from the following passage <passage> : A directed "
                               "graph. </passage>"},
    {"from": "gpt", "value": EXTRACTION_CALL},
], "category": "Information Extraction", "subcategory": "Json Schema",
    "task": "Structured json schema extaction with function calling"}


def card() -> list[dict]:
    return json.loads(CARD.read_text())


def write_records(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps(records))
    return path


def test_card_records_become_trajectories_with_tools_calls_results_and_answers(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        summary = import_hermes(store, CARD)
        assert (summary.toolsets, summary.tools, summary.trajectories, summary.gold) == (1, 1, 2, 0)
        flights, movie = store.iter_trajectories()
        (tool,) = store.toolset(flights.toolset).tools
    # the tools were Python literals inside <tools>
    assert tool.name == "search_flights" and tool.parameters["required"][-1] == "class"
    assert tool.parameters["properties"]["class"]["enum"] == ["economy", "business", "first"]
    # the Hermes tool prompt is the toolset now: no system message is left of it
    assert [m.role for m in flights.messages] == ["user", "assistant", "tool", "assistant"]
    assert flights.instruction.startswith("I'm planning a kayaking trip")
    (call,) = flights.messages[1].tool_calls
    assert call["id"] == "call_1" and call["function"]["name"] == "search_flights"
    assert json.loads(call["function"]["arguments"]) == {
        "departure_city": "Los Angeles", "destination_city": "Auckland", "departure_date": "2023-07-10",
        "return_date": "2023-07-24", "class": "economy", "flexible_cancellation": True}
    result = flights.messages[2]
    assert (result.tool_call_id, result.name) == ("call_1", "search_flights")
    assert json.loads(result.content)["flights"][0]["flight_number"] == "AA118"  # the {"name", "content"} unwrapped
    assert flights.messages[3].content.startswith("Here are the available flight options")
    assert flights.meta == {"format": "hermes", "id": "753d8365-0e54-43b1-9514-3f9b819fd31c",
                            "category": "E-commerce Platforms", "subcategory": "Kayak", "task": "Flight Search"}
    # JSON mode: no tools, the system turn (with its <schema>) kept as it is, the JSON answer as content
    assert movie.toolset is None
    assert [m.role for m in movie.messages] == ["system", "user", "assistant"]
    assert "<schema>" in movie.messages[0].content and json.loads(movie.messages[2].content)["movieId"] == "INTSTL_2014"


def test_reimport_adds_nothing(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        import_hermes(store, CARD)
        again = import_hermes(store, CARD)
        assert (again.trajectories, again.skipped) == (0, 2)


def test_the_extraction_call_has_its_name_taken_out_of_its_arguments_and_is_flagged_for_them(tmp_path, capsys):
    path = write_records(tmp_path / "extraction.json", [EXTRACTION])
    db = str(tmp_path / "s.db")
    code, out, _ = run_cli(capsys, "--db", db, "import", str(path))
    assert code == 0 and "(hermes)" in out
    with Store.open(db) as store:
        (trajectory,) = store.iter_trajectories()
        (call,) = trajectory.messages[1].tool_calls
        assert call["function"]["name"] == "ExpertQAExtractor"
        assert list(json.loads(call["function"]["arguments"])) == ["queries"]
        assert trajectory.meta["repairs"] == ["message 1: the name of the call to ExpertQAExtractor was inside its "
                                              "arguments"]
        tags = {(t.message_index, t.code) for t in store.effective_tags(trajectory.id)}
        assert trajectory.messages[1].weight == 0
    # the queries do not fit the declared tool: that is what the call is flagged for
    assert tags == {(1, "param_hallucination"), (1, "param_missing")}


def test_parallel_calls_in_python_literals_and_answers_found_by_name():
    # a func-calling-singleturn system prompt and gpt turn as a public script quotes them (see SOURCE.md)
    system = (
        "You are a function calling AI model. You are provided with function signatures within <tools> </tools> XML "
        "tags. You may call one or more functions to assist with the user query. Don't make assumptions about what "
        "values to plug into functions.\n<tools>\n[{'type': 'function', 'function': {'name': 'getInventoryLevels', "
        "'description': 'Retrieves the current inventory levels for each store.', 'parameters': {'type': 'object', "
        "'properties': {'api_endpoint': {'type': 'string', 'description': 'The API endpoint to fetch inventory "
        "levels.'}}, 'required': ['api_endpoint']}}}, {'type': 'function', 'function': {'name': 'getOrderStatuses', "
        "'description': 'Fetches the status of orders including expected delivery dates.', 'parameters': {'type': "
        "'object', 'properties': {'api_endpoint': {'type': 'string', 'description': 'The API endpoint to fetch order "
        "statuses.'}}, 'required': ['api_endpoint']}}}, {'type': 'function', 'function': {'name': "
        "'getShipmentTracking', 'description': 'Provides real-time tracking information for shipments.', "
        "'parameters': {'type': 'object', 'properties': {'api_endpoint': {'type': 'string', 'description': 'The API "
        "endpoint to fetch shipment tracking details.'}}, 'required': ['api_endpoint']}}}]\n</tools>\nFor each "
        "function call return a json object with function name and arguments within <tool_call> </tool_call> tags "
        "with the following schema:\n<tool_call>\n{'arguments': <args-dict>, 'name': <function-name>}\n</tool_call>")
    calls = (
        "<tool_call>\n{'arguments': {'api_endpoint': 'https://api.retailcompany.com/inventory/levels'}, 'name': "
        "'getInventoryLevels'}\n</tool_call>\n<tool_call>\n{'arguments': {'api_endpoint': "
        "'https://api.retailcompany.com/orders/statuses'}, 'name': 'getOrderStatuses'}\n</tool_call>\n<tool_call>\n"
        "{'arguments': {'api_endpoint': 'https://api.retailcompany.com/shipments/tracking'}, 'name': "
        "'getShipmentTracking'}\n</tool_call>")
    # the answers, made up here, come back in another order in one tool turn
    answers = "".join(f'<tool_response>\n{{"name": "{name}", "content": {{"ok": "{name}"}}}}\n</tool_response>\n'
                      for name in ("getShipmentTracking", "getInventoryLevels", "getOrderStatuses"))
    record = {"conversations": [{"from": "system", "value": system}, {"from": "human", "value": "Pull it all."},
                                {"from": "gpt", "value": calls}, {"from": "tool", "value": answers}]}
    assert hermes.looks_like(record)
    imported = Imported()
    messages = hermes.trajectory_from_record(record, imported, "x").messages
    (toolset,) = imported.toolsets.values()
    assert [t.name for t in toolset.tools] == ["getInventoryLevels", "getOrderStatuses", "getShipmentTracking"]
    made = messages[1].tool_calls
    assert [(c["id"], c["function"]["name"]) for c in made] == [
        ("call_1", "getInventoryLevels"), ("call_2", "getOrderStatuses"), ("call_3", "getShipmentTracking")]
    assert json.loads(made[2]["function"]["arguments"]) == {
        "api_endpoint": "https://api.retailcompany.com/shipments/tracking"}
    assert [(m.tool_call_id, m.name, m.content) for m in messages[2:]] == [
        ("call_3", "getShipmentTracking", '{"ok": "getShipmentTracking"}'),
        ("call_1", "getInventoryLevels", '{"ok": "getInventoryLevels"}'),
        ("call_2", "getOrderStatuses", '{"ok": "getOrderStatuses"}')]


@pytest.mark.parametrize("body, expected", [
    # the card's form: a Python literal, True and all
    ("\n{'arguments': {'symbol': 'TSLA', 'all': True}, 'name': 'get_stock_fundamentals'}\n",
     ("get_stock_fundamentals", '{"symbol": "TSLA", "all": true}', False)),
    # the JSON form of later releases
    ('\n{"name": "search_flights", "arguments": {"class": "economy"}}\n',
     ("search_flights", '{"class": "economy"}', False)),
    # arguments as a JSON string
    ('{"name": "send_email", "arguments": "{\\"to\\": \\"bob@example.com\\"}"}',
     ("send_email", '{"to": "bob@example.com"}', False)),
])
def test_call_bodies_in_json_or_python_literals(body, expected):
    assert parse_call(body, set()) == expected


@pytest.mark.parametrize("body", [
    "{bad json}", "{'arguments': {}}", "{'name': 'f'}", "{'name': 'f', 'arguments': [1]}",
    "{'name': 'f', 'arguments': {'x': {1, 2}}}",  # a set is no JSON value
    "{'name': 'f', 'arguments': {'x': 1e999}}",  # nor infinity
    "{'name': 'f', 'arguments': {1: 'x'}}",  # nor a key that is not a string
    "__import__('os').system('true')",  # literals only: nothing is run
])
def test_call_bodies_that_cannot_be_read_are_none(body):
    assert parse_call(body, {"f"}) is None


def test_an_unreadable_call_keeps_its_turn_as_text_and_is_flagged_parse_error(tmp_path, capsys):
    record = card()[0]
    record["conversations"][2]["value"] = "Searching.\n<tool_call>\n{'arguments': {'departure_city': 'LA'}\n</tool_call>\n"
    path = write_records(tmp_path / "bad_call.json", [record])
    db = str(tmp_path / "s.db")
    assert run_cli(capsys, "--db", db, "import", str(path))[0] == 0
    with Store.open(db) as store:
        (trajectory,) = store.iter_trajectories()
        unread = trajectory.messages[1]
        assert unread.tool_calls is None and unread.raw == unread.content == record["conversations"][2]["value"]
        assert [(t.message_index, t.code) for t in store.effective_tags(trajectory.id)] == [(1, "parse_error")]
        assert trajectory.messages[2].tool_call_id is None and trajectory.messages[2].name == "search_flights"


def test_turn_parts():
    assert split_calls("Let me look.\n<tool_call>\n{}\n</tool_call>\nDone.") == ("Let me look.\n\nDone.", ["\n{}\n"])
    assert split_calls("<tool_call>{'name': 'f'") == (None, ["{'name': 'f'"])  # never closed: runs to the end
    assert responses('{"price": 150}') == [(None, '{"price": 150}')]  # no block: the turn is the answer
    # the Hermes-2-Pro prompt lists tools one after another inside <tools>
    system = ("You are a function calling AI model. Here are the available tools: <tools> {'type': 'function', "
              "'function': {'name': 'a', 'parameters': {}}} {'type': 'function', 'function': {'name': 'b'}} </tools> "
              "For each function call return ...:\n<tool_call>\n{'arguments': <args-dict>, 'name': "
              "<function-name>}\n</tool_call>\nAnswer in French.")
    assert system_text(system) == "Answer in French."
    names = [t.name for t in hermes._tools(hermes._tools_element(system).group(1), "x")]
    assert names == ["a", "b"]


def test_detection_tells_hermes_from_toolace_glaive_and_curator_lines():
    assert detect_format(CARD) == "hermes"
    flights, movie = card()
    assert hermes.looks_like(flights) and hermes.looks_like(movie) and hermes.looks_like(EXTRACTION)
    assert not any(f.looks_like(flights) for f in (glaive, jsonl, toolalpaca))
    toolace = {"system": "Here is a list of functions in JSON format that you can invoke:\n[{\"name\": \"f\"}]",
               "conversations": [{"from": "user", "value": "hi"}, {"from": "assistant", "value": "[f(x=1)]"},
                                 {"from": "tool", "value": "[{\"name\": \"f\", \"results\": {}}]"}]}
    assert not hermes.looks_like(toolace)
    # a system string beside the turns is ToolACE's (or LLaMA-Factory's), even with Hermes's roles
    assert not hermes.looks_like({**toolace, "conversations": flights["conversations"]})
    llamafactory = {"conversations": [{"from": "human", "value": "hi"}, {"from": "function_call", "value": "{}"}]}
    assert not hermes.looks_like(llamafactory)
    assert not hermes.looks_like({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]})
    assert not hermes.looks_like({"messages": [{"role": "user", "content": "hi"}]})


def test_the_cli_imports_a_hermes_file_and_says_what_it_imported(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    code, out, err = run_cli(capsys, "--db", db, "import", str(CARD))
    assert code == 0 and err == ""
    assert out.startswith(f"imported 1 toolset (1 tool), 2 trajectories from {CARD} (hermes) into {db}\n")


@pytest.mark.parametrize("record, problem", [
    ({"id": "x"}, "record 1: a Hermes record needs a non-empty 'conversations' array"),
    ({"conversations": [{"from": "user", "value": "hi"}]},
     "record 1: turn 0: 'from' must be one of system, human, gpt, tool, got 'user'"),
    ({"conversations": [{"from": "human", "value": 3}]}, "record 1: turn 0 must be an object with a 'value' string"),
    ({"conversations": [{"from": "system", "value": "<tools>\n[{'type': 'function', 'function': {'name': \n</tools>"},
                        {"from": "human", "value": "hi"}]},
     "record 1: the <tools> element is neither JSON nor Python literals"),
    ({"conversations": [{"from": "human", "value": "hi"}], "tools": '[{"type": "function", "function": {}}]'},
     "record 1: 'tools', tool 1 has no function name"),
])
def test_bad_input_is_one_line_naming_file_and_record_and_leaves_the_store_as_it_was(tmp_path, capsys, record,
                                                                                      problem):
    db = tmp_path / "s.db"
    assert run_cli(capsys, "--db", str(db), "import", str(CARD))[0] == 0
    before = snapshot(db)
    bad = write_records(tmp_path / "bad.json", [card()[1], record])
    code, out, err = run_cli(capsys, "--db", str(db), "import", str(bad), "--format", "hermes")
    assert code != 0 and out == ""
    assert err.startswith(f"error: {bad}") and problem.replace("record 1", "record 2") in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert snapshot(db) == before


def test_a_file_that_is_not_json_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"conversations": [}')
    code, _, err = run_cli(capsys, "--db", str(tmp_path / "s.db"), "import", str(bad), "--format", "hermes")
    assert code != 0 and err.startswith(f"error: {bad}:1: invalid JSON") and err.count("\n") == 1
