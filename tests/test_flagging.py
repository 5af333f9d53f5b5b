"""Auto-flagging: the feedback classifier on the labelled set, and flagging stored trajectories."""
from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from bench import feedback_cases
from bench.feedback_cases import code_accuracy, load_cases, ours_says_error, score, tl_training_says_error
from conftest import fixture_path
from curator.cli import cli
from store import Message, Store, Tool, Toolset
from store.feedback import classify_feedback
from store.flagging import flag_all, flag_trajectory
from store.taxonomy import CODE_NAMES, MaskPolicy

POLICY = MaskPolicy.of()

CASES = load_cases(feedback_cases.TUNING)
HELDOUT = load_cases(feedback_cases.HELDOUT)
FRESH = load_cases(feedback_cases.FRESH)
FEEDBACK_CODES = {
    "parse_error", "tool_hallucination", "param_hallucination", "param_missing", "param_invalid",
    "tool_call_failure", "tool_instability",
}


# --- the classifier ----------------------------------------------------------------------------


def test_labelled_set_is_big_and_covers_every_feedback_code():
    assert len(CASES) >= 60
    assert {c["code"] for c in CASES if c["error"]} == FEEDBACK_CODES
    assert all(c["code"] in CODE_NAMES for c in CASES if c["error"])
    assert sum(not c["error"] for c in CASES) >= 30


def test_classifier_meets_the_goals_and_beats_tl_training_rules():
    ours = score(CASES, ours_says_error)
    theirs = score(CASES, tl_training_says_error)
    right_code, _ = code_accuracy(CASES)
    assert ours.precision >= 0.95 and ours.recall >= 0.95
    assert right_code >= 0.90
    assert ours.precision > theirs.precision and ours.recall > theirs.recall


def test_held_out_set_is_apart_and_covers_every_feedback_code():
    assert len(HELDOUT) >= 80
    assert {c["code"] for c in HELDOUT if c["error"]} == FEEDBACK_CODES
    assert sum(not c["error"] for c in HELDOUT) >= 30
    assert not {c["text"] for c in HELDOUT} & {c["text"] for c in CASES}
    assert not {c["text"] for c in FRESH} & ({c["text"] for c in CASES} | {c["text"] for c in HELDOUT})


def test_held_out_figures_stay_above_their_floor():
    """Floors a little under the figures reached (0.983 / 1.000 / 0.991; blind, before tuning: 0.960 / 0.819 / 0.664)."""
    ours = score(HELDOUT, ours_says_error)
    theirs = score(HELDOUT, tl_training_says_error)
    right_code, _ = code_accuracy(HELDOUT)
    assert ours.precision >= 0.97 and ours.recall >= 0.97
    assert right_code >= 0.95
    assert ours.precision > theirs.precision and ours.recall > theirs.recall


def test_every_code_is_mostly_right():
    """Per code, not only overall: a broken rule for one code must not hide in the average."""
    _, misses = code_accuracy(CASES)
    for code in {c["code"] for c in CASES if c["error"]}:
        total = sum(c["code"] == code for c in CASES)
        wrong = sum(case["code"] == code for case, _ in misses)
        assert 1 - wrong / total >= 0.8, code


def test_tl_training_rule_strips_punctuation_and_case():
    assert tl_training_says_error('{"Error": "x"}')
    assert tl_training_says_error("requests.exceptions.ConnectionError: boom")
    assert not tl_training_says_error('{"temp": 21}')


@pytest.mark.parametrize(
    "text",
    [
        '{"error": null, "data": {"temp": 3}}',
        '{"errors": [], "results": [1]}',
        '{"results": [{"title": "Common errors in Python"}]}',
        '{"error_rate": 0.3}',
        '{"word": "invalid", "definition": "not valid"}',
        "[]",
        '{"results": []}',
        '{"results": [{"title": "Status code 500: what it means", "snippet": "HTTP Error 503 explained"}]}',
        "Status Code: 200. Response: {\"error\": \"\", \"response\": \"ok\"}",
        "",
        None,
        "<html><head><title>Forbidden Planet (1956)</title></head></html>",
        '{"synonyms": ["invalid", "void"]}',
        '{"valid": false, "errors": ["Missing @ sign"]}',
        "2024-05-02 10:11:03 ERROR worker: Read timed out\n2024-05-02 10:11:04 INFO worker: retrying",
    ],
)
def test_successes_that_mention_errors_are_not_flagged(text):
    assert classify_feedback(text) == []


@pytest.mark.parametrize(
    ("text", "code", "param"),
    [
        ("TypeError: searchBooks() got an unexpected keyword argument 'colour'", "param_hallucination", "colour"),
        ("get_weather() missing 1 required positional argument: 'city'", "param_missing", "city"),
        ('{"detail": [{"type": "missing", "loc": ["body", "date"], "msg": "Field required"}]}', "param_missing", "date"),
        ("Status Code: 422. Response: {\"errors\": {\"email\": [\"must be a valid email\"]}}", "param_invalid", "email"),
        ("Status Code: 503. Response: {\"message\": \"try later\"}", "tool_instability", None),
        ("Status Code: 404. Response: {\"message\": \"no such book\"}", "tool_call_failure", None),
        ("'getFacts' is not a valid tool, try another one.", "tool_hallucination", None),
        ('rpc error: code = NotFound desc = user "u_1" not found', "tool_call_failure", None),
        ("<title>Server Error (500)</title>", "tool_instability", None),
        ('{"email": ["This field is required."]}', "param_missing", "email"),
        ('{"exit_code": 127, "stderr": "bash: lss: command not found"}', "tool_call_failure", None),
        ('{"error": "", "response": "No such function name: get_facts"}', "tool_hallucination", None),
    ],
)
def test_codes_and_parameter_names(text, code, param):
    problem = classify_feedback(text)[0]
    assert (problem.code, problem.param) == (code, param)


@pytest.mark.parametrize("text", ["x" * 50_000, "Error: " + "a.b" * 20_000, "'a' " * 20_000])
def test_long_feedback_is_read_in_linear_time(text):
    started = time.perf_counter()
    classify_feedback(text)
    assert time.perf_counter() - started < 3


def test_pydantic_422_lists_every_problem():
    body = {"detail": [
        {"type": "missing", "loc": ["query", "city"], "msg": "Field required"},
        {"type": "extra_forbidden", "loc": ["query", "colour"], "msg": "Extra inputs are not permitted"},
        {"type": "int_parsing", "loc": ["query", "days"], "msg": "Input should be a valid integer"},
    ]}
    problems = classify_feedback(json.dumps(body))
    assert [(p.code, p.param) for p in problems] == [
        ("param_missing", "city"), ("param_hallucination", "colour"), ("param_invalid", "days"),
    ]


# --- flagging stored trajectories --------------------------------------------------------------

WEATHER = Toolset("weather", [
    Tool("getWeatherForecast", "Forecast", {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    }),
    Tool("getWeatherHistory", "History", {"type": "object", "properties": {"city": {"type": "string"}}}),
])


def call(name: str, arguments: dict, id: str) -> dict:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def assistant_call(name: str, arguments: dict, id: str) -> Message:
    return Message("assistant", None, tool_calls=[call(name, arguments, id)])


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "flag.db")
    s.add_toolset(WEATHER)
    yield s
    s.close()


def stored(store: Store, messages: list[Message], toolset: str | None = "weather") -> str:
    tid = store.new_trajectory(toolset, messages[0].content)
    for message in messages:
        store.append_message(tid, message)
    store.set_status(tid, "complete")
    return tid


def mixed_trajectory(store: Store) -> str:
    """Indexes: 1 hallucinated param (400), 3 unparseable, 4 timeout, 6 good call, 8 answer."""
    return stored(store, [
        Message("user", "Weather in Paris for 3 days?"),
        assistant_call("getWeatherForecast", {"city": "Paris", "colour": "red"}, "c1"),
        Message("tool", 'Status Code: 400. Response: {"error": "Unknown parameter: colour"}', tool_call_id="c1"),
        Message("assistant", None, raw='<tool_call>{"name": "getWeatherForecast", "arguments": {"city": '),
        assistant_call("getWeatherForecast", {"city": "Paris"}, "c2"),
        Message("tool", "HTTPSConnectionPool(host='api.weather.example', port=443): Read timed out.",
                tool_call_id="c2"),
        assistant_call("getWeatherForecast", {"city": "Paris", "days": 3}, "c3"),
        Message("tool", '{"error": null, "forecast": [18, 19, 21]}', tool_call_id="c3"),
        Message("assistant", "18, 19 and 21 degrees."),
    ])


def codes_by_message(store: Store, tid: str) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for tag in store.effective_tags(tid):
        out.setdefault(tag.message_index, set()).add(tag.code)
    return out


def weights(store: Store, tid: str) -> dict[int, int]:
    return {m.index: m.weight for m in store.messages(tid) if m.role == "assistant"}


def test_flagging_tags_and_masks_a_stored_trajectory(store):
    tid = mixed_trajectory(store)
    result = flag_trajectory(store, tid, POLICY)
    assert codes_by_message(store, tid) == {1: {"param_hallucination"}, 3: {"parse_error"}, 4: {"tool_instability"}}
    assert weights(store, tid) == {1: 0, 3: 0, 4: 0, 6: 1, 8: 1}
    assert result.masked == [1, 3, 4]
    assert all(t.source == "auto" for t in store.effective_tags(tid))


def test_instability_masking_is_configurable(store):
    tid = mixed_trajectory(store)
    flag_trajectory(store, tid, MaskPolicy.of(mask_instability=False))
    assert 4 in codes_by_message(store, tid)
    assert weights(store, tid)[4] == 1


def test_feedback_refines_a_call_the_check_passes(store):
    tid = stored(store, [
        Message("user", "Weather?"),
        assistant_call("getWeatherForecast", {"city": "Atlantis"}, "c1"),
        Message("tool", '{"error": "City \'Atlantis\' not found"}', tool_call_id="c1"),
        assistant_call("getWeatherForecast", {"city": "Paris", "days": "x"}, "c2"),
        Message("tool", "ValueError: invalid literal for int() with base 10: 'x'", tool_call_id="c2"),
        assistant_call("getWeatherAlerts", {"city": "Paris"}, "c3"),
        Message("tool", "getWeatherAlerts is not a valid tool, try another one.", tool_call_id="c3"),
    ])
    flag_trajectory(store, tid, POLICY)
    # the check's invalid-value problem explains the tool's complaint: one code, not two
    assert codes_by_message(store, tid) == {
        1: {"tool_call_failure"}, 3: {"param_invalid"}, 5: {"tool_hallucination"},
    }


def test_calls_without_ids_are_matched_in_order_and_bad_arguments_are_parse_errors(store):
    bad = {"id": None, "type": "function", "function": {"name": "getWeatherForecast", "arguments": "{city: Paris"}}
    tid = stored(store, [
        Message("user", "Two cities?"),
        Message("assistant", None, tool_calls=[
            {**call("getWeatherForecast", {"city": "Paris"}, ""), "id": None},
            {**call("getWeatherHistory", {"city": "Rome"}, ""), "id": None},
            bad,
        ]),
        Message("tool", '{"temp": 20}'),
        Message("tool", "503 Server Error: Service Unavailable for url: https://x.example/history"),
        Message("tool", "Could not parse the arguments as JSON"),
    ])
    flag_trajectory(store, tid, POLICY)
    tags = {(t.message_index, t.code): t.note for t in store.effective_tags(tid)}
    assert set(tags) == {(1, "tool_instability"), (1, "parse_error")}
    assert tags[(1, "tool_instability")].startswith("getWeatherHistory: ")


def test_without_a_stored_toolset_only_feedback_counts(store):
    tid = stored(store, [
        Message("user", "Hi"),
        assistant_call("anything", {"x": 1}, "c1"),
        Message("tool", '{"ok": true}', tool_call_id="c1"),
    ], toolset=None)
    assert flag_trajectory(store, tid, POLICY).tags == []


def test_human_decisions_survive_reflagging(store):
    tid = mixed_trajectory(store)
    flag_trajectory(store, tid, POLICY)
    store.remove_tag(tid, "tool_instability", 4, annotator="ann")    # un-tag an auto tag
    store.set_weight(tid, 1, 1)                                        # unmask a flagged call by hand
    store.set_weight(tid, 6, 0)                                        # mask a clean call by hand
    store.add_tag(tid, "wrong_tool", 6, annotator="ann")               # a human tag
    store.add_tag(tid, "answer_unsupported", 8, annotator="ann")
    store.set_weight(tid, 8, 1)                                        # ... but keep it in training

    flag_trajectory(store, tid, POLICY)
    flag_trajectory(store, tid, POLICY)

    assert codes_by_message(store, tid) == {
        1: {"param_hallucination"}, 3: {"parse_error"}, 6: {"wrong_tool"}, 8: {"answer_unsupported"},
    }
    assert weights(store, tid) == {1: 1, 3: 0, 4: 1, 6: 0, 8: 1}
    assert {t.source for t in store.effective_tags(tid) if t.message_index in (6, 8)} == {"human"}


def test_reflagging_drops_stale_auto_tags_and_unmasks(store):
    tid = mixed_trajectory(store)
    flag_trajectory(store, tid, POLICY)
    with store.transaction():  # the tool now answers the timed-out call
        store.conn.execute(
            "UPDATE messages SET content = '{\"forecast\": [1]}' WHERE trajectory_id = ? AND idx = 5", (tid,)
        )
    flag_trajectory(store, tid, POLICY)
    assert 4 not in codes_by_message(store, tid)
    assert weights(store, tid)[4] == 1


def test_flag_all_summarises(store):
    mixed_trajectory(store)
    mixed_trajectory(store)
    summary = flag_all(store, POLICY)
    assert (summary.trajectories, summary.tagged, summary.masked) == (2, 6, 6)
    assert summary.by_code == {"param_hallucination": 2, "parse_error": 2, "tool_instability": 2}


def test_flag_command(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./curator.toml
    tid = mixed_trajectory(store)
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", store.path, "flag"])
    assert result.exit_code == 0, result.output
    assert "1 trajectories flagged: 3 assistant messages tagged, 3 masked" in result.output
    assert "param_hallucination" in result.output
    result = runner.invoke(cli, ["flag", "--db", store.path, "--keep-instability"])
    assert result.exit_code == 0, result.output
    assert "2 masked" in result.output
    assert weights(store, tid)[4] == 1


def test_flag_command_reads_the_config(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "curator.toml").write_text("[flag]\nmask_instability = false\n")
    mixed_trajectory(store)
    result = CliRunner().invoke(cli, ["--db", store.path, "flag"])
    assert "2 masked" in result.output


# --- the shared ToolAlpaca fixture -------------------------------------------------------------


def axolotl_toolset(api: dict) -> Toolset:
    """One tool per OpenAPI operation, query parameters as properties (by hand: no importer needed)."""
    spec = json.loads(api["Documentation"])
    tools = []
    for operations in spec["paths"].values():
        for operation in operations.values():
            params = operation.get("parameters", [])
            tools.append(Tool(operation["operationId"], operation.get("description", ""), {
                "type": "object",
                "properties": {p["name"]: p["schema"] for p in params},
                "required": [p["name"] for p in params if p.get("required")],
            }))
    return Toolset(api["Name"], tools)


def instance_messages(instance: dict) -> list[Message]:
    messages = [Message("user", instance["input"])]
    for n, ((action, action_input, _log), observation) in enumerate(instance["intermediate_steps"]):
        messages.append(Message("assistant", None, tool_calls=[{
            "id": f"s{n}", "type": "function", "function": {"name": action, "arguments": action_input},
        }]))
        messages.append(Message("tool", observation, tool_call_id=f"s{n}"))
    messages.append(Message("assistant", instance["output"]))
    return messages


def test_toolalpaca_fixture_failed_calls_are_tagged_and_masked(tmp_path):
    api = json.loads(fixture_path("toolalpaca/train_format_sample.json").read_text())[0]
    with Store.open(tmp_path / "ta.db") as s:
        s.add_toolset(axolotl_toolset(api))
        ids = [stored(s, instance_messages(i), toolset=api["Name"]) for i in api["Instances"]]
        summary = flag_all(s, POLICY)
        flagged = {(n, t.message_index, t.code) for n, tid in enumerate(ids) for t in s.effective_tags(tid)}
        masked = {(n, i) for n, tid in enumerate(ids) for i, w in weights(s, tid).items() if w == 0}
    assert flagged == {(1, 1, "param_hallucination"), (2, 1, "tool_hallucination")}
    assert masked == {(1, 1), (2, 1)}
    assert summary.masked == 2
