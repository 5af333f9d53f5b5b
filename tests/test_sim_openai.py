"""The openai backend: the real ``openai`` client against a loopback OpenAI-compatible server."""
from __future__ import annotations

import json
import logging
import socket
from collections import Counter
from pathlib import Path

import pytest

from curator.sim import SimConfig, Simulation
from curator.sim.backends.openai import OpenAIBackend
from curator.sim.backends.scripted import ScriptedBackend
from curator.sim.generate import generate_many, generate_toolset
from curator.sim.retry import Backoff
from fake_openai import FakeOpenAI, Step
from store.taxonomy import MaskPolicy
from store import Store

FAST = Backoff(base=0.01, cap=0.05)
#: The backends ``simulation`` made: a Simulation closes only a backend it made itself.
_made: list[OpenAIBackend] = []


@pytest.fixture(autouse=True)
async def close_backends():
    yield
    while _made:
        await _made.pop().aclose()


@pytest.fixture
def server():
    with FakeOpenAI() as running:
        yield running


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "sim.db") as opened:
        yield opened


def simulation(store: Store, server: FakeOpenAI, **overrides) -> Simulation:
    values = {"backend": "openai", "base_url": server.base_url, "model": "assistant-m", "user_model": "user-m",
              "executor_model": "executor-m", "n": 4, "concurrency": 2, "request_timeout": 2.0,
              "instability_rate": 0.0, **overrides}
    config = SimConfig(**values)
    _made.append(OpenAIBackend(config.checked(), FAST))
    return Simulation(store, config, backend=_made[-1], policy=MaskPolicy.of())


def check_all_accounted_for(store: Store, n: int) -> list:
    trajectories = list(store.iter_trajectories())
    assert len(trajectories) == n
    assert sorted(t.meta["index"] for t in trajectories) == list(range(n))
    for t in trajectories:
        assert t.status in ("complete", "failed")
        assert (t.status == "failed") == bool(t.reason)
    return trajectories


async def test_multi_step_trajectories_with_final_answers(store, server):
    summary = await simulation(store, server, n=6, concurrency=3).run()
    assert summary.complete == 6 and summary.retries == 0
    for t in check_all_accounted_for(store, 6):
        assert [m.role for m in t.messages] == ["system", "user", "assistant", "tool", "assistant"]
        assert t.messages[2].tool_calls[0]["function"]["name"] == "getWeatherForecast"
        assert json.loads(t.messages[3].content)["condition"] == "sunny"
        assert t.messages[4].content.startswith("Here is what I found")
        assert (t.backend, t.model, t.meta["user_model"], t.meta["executor_model"]) == (
            "openai", "assistant-m", "user-m", "executor-m")
    models = Counter((r.role, r.body["model"]) for r in server.requests)
    assert models[("assistant", "assistant-m")] == 12 and models[("executor", "executor-m")] == 6
    assert models[("writer", "user-m")] >= 1
    assistant = next(r for r in server.requests if r.role == "assistant")
    assert assistant.body["tools"][0]["function"]["name"] == "getWeatherForecast"


async def test_429_waits_as_long_as_retry_after_says(store, server):
    server.script(Step.error(429, retry_after=0.4), role="assistant")
    summary = await simulation(store, server, n=1, concurrency=1).run()
    assert summary.complete == 1 and summary.retries == 1
    first, second = [r.at for r in server.requests if r.role == "assistant"][:2]
    assert second - first >= 0.38


async def test_500s_timeouts_malformed_bodies_and_dropped_connections_are_retried(store, server):
    server.script(Step.error(500), Step.slow(1.5), Step.malformed(), Step.drop_connection(), Step.error(503),
                  role="assistant")
    summary = await simulation(store, server, n=2, concurrency=1, request_timeout=1.0).run()
    assert summary.complete == 2 and summary.retries == 5
    check_all_accounted_for(store, 2)


async def test_tool_call_arguments_that_are_not_json_become_a_masked_step(store, server):
    server.script(Step.tool_call("getWeatherForecast", "{'city': 'Oslo'"), role="assistant")
    await simulation(store, server, n=1, concurrency=1).run()
    (t,) = check_all_accounted_for(store, 1)
    broken = t.messages[2]
    assert broken.raw is not None and broken.weight == 0
    assert broken.tool_calls[0]["function"]["arguments"] == "{'city': 'Oslo'"
    assert "JSON" in t.messages[3].content  # the executor's feedback, without asking the model
    assert [g.code for g in t.tags if g.message_index == 2] == ["parse_error"]
    assert t.status == "complete" and t.messages[-1].role == "assistant"
    assert sum(r.role == "executor" for r in server.requests) == 1  # only the recovered call reached it


async def test_malformed_calls_get_feedback_without_asking_the_executor(store, server):
    server.script(Step.tool_call("getWeatherForecast", {"city": "Oslo", "colour": "red"}),
                  Step.tool_call("getWeatherForecasts", {"city": "Oslo"}), Step.tool_call("getWeatherHistory", {}),
                  role="assistant")
    await simulation(store, server, n=1, concurrency=1, max_steps=8).run()
    (t,) = check_all_accounted_for(store, 1)
    codes = {g.message_index: g.code for g in t.tags}
    assert [codes.get(i) for i in (2, 4, 6)] == ["param_hallucination", "tool_hallucination", "param_missing"]
    assert sum(r.role == "executor" for r in server.requests) == 0


async def test_a_dropped_connection_a_timeout_and_a_refused_connection_are_told_apart(store, server):
    server.script(Step.drop_connection(), Step.slow(1.5), role="assistant")
    await simulation(store, server, n=2, concurrency=1, max_retries=0, request_timeout=1.0).run()
    reasons = sorted(t.reason for t in check_all_accounted_for(store, 2))
    assert reasons[0].startswith("assistant model: connection error (") and "timed out" not in reasons[0]
    assert reasons[1] == "assistant model: timed out after 1 s; gave up after 1 attempts"
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}/v1"
    summary = await simulation(store, server, n=1, max_retries=0, base_url=closed).run()
    assert summary.error.startswith("could not write instructions: user model: connection error (")


async def test_retries_run_out_into_a_failed_trajectory_and_the_rest_go_on(store, server):
    server.script(*[Step.error(500)] * 3, role="assistant")
    summary = await simulation(store, server, n=3, concurrency=1, max_retries=2).run()
    trajectories = check_all_accounted_for(store, 3)
    failed = [t for t in trajectories if t.status == "failed"]
    assert len(failed) == 1 and "HTTP 500" in failed[0].reason and "gave up after 3 attempts" in failed[0].reason
    assert summary.complete == 2 and summary.reasons == {"assistant model": 1}


async def test_a_mixed_bag_of_failures_loses_and_duplicates_nothing(store, server):
    server.script(Step.error(429, retry_after=0.01), Step.malformed(), role="writer")
    server.script(*[Step.error(500), Step.slow(1.3), Step.malformed(), Step.tool_call("nope", {})] * 4,
                  role="assistant")
    server.script(Step.error(502), Step.answer("not json at all"), role="executor")
    summary = await simulation(store, server, n=20, concurrency=5, request_timeout=1.0, max_retries=3,
                               instruction_batch=3).run()
    trajectories = check_all_accounted_for(store, 20)
    assert summary.started == 20 == summary.complete + summary.failed
    assert len({t.instruction for t in trajectories}) == 20


async def test_a_clarifying_question_is_answered_by_the_user_model(store, server):
    server.script(Step.answer("Which city do you mean?"), role="assistant")
    await simulation(store, server, n=1, concurrency=1).run()
    (t,) = check_all_accounted_for(store, 1)
    assert [m.role for m in t.messages][:6] == ["system", "user", "assistant", "user", "assistant", "tool"]
    assert t.messages[3].content == "Oslo, please."


async def test_no_final_answer_within_max_steps_fails_with_the_reason(store, server):
    await simulation(store, server, n=1, concurrency=1, max_steps=1).run()
    (t,) = check_all_accounted_for(store, 1)
    assert t.status == "failed" and t.reason == "no final answer within 1 assistant steps"


async def test_a_bad_key_stops_the_simulation(store, server):
    server.script(*[Step.error(401, message="Incorrect API key provided")] * 20)
    summary = await simulation(store, server, n=5, concurrency=2).run()
    assert "HTTP 401" in (summary.error or "")
    assert not store.trajectory_ids(status="running") and not store.trajectory_ids(status="complete")


async def test_the_api_key_is_sent_but_never_stored_exported_or_logged(store, server, monkeypatch, caplog, tmp_path):
    secret = "sk-test-9f8e7d6c5b4a-DO-NOT-STORE"
    monkeypatch.setenv("CURATOR_TEST_KEY", secret)
    caplog.set_level(logging.DEBUG)
    server.script(Step.error(500), Step.error(401, message="Incorrect API key provided"), role="executor")
    await simulation(store, server, n=3, concurrency=1, api_key_env="CURATOR_TEST_KEY").run()
    assert server.requests[0].headers["authorization"] == f"Bearer {secret}"
    store.conn.execute("PRAGMA wal_checkpoint(FULL)")
    for path in Path(store.path).parent.glob("sim.db*"):
        assert secret.encode() not in path.read_bytes(), path
    export = "\n".join(json.dumps(r) for r in store.iter_records(status="all"))
    assert export and secret not in export
    assert secret not in caplog.text


async def test_toolset_generation_retries_with_the_validation_error(server):
    server.script(Step.answer("searchThings: search"), Step.answer('{"openapi": "3.0.0", "paths": {}}'),
                  role="designer")
    backend = OpenAIBackend(SimConfig(backend="openai", base_url=server.base_url, model="m").checked(), FAST)
    result = await generate_toolset(backend, "Things", "Search things.", attempts=3)
    assert result.error is None and result.attempts == 2 and [t.name for t in result.toolset.tools] == ["searchThings"]
    retry = [r for r in server.requests if r.role == "designer"][-1]
    assert "was rejected" in retry.body["messages"][-1]["content"]
    assert "no operations" in retry.body["messages"][-1]["content"]
    await backend.aclose()


async def test_scripted_toolset_generation_is_offline_and_valid():
    backend = ScriptedBackend(SimConfig())
    results = await generate_many(backend, [("Cat Facts", "Daily facts about cats."), ("Open Meteo", "Weather.")])
    for result in results:
        assert result.error is None and len(result.toolset.tools) >= 3
        assert result.toolset.source == "generated"
    assert results[0].toolset.tools[0].name == "searchCatFacts"
