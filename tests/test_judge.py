"""The judge: TL-Training's error-type reward and RoTBench's TS / PI / CF."""
from __future__ import annotations

import json

import pytest

from store.toolcalls import REWARDS, Toolbox, ToolCall, judge, normalize_value

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "getWeatherForecast",
            "description": "Forecast for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer"},
                    "units": {"type": "string", "enum": ["metric", "imperial"]},
                    "hourly": {"type": "boolean"},
                },
                "required": ["city"],
            },
        },
    },
    {"name": "getWeatherHistory", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
]
GOLD = ToolCall("getWeatherForecast", {"city": "Paris", "days": 3})


def forecast(**arguments) -> ToolCall:
    return ToolCall("getWeatherForecast", arguments)


# (case, predicted, codes, reward, ts, pi, cf)
CASES = [
    ("correct", forecast(city="Paris", days=3), (), 1.0, True, True, True),
    ("correct after normalising", forecast(city="  paris ", days="3"), (), 1.0, True, True, True),
    ("wrong value", forecast(city="London", days=3), ("content_error",), -0.25, True, True, False),
    ("wrong int value", forecast(city="Paris", days="4"), ("content_error",), -0.25, True, True, False),
    ("hallucinated", forecast(city="Paris", days=3, colour="red"), ("param_hallucination",), -0.8, True, False, False),
    ("redundant", forecast(city="Paris", days=3, units="metric"), ("param_redundant",), -0.5, True, False, False),
    ("missing", forecast(city="Paris"), ("param_missing",), -0.5, True, False, False),
    (
        "hallucinated + redundant",
        forecast(city="Paris", days=3, units="metric", colour="red"),
        ("param_hallucination", "param_redundant"),
        -1.3, True, False, False,
    ),
    ("hallucinated + missing", forecast(city="Paris", colour="red"), ("param_hallucination", "param_missing"), -1.3, True, False, False),
    ("redundant + missing", forecast(city="Paris", units="metric"), ("param_redundant", "param_missing"), -1.0, True, False, False),
    (
        "hallucinated + redundant + missing",
        forecast(city="Paris", units="metric", colour="red"),
        ("param_hallucination", "param_redundant", "param_missing"),
        -1.8, True, False, False,
    ),
    ("names wrong and a value wrong: names count", forecast(city="Rome"), ("param_missing",), -0.5, True, False, False),
    ("wrong tool", ToolCall("getWeatherHistory", {"city": "Paris"}), ("wrong_tool",), -1.5, False, False, False),
    ("tool not in toolset", ToolCall("getWeatherAlerts", {"city": "Paris"}), ("tool_hallucination",), -2.0, False, False, False),
    ("raw string", 'getWeatherForecast(city="Paris"', ("parse_error",), -2.0, False, False, False),
    (
        "arguments not JSON",
        {"id": "c1", "type": "function", "function": {"name": "getWeatherForecast", "arguments": '{"city": "Par'}},
        ("parse_error",), -2.0, False, False, False,
    ),
    ("no name", {"name": "", "arguments": {}}, ("parse_error",), -2.0, False, False, False),
    (
        "OpenAI dict, correct",
        {"id": "c1", "type": "function", "function": {"name": "getWeatherForecast", "arguments": json.dumps({"city": "Paris", "days": 3})}},
        (), 1.0, True, True, True,
    ),
    ("bare dict, correct", {"name": "getWeatherForecast", "arguments": {"city": "Paris", "days": 3.0}}, (), 1.0, True, True, True),
]


@pytest.mark.parametrize(("case", "predicted", "codes", "reward", "ts", "pi", "cf"), CASES, ids=[c[0] for c in CASES])
def test_reward_table(case, predicted, codes, reward, ts, pi, cf):
    verdict = judge(predicted, GOLD, TOOLS)
    assert verdict.codes == codes
    assert verdict.reward == pytest.approx(reward)
    assert (verdict.ts, verdict.pi, verdict.cf) == (ts, pi, cf)
    assert verdict.correct is (codes == ())


def test_every_penalty_has_a_case():
    covered = {code for case in CASES for code in case[2]}
    assert covered == set(REWARDS)


def test_problems_name_the_parameters():
    verdict = judge(forecast(city="Paris", units="metric", colour="red"), GOLD, TOOLS)
    assert [(p.code, p.param) for p in verdict.problems] == [
        ("param_hallucination", "colour"),
        ("param_redundant", "units"),
        ("param_missing", "days"),
    ]


def test_several_gold_calls_best_verdict_counts():
    golds = [ToolCall("getWeatherHistory", {"city": "Paris"}), GOLD, forecast(city="Paris")]
    verdict = judge(forecast(city="Paris"), golds, TOOLS)
    assert verdict.correct and verdict.gold == golds[2]


def test_several_gold_calls_prefer_the_right_tool_over_a_higher_reward():
    # Against the history gold the call is only "wrong tool" (-1.5), against the forecast
    # gold it has all three parameter issues (-1.8) but the right tool: TS counts first.
    golds = [ToolCall("getWeatherHistory", {"city": "Paris"}), GOLD]
    verdict = judge(forecast(city="Paris", units="metric", colour="red"), golds, TOOLS)
    assert verdict.ts and verdict.reward == pytest.approx(-1.8)


def test_gold_may_be_openai_dicts_and_tools_a_toolbox():
    gold = {"id": "g", "type": "function", "function": {"name": "getWeatherForecast", "arguments": '{"city": "Paris"}'}}
    assert judge(forecast(city="PARIS"), [gold], Toolbox(TOOLS)).cf


def test_no_gold_is_an_error():
    with pytest.raises(ValueError):
        judge(GOLD, [], TOOLS)


INT, NUM, BOOL, STR = ({"type": t} for t in ("integer", "number", "boolean", "string"))


@pytest.mark.parametrize(
    ("a", "b", "schema", "equal"),
    [
        ("3", 3, INT, True),
        (" 3 ", 3.0, INT, True),
        ("3.5", 3, INT, False),
        ("three", 3, INT, False),
        ("2.50", 2.5, NUM, True),
        ("true", True, BOOL, True),
        ("No", False, BOOL, True),
        (1, True, BOOL, True),
        ("maybe", True, BOOL, False),
        ("New  York", "new york", STR, True),
        ("  Paris\n", "PARIS", STR, True),
        ("Paris", "Pariss", STR, False),
        (3, "3", STR, True),
        (["A", " b"], ["a", "B"], {"type": "array", "items": STR}, True),
        (["a", "b"], ["b", "a"], {"type": "array", "items": STR}, False),
        (["1", "2"], [1, 2], {"type": "array", "items": INT}, True),
        ({"lat": "48.8"}, {"lat": 48.8}, {"type": "object", "properties": {"lat": NUM}}, True),
        ("5", 5, {"type": ["integer", "null"]}, True),
        (None, None, {"type": ["integer", "null"]}, True),
        ("Paris", "paris", None, True),
        (["X"], ["x"], None, True),
    ],
)
def test_normalize_value(a, b, schema, equal):
    assert (normalize_value(a, schema) == normalize_value(b, schema)) is equal


def test_a_placeholder_gold_value_accepts_any_value():
    gold = forecast(city="${city from searchCities}", days=3)
    verdict = judge(forecast(city="Lyon", days=3), gold, TOOLS)
    assert (verdict.cf, verdict.reward) == (True, 1.0)
    assert judge(forecast(city="Lyon", days=4), gold, TOOLS).codes == ("content_error",)
    assert judge(forecast(days=3), gold, TOOLS).codes == ("param_missing",)
