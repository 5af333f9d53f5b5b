"""The simulator's small parts: error feedback the flagger can read, retry timing, the executor's memory."""
from __future__ import annotations

import email.utils
import random
import time

import pytest

from curator.sim import error_replies as replies
from store.feedback import classify_feedback
from curator.sim.agents import ToolExecutor, to_message
from curator.sim.backends.base import Episode, Instruction, Reply
from curator.sim.backends.scripted import ScriptedBackend
from curator.sim.config import SimConfig
from curator.sim.retry import Backoff, retry_after, retryable_status
from curator.sim.toolsets import SimToolset, demo_toolset
from store.errors import InputError

PHRASINGS = {
    "tool_hallucination": lambda rng: replies.tool_hallucination(rng, "getWeatherForecasts", ["getWeatherForecast"]),
    "param_hallucination": lambda rng: replies.param_hallucination(rng, "searchBooks", "colour", "red"),
    "param_missing": lambda rng: replies.param_missing(rng, "getWeatherHistory", ["city", "date"]),
    "param_invalid": lambda rng: replies.param_invalid(rng, "getWeatherForecast", "days", "three",
                                                        {"type": "integer"}, "'three' is not of type 'integer'"),
    "parse_error": lambda rng: replies.parse_error(rng, "Expecting ',' delimiter: line 1 column 18 (char 17)"),
    "tool_instability": lambda rng: replies.instability(rng, "getWeatherForecast"),
    "tool_call_failure": lambda rng: replies.call_failure(rng, "city", "Atlantis"),
}


@pytest.mark.parametrize("code", sorted(PHRASINGS))
def test_every_phrasing_is_varied_and_read_back_as_its_code(code):
    texts = {PHRASINGS[code](random.Random(seed)) for seed in range(200)}
    assert len(texts) >= 3
    for text in texts:
        assert [p.code for p in classify_feedback(text)][:1] == [code], text


def test_retry_after_in_seconds_milliseconds_and_as_a_date():
    assert retry_after({"retry-after": "2"}) == 2.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_after({"retry-after": later}) <= 31
    assert retry_after({}) is None and retry_after({"retry-after": "soon"}) is None


def test_backoff_grows_with_full_jitter_and_honours_the_hint():
    backoff, rng = Backoff(base=0.5, cap=4.0, max_retry_after=10.0), random.Random(0)
    for attempt in range(8):
        delays = [backoff.delay(attempt, None, rng) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= min(4.0, 0.5 * 2 ** attempt)
    assert backoff.delay(0, 3.0, rng) == 3.0 and backoff.delay(0, 120.0, rng) == 10.0
    assert [retryable_status(s) for s in (400, 401, 404, 408, 409, 422, 429, 500, 503)] == [
        False, False, False, True, True, False, True, True, True]


def episode(toolset: SimToolset, seed: int = 0) -> Episode:
    return Episode(0, toolset, Instruction("x", {"plan": {"calls": [], "mistakes": [], "clarify": None}}),
                   random.Random(seed))


async def test_the_executor_answers_the_same_call_the_same_way_and_checks_calls_first():
    toolset = SimToolset(demo_toolset("weather"))
    executor = ToolExecutor(ScriptedBackend(SimConfig()), toolset, instability_rate=0.0)
    run = episode(toolset)
    call = {"id": "c1", "type": "function", "function": {"name": "getWeatherForecast",
                                                            "arguments": '{"city": "Oslo", "days": 3}'}}
    first, code = await executor.run(run, call)
    again, _ = await executor.run(run, {**call, "id": "c2"})
    assert first == again and code is None and '"Oslo"' in first
    bad = {"id": "c3", "type": "function", "function": {"name": "getWeatherForecast", "arguments": '{"days": 3}'}}
    text, code = await executor.run(run, bad)
    assert code == "param_missing" and "city" in text and len(run.memory) == 1


async def test_instability_is_drawn_at_its_rate():
    toolset = SimToolset(demo_toolset("weather"))
    executor = ToolExecutor(ScriptedBackend(SimConfig()), toolset, instability_rate=0.3)
    codes = []
    for seed in range(300):
        call = {"id": "c", "type": "function", "function": {"name": "getAirQuality", "arguments": '{"city": "Lima"}'}}
        codes.append((await executor.run(episode(toolset, seed), call))[1])
    assert 60 <= codes.count("tool_instability") <= 120 and codes.count(None) == 300 - codes.count("tool_instability")


def test_replies_that_do_not_parse_keep_their_raw_text():
    run = episode(SimToolset(demo_toolset("weather")))
    broken = to_message(Reply(tool_calls=[{"id": "a", "function": {"name": "getAirQuality", "arguments": "{'city"}}]), run)
    assert broken.raw is not None and broken.tool_calls[0]["function"]["arguments"] == "{'city"
    in_text = to_message(Reply(content='{"name": "getAirQuality", "arguments": {"city": "Lima"}}'), run)
    assert in_text.raw == in_text.content
    assert to_message(Reply(content=None), run).raw == ""
    answer = to_message(Reply(content="It is sunny in Lima."), run)
    assert answer.raw is None and answer.content == "It is sunny in Lima."
    no_id = to_message(Reply(tool_calls=[{"function": {"name": "getAirQuality", "arguments": {"city": "Lima"}}}]), run)
    assert no_id.tool_calls[0]["id"] and no_id.tool_calls[0]["function"]["arguments"] == '{"city": "Lima"}'


@pytest.mark.parametrize("field,value,message", [
    ("backend", "llama", "unknown backend"), ("n", 0, "at least 1"), ("error_rate", 1.5, "between 0 and 1"),
    ("error_mix", {"typo": 1.0}, "unknown error kind"),
])
def test_config_problems_name_the_field(field, value, message):
    with pytest.raises(InputError, match=message) as raised:
        SimConfig(**{field: value}).checked()
    assert field in str(raised.value)
