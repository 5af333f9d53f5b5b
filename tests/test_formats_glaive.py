"""Glaive function-calling v2 import: real rows (tests/data/glaive, see SOURCE.md), the call syntax's quirks,
detection, the CLI, and refusals that leave the store as it was."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_helpers import run_cli, snapshot
from store import Store
from store.formats import detect_format, glaive, hermes, jsonl, toolalpaca
from store.formats.glaive import import_glaive, parse_call, split_system, turns
from store.formats.importing import Imported

DATA = Path(__file__).parent / "data" / "glaive"
ROWS = DATA / "glaive-function-calling-v2-rows.json"
LEAD_IN = glaive.LEAD_INS[0]


def rows() -> list[dict]:
    return json.loads(ROWS.read_text())


def write_rows(path: Path, records: list[dict]) -> Path:
    path.write_text(json.dumps(records))
    return path


def with_call(call: str, response: str = '{"language": "French"}') -> dict:
    """Row 25475 with its <functioncall> body replaced (to test a call the real row does not hold)."""
    row = rows()[0]
    real = '{"name": "detect_language", "arguments": \'{"text": "Je suis un étudiant"}\'}'
    assert real in row["chat"]
    row["chat"] = row["chat"].replace(real, call).replace('{"language": "French"}', response)
    return row


def test_real_rows_become_trajectories_with_their_calls_answers_and_prose(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        summary = import_glaive(store, ROWS)
        assert (summary.toolsets, summary.tools, summary.trajectories, summary.gold) == (1, 1, 2, 0)
        language, occupation = store.iter_trajectories()
        toolset = store.toolset(language.toolset)
    assert [t.name for t in toolset.tools] == ["detect_language"]
    assert toolset.tools[0].parameters["required"] == ["text"]
    # row 25475: the lead-in and the definitions are the tools now, so no system message is left
    assert [m.role for m in language.messages] == ["user", "assistant", "user", "assistant", "tool", "assistant"]
    assert language.instruction.startswith("I have a text here")
    assert language.messages[1].content == "Of course, I can help with that. Please provide me with the text."
    call = language.messages[3]
    assert call.content is None and call.tool_calls == [{"id": "call_1", "type": "function", "function": {
        "name": "detect_language", "arguments": '{"text": "Je suis un étudiant"}'}}]
    answer = language.messages[4]
    assert (answer.content, answer.tool_call_id, answer.name) == ('{"language": "French"}', "call_1", "detect_language")
    assert language.messages[5].content == "The text you provided is in French."
    assert "<|endoftext|>" not in json.dumps([m.content for m in language.messages])
    # row 107105: no functions, its system prompt kept, turns separated by one blank line
    assert occupation.toolset is None
    assert [(m.role, m.content) for m in occupation.messages] == [
        ("system", "You are a helpful assistant, with no access to external functions."),
        ("user", "Assign this occupation to the appropriate category\nNurse"), ("assistant", "Healthcare"),
        ("user", "What about an electrician?"), ("assistant", "Skilled Trades")]
    assert {(t.status, t.source) for t in (language, occupation)} == {("imported", "imported")}
    assert language.meta == {"format": "glaive"}


def test_reimport_adds_nothing(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        import_glaive(store, ROWS)
        again = import_glaive(store, ROWS)
        assert (again.trajectories, again.skipped) == (0, 2)
        assert len(list(store.iter_trajectories())) == 2


def test_row_1_chat_two_rounds_of_call_answer_and_prose():
    # The chat of row 1 as datasets-server's /first-rows serves it (quoted verbatim in SOURCE.md's second source).
    chat = ("USER: Can you tell me the latest news headlines for the United States?\n\n\nASSISTANT: <functioncall> "
            "{\"name\": \"get_news_headlines\", \"arguments\": '{\"country\": \"United States\"}'} <|endoftext|>\n\n\n"
            "FUNCTION RESPONSE: {\"headlines\": [\"Biden announces new vaccine mandates\", \"Hurricane Ida devastates "
            "Louisiana\", \"Apple unveils new iPhone\", \"NASA's Perseverance rover collects first Mars rock sample\"]}"
            "\n\n\nASSISTANT: Here are the latest news headlines for the United States:\n1. Biden announces new vaccine "
            "mandates\n2. Hurricane Ida devastates Louisiana\n3. Apple unveils new iPhone\n4. NASA's Perseverance rover "
            "collects first Mars rock sample <|endoftext|>\n\n\nUSER: That's interesting. What about the news in "
            "France?\n\n\nASSISTANT: <functioncall> {\"name\": \"get_news_headlines\", \"arguments\": '{\"country\": "
            "\"France\"}'} <|endoftext|>\n\n\nFUNCTION RESPONSE: {\"headlines\": [\"France recalls ambassadors to US and "
            "Australia\", \"French election: Macron's party braces for tough fight\", \"Louvre Museum to undergo major "
            "overhaul\", \"France to offer free birth control to all women under 25\"]}\n\n\nASSISTANT: Here are the "
            "latest news headlines for France:\n1. France recalls ambassadors to US and Australia\n2. French election: "
            "Macron's party braces for tough fight\n3. Louvre Museum to undergo major overhaul\n4. France to offer free "
            "birth control to all women under 25 <|endoftext|>\n\n\n")
    found = turns(chat)
    assert [marker for marker, _ in found] == ["USER", "ASSISTANT", "FUNCTION RESPONSE", "ASSISTANT"] * 2
    assert found[3][1].endswith("collects first Mars rock sample")  # the apostrophe of NASA's is prose
    trajectory = glaive.trajectory_from_record({"system": "", "chat": chat}, Imported(), "x")
    calls = [m.tool_calls[0] for m in trajectory.messages if m.tool_calls]
    assert [(c["id"], c["function"]["arguments"]) for c in calls] == [
        ("call_1", '{"country": "United States"}'), ("call_2", '{"country": "France"}')]
    assert [m.tool_call_id for m in trajectory.messages if m.role == "tool"] == ["call_1", "call_2"]


@pytest.mark.parametrize("body, expected", [
    # the published shape: JSON arguments in single quotes, a quote inside them unescaped (rows 25475, 61004)
    (''' {"name": "send_sms", "arguments": '{"phone_number": "1234567890", "message": "Hey, let's meet"}'} ''',
     ("send_sms", '{"phone_number": "1234567890", "message": "Hey, let\'s meet"}')),
    # pretty-printed arguments (row 19583) become one line
    (''' {"name": "get_lyrics", "arguments": '{\n  "title": "Shape of You",\n  "artist": "Ed Sheeran"\n}'} ''',
     ("get_lyrics", '{"title": "Shape of You", "artist": "Ed Sheeran"}')),
    # arguments written as an object: the call is plain JSON (rows 111754 and 128)
    (' {"name": "generate_random_id", "arguments": {}} ', ("generate_random_id", "{}")),
    (' {"name": "calculate_bmi", "arguments": {\n  "weight": 70,\n  "height": 1.75\n}} ',
     ("calculate_bmi", '{"weight": 70, "height": 1.75}')),
])
def test_calls_as_published_are_read(body, expected):
    assert parse_call(body) == expected


@pytest.mark.parametrize("body", [
    ''' {"name": "analyze_sentiment", "arguments": '{"text": "life\\'s full"}'} ''',  # \' is no JSON escape (71039)
    ''' {"name": "calculate_tax", "arguments": '{"range": [70001, Infinity]}'} ''',  # not a JSON number (26684)
    ''' {"name": "generate_report", "arguments": '{"data": [User provided data]}'} ''',  # a placeholder (65421)
    ''' {"name": "calculate_average", "arguments": '[5, 10, 15, 20, 25]'} ''',  # not an object (81297)
    ' {"name": "get_current_time", "arguments": null} ',  # (81998)
    ' {"name": "get_random_quote", "parameters": {}} ',  # parameters, not arguments (81082)
    ''' {"name": "get_song_lyrics", "arguments": '{"artist": "Ed Sheeran", "title": " ''',  # cut off (34221)
    ''' {"name": "send_email", "arguments": '{"subject": "Agenda"}'}} ''',  # one brace too many (57572)
])
def test_calls_that_cannot_be_read_are_none(body):
    assert parse_call(body) is None


def test_a_call_that_cannot_be_read_stays_text_and_is_flagged_parse_error(tmp_path, capsys):
    body = '''{"name": "detect_language", "arguments": '{"text": "Je suis l\\'étudiant"}'}'''
    path = write_rows(tmp_path / "bad_call.json", [with_call(body)])
    db = str(tmp_path / "s.db")
    code, out, _ = run_cli(capsys, "--db", db, "import", str(path))
    assert code == 0 and "flagged: 1 assistant messages tagged, 1 masked" in out
    with Store.open(db) as store:
        (trajectory,) = store.iter_trajectories()
        unread = trajectory.messages[3]
        assert unread.tool_calls is None and unread.raw == unread.content and "<functioncall>" in unread.content
        assert unread.weight == 0
        assert [(t.message_index, t.code) for t in store.effective_tags(trajectory.id)] == [(3, "parse_error")]
        # its answer has no call to answer, and stays
        assert trajectory.messages[4].role == "tool" and trajectory.messages[4].tool_call_id is None


def test_a_call_that_breaks_its_schema_is_imported_and_auto_tagged(tmp_path, capsys):
    path = write_rows(tmp_path / "hallucinated.json",
                      [with_call('''{"name": "detect_language", "arguments": '{"txt": "Je suis"}'}''')])
    db = str(tmp_path / "s.db")
    assert run_cli(capsys, "--db", db, "import", str(path))[0] == 0
    with Store.open(db) as store:
        (trajectory,) = store.iter_trajectories()
        assert trajectory.messages[3].tool_calls[0]["function"]["arguments"] == '{"txt": "Je suis"}'
        codes = {(t.message_index, t.code) for t in store.effective_tags(trajectory.id)}
    assert codes == {(3, "param_hallucination"), (3, "param_missing")}


def test_words_before_the_call_are_its_content():
    # row 21816's shape: the assistant says something, then calls on the next line
    row = with_call('{"name": "detect_language", "arguments": \'{"text": "Je suis"}\'}')
    row["chat"] = row["chat"].replace("ASSISTANT: <functioncall>", "ASSISTANT: Let me check.\n<functioncall>")
    message = glaive.trajectory_from_record(row, Imported(), "x").messages[3]
    assert message.content == "Let me check." and message.tool_calls[0]["function"]["name"] == "detect_language"


def test_a_response_after_a_call_in_another_syntax_marks_that_turn_unparsed():
    # row 17357: "AI to= get_song_lyrics: {...}" instead of <functioncall>
    row = rows()[0]
    row["chat"] = row["chat"].replace(
        '<functioncall> {"name": "detect_language", "arguments": \'{"text": "Je suis un étudiant"}\'}',
        'Sure.\nAI to= detect_language: {"text": "Je suis un étudiant"}')
    messages = glaive.trajectory_from_record(row, Imported(), "x").messages
    assert messages[3].raw == messages[3].content and messages[3].tool_calls is None
    assert messages[4].role == "tool" and messages[4].tool_call_id is None


def test_a_marker_inside_a_line_stays_in_its_turn():
    # row 44369: "\nASSISTANT:" inside a user turn, one newline before it, is text, not a turn
    found = turns('USER: The book is "\nASSISTANT: A Modern Approach", 2 copies. <|endoftext|>\n\n\n'
                  "ASSISTANT: Sure. <|endoftext|>\n\n\n")
    assert [marker for marker, _ in found] == ["USER", "ASSISTANT"]
    assert found[0][1] == 'The book is "\nASSISTANT: A Modern Approach", 2 copies.'


def test_the_system_field_gives_prose_and_definitions():
    # row 2144's system field: two functions with empty parameters, each pretty-printed, after the lead-in
    system = (LEAD_IN + '\n{\n    "name": "get_random_joke",\n    "description": "Get a random joke",\n'
              '    "parameters": {}\n}\n\n{\n    "name": "get_random_fact",\n    "description": "Get a random fact",\n'
              '    "parameters": {}\n}\n\n')
    prose, definitions = split_system("SYSTEM: " + system)
    assert prose == "" and [d["name"] for d in definitions] == ["get_random_joke", "get_random_fact"]
    prose, _ = split_system("SYSTEM: " + system + "Be brief.\n")
    assert prose == "Be brief."


def test_a_name_defined_twice_is_one_tool_and_the_other_definition_is_kept_in_meta():
    # row 168's shape: convert_currency declared twice with different definitions
    twice = ('{\n    "name": "convert_currency",\n    "description": "Convert one currency to another",\n'
             '    "parameters": {}\n}\n\n{\n    "name": "convert_currency",\n    "description": "Convert currency",\n'
             '    "parameters": {"type": "object"}\n}\n')
    imported = Imported()
    trajectory = glaive.trajectory_from_record(
        {"system": f"SYSTEM: {LEAD_IN}\n{twice}", "chat": "USER: Convert 500 USD to EUR."}, imported, "x")
    (toolset,) = imported.toolsets.values()
    assert [(t.name, t.description) for t in toolset.tools] == [("convert_currency", "Convert one currency to another")]
    assert [d["function"]["description"] for d in trajectory.meta["duplicate_tools"]] == ["Convert currency"]


def test_detection_tells_glaive_from_the_other_formats():
    assert detect_format(ROWS) == "glaive"
    record = rows()[0]
    assert glaive.looks_like(record)
    assert not any(f.looks_like(record) for f in (hermes, jsonl, toolalpaca))
    toolace = {"system": "Here is a list of functions in JSON format that you can invoke:\n[]",
               "conversations": [{"from": "user", "value": "hi"}, {"from": "assistant", "value": "[f(x=1)]"}]}
    assert not glaive.looks_like(toolace)
    assert not glaive.looks_like({"messages": [{"role": "user", "content": "hi"}]})


def test_the_cli_imports_a_glaive_file_and_says_what_it_imported(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    code, out, err = run_cli(capsys, "--db", db, "import", str(ROWS))
    assert code == 0 and err == ""
    assert out.startswith(f"imported 1 toolset (1 tool), 2 trajectories from {ROWS} (glaive) into {db}\n")


@pytest.mark.parametrize("content, problem", [
    ('[{"system": "SYSTEM: hi", "chat": 7}]', "record 1: a Glaive record needs 'system' and 'chat' strings"),
    ('[{"system": "SYSTEM: hi", "chat": "hello there"}]', "record 1: 'chat' holds no USER:, ASSISTANT: or FUNCTION"),
    ('[{"system": "SYSTEM: hi", "chat": "Hi.\\n\\nUSER: x"}]', "record 1: 'chat' does not begin with USER:"),
    ('[{"system": "SYSTEM: {\\"name\\": \\"f\\", \\"parameters\\": []}", "chat": "USER: x"}]',
     "record 1: function 1 (f): 'parameters' must be an object"),
    ('[{"system": "SYSTEM: {\\"name\\": \\"f\\", \\"parameters\\": {\\"type\\": \\"int\\"}}", "chat": "USER: x"}]',
     "record 1: function 1 (f): parameters are not a valid JSON schema"),
    ('[{"system": "SYSTEM: hi", "chat": "USER: x"}, ', "invalid JSON"),
])
def test_bad_input_is_one_line_naming_file_and_record_and_leaves_the_store_as_it_was(tmp_path, capsys, content,
                                                                                      problem):
    db = tmp_path / "s.db"
    assert run_cli(capsys, "--db", str(db), "import", str(ROWS))[0] == 0
    before = snapshot(db)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, out, err = run_cli(capsys, "--db", str(db), "import", str(bad), "--format", "glaive")
    assert code != 0 and out == ""
    assert err.startswith(f"error: {bad}") and problem in err and err.count("\n") == 1 and "Traceback" not in err
    assert snapshot(db) == before
