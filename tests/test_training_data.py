"""Data preparation: templates, assistant spans, MAE masks, PKT key tokens, call parsing, curriculum."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from store.toolcalls import ToolCall, parse_openai_call  # noqa: E402
from training.curriculum import CurriculumOrder, stages  # noqa: E402
from training.data import IGNORE, Encoder, Renderer, rendered_texts  # noqa: E402
from training.templates import SPECIAL_TOKENS, TEMPLATES, parse_generation  # noqa: E402
from training.tiny import TinyConfig, build_tokenizer  # noqa: E402
from training.weights import key_weight  # noqa: E402
from training_fixtures import TOOLS, assistant_call, records, tool_result, trajectory  # noqa: E402

STYLES = list(TEMPLATES)


def trained_tokenizer(style: str):
    """The tiny tokenizer trained on rendered trajectories, as ``--base-model tiny`` builds it."""
    renderer = Renderer(TEMPLATES[style], SPECIAL_TOKENS[style])
    return build_tokenizer(TinyConfig(template=style), rendered_texts(records(16, extra_turns=1), renderer))


@pytest.fixture(scope="module", params=STYLES)
def tokenizer(request):
    return trained_tokenizer(request.param)


def labeled_spans(tok, example) -> list[str]:
    """The text of each run of consecutive labeled tokens."""
    spans, current = [], []
    for token, label in zip(example.input_ids.tolist(), example.labels.tolist()):
        if label == IGNORE:
            if current:
                spans.append(tok.decode(current))
                current = []
        else:
            current.append(token)
    if current:
        spans.append(tok.decode(current))
    return spans


def test_ids_match_apply_chat_template(tokenizer):
    for record in records(4, extra_turns=1):
        ids = tokenizer.apply_chat_template(record["messages"], tools=record["tools"], tokenize=True, return_dict=False)
        assert Encoder(tokenizer).encode(record).input_ids.tolist() == ids


def test_labels_cover_exactly_the_assistant_messages(tokenizer):
    record = records(1)[0]  # a failed call, the recovery call, the answer
    renderer = Renderer.of(tokenizer)
    example = Encoder(tokenizer, w_max=1).encode(record)
    spans = labeled_spans(tokenizer, example)
    assistants = [i for i, m in enumerate(record["messages"]) if m["role"] == "assistant"]
    expected = [renderer.completion(record["messages"][:i], record["messages"][i], record["tools"]) for i in assistants]
    assert len(spans) == len(expected) == 3
    for got, want in zip(spans, expected):
        assert got.strip() == want.strip()
    assert "tool_response" not in "".join(spans) and "Result:" not in "".join(spans)


def runs_of(mask: np.ndarray) -> list[np.ndarray]:
    """Index runs where ``mask`` holds."""
    idx = np.flatnonzero(mask)
    return np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1) if len(idx) else []


def test_mae_zeroes_the_masked_message_and_no_mae_keeps_it(tokenizer):
    record = records(1)[0]  # its first assistant message has weight 0
    masked = Encoder(tokenizer, w_max=1).encode(record)
    plain = Encoder(tokenizer, w_max=1, mae=False).encode(record)
    assert "town" in labeled_spans(tokenizer, masked)[0]
    labeled = masked.labels != IGNORE
    assert np.array_equal(labeled, plain.labels != IGNORE)
    first, *rest = runs_of(labeled)
    assert all(masked.weights[first] == 0)
    assert all(all(masked.weights[r] == 1) for r in rest)
    assert all(plain.weights[labeled] == 1)
    assert all(masked.weights[~labeled] == 0)


def _key_texts(tok, example) -> list[str]:
    return [tok.decode([int(example.input_ids[i])]).strip() for i in np.flatnonzero(example.weights > 1)]


def test_pkt_weights_the_first_and_diverging_tokens(tokenizer):
    forecast_history = [t for t in TOOLS if t["function"]["name"] in {"getWeatherForecast", "getWeatherHistory"}]
    record = trajectory(0, "Paris", "forecast")
    record["tools"] = forecast_history
    example = Encoder(tokenizer, w_max=9).encode(record)
    assert _key_texts(tokenizer, example) == ["get", "Forecast"]
    trainable = np.count_nonzero(example.weights)
    assert example.weights.max() == pytest.approx(key_weight(2, trainable, 9.0))
    assert example.weights.max() == pytest.approx(min(max((trainable - 2) / 2, 1), 9))

    history = trajectory(0, "Paris", "history")
    history["tools"] = forecast_history
    assert _key_texts(tokenizer, Encoder(tokenizer).encode(history)) == ["get", "History"]


def test_pkt_counts_every_tool_sharing_a_prefix(tokenizer):
    record = trajectory(0, "Paris", "forecast")  # getTime shares "get" and diverges at "Weather"
    assert _key_texts(tokenizer, Encoder(tokenizer).encode(record)) == ["get", "Weather", "Forecast"]


def test_pkt_off_with_w_max_1_and_never_on_masked_calls(tokenizer):
    record = records(1)[0]
    assert Encoder(tokenizer, w_max=1).encode(record).weights.max() == 1
    example = Encoder(tokenizer, w_max=9).encode(record)
    masked_call = labeled_spans(tokenizer, example)[0]
    assert "getWeather" in masked_call
    assert _key_texts(tokenizer, example).count("get") == 1  # only the recovery call's


def test_pkt_ignores_a_name_mentioned_in_prose(tokenizer):
    message = assistant_call("getWeatherHistory", {"city": "Oslo", "date": "2024-01-05"})
    message["content"] = "I will use getWeatherForecast now."
    record = trajectory(0, "Oslo", "history")
    record["messages"][2] = message
    texts = _key_texts(tokenizer, Encoder(tokenizer).encode(record))
    assert "History" in texts and "Forecast" not in texts


def test_max_length_truncates(tokenizer):
    example = Encoder(tokenizer, max_length=50).encode(records(1)[0])
    assert len(example.input_ids) == len(example.labels) == len(example.weights) == 50


@pytest.mark.parametrize("style", STYLES)
def test_generated_calls_parse_back_in_every_style(style):
    renderer = Renderer.of(build_tokenizer(TinyConfig(template=style)))
    two_calls = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            assistant_call("getWeatherForecast", {"city": "Lima", "days": 2})["tool_calls"][0],
            assistant_call("getTime", {"city": "Lima"}, call_id="c2")["tool_calls"][0],
        ],
    }
    context = records(1)[0]["messages"][:2]
    text = renderer.completion(context, two_calls, TOOLS)
    generation = parse_generation(text)
    assert generation.error is None
    expected = [parse_openai_call(c) for c in two_calls["tool_calls"]]
    assert [(c.name, c.arguments) for c in generation.calls] == [(c.name, c.arguments) for c in expected]
    answer = parse_generation(renderer.completion(context, {"role": "assistant", "content": "It is sunny."}, TOOLS))
    assert answer.calls == [] and answer.content == "It is sunny." and not answer.parse_error


def test_parse_generation_errors_and_answers():
    assert parse_generation('<tool_call>\n{"name": "getTime", "arguments": {"city": \n</tool_call>').parse_error
    assert parse_generation("Call: getTime {not json}").parse_error
    assert parse_generation('{"name": "", "parameters": {}}').parse_error
    ok = parse_generation('{"name": "getTime", "parameters": {"city": "Oslo"}}<|eot_id|>junk')
    assert ok.calls == [ToolCall("getTime", {"city": "Oslo"})]
    assert parse_generation("Hello there").calls == []


def test_tool_results_and_system_prompt_are_never_labeled(tokenizer):
    record = records(1)[0]
    record["messages"].insert(3, tool_result({"note": "getWeatherForecast"}, call_id="x"))
    spans = "".join(labeled_spans(tokenizer, Encoder(tokenizer).encode(record)))
    assert "note" not in spans and "helpful" not in spans


def test_curriculum_orders_easy_to_hard():
    easy = trajectory(0, "Oslo", "time")
    easy["tools"] = TOOLS[3:]
    medium = trajectory(1, "Oslo", "forecast")
    hard = trajectory(2, "Oslo", "forecast", with_error=True, extra_turns=2)
    rows = [hard, easy, medium]
    assert stages(rows) == [[1], [2], [0]]
    order = CurriculumOrder(stages(rows * 3), seed=1)
    seen = [rows[i % 3]["id"] for i in order]
    assert seen == ["t0"] * 3 + ["t1"] * 3 + ["t2"] * 3
    assert json.dumps(sorted(order)) == json.dumps(list(range(9)))


def test_truncation_is_reported_with_the_trained_tokens_it_cut(tokenizer):
    data = records(4, extra_turns=1)
    whole = Encoder(tokenizer).encode(data[0])
    first_trained = int(np.flatnonzero(whole.weights)[0])
    limit = first_trained + 3  # cuts into the first answer
    encoder = Encoder(tokenizer, max_length=limit)
    encoder.encode_all(data)
    cut = encoder.encode(data[0])
    assert cut.truncated and len(cut.input_ids) == limit
    assert cut.lost == whole.trainable - cut.trainable > 0
    assert data[0]["id"] in encoder.report.truncated and encoder.report.lost_tokens >= cut.lost
    assert f"losing {encoder.report.lost_tokens} trained tokens" in encoder.report.summary()
