"""Assistant spans on real chat templates: weighted tokens are exactly the assistant messages' output, or refused."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytest.importorskip("torch")

from real_templates import CASES, CHATML, Case, template_text  # noqa: E402
from training.data import Encoder  # noqa: E402
from training.errors import TrainingError  # noqa: E402
from training.tiny import byte_level_tokenizer  # noqa: E402
from training_fixtures import call, records, tool_result, trajectory  # noqa: E402


def tokenizer_for(case: Case, template: str | None = None):
    return byte_level_tokenizer(template or template_text(case), case.special, case.extra)


def two_calls_in_one_message() -> dict:
    """Content beside two calls in one message, and both answers."""
    record = trajectory(99, "Lima", "forecast")
    message = record["messages"][2]
    message["content"] = "Checking both."
    message["tool_calls"].append(call("getTime", {"city": "Lima"}, "second-call"))
    record["messages"].insert(4, tool_result({"time": "09:00"}, "second-call"))
    return record


def chat(i: int) -> dict:
    """No tools: for templates that render none; the first answer is masked."""
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": f"Say hi {i}."},
        {"role": "assistant", "content": "Hi there!", "weight": 0},
        {"role": "user", "content": "Again?"},
        {"role": "assistant", "content": f"Hello {i}, again.", "weight": 1},
    ]
    return {"id": f"chat{i}", "messages": messages, "tools": [], "meta": {"tags": []}}


def trajectories(case: Case) -> list[dict]:
    """Tool use: a masked failed call and its recovery, several turns, two calls at once; or plain chat."""
    if not case.tools:
        return [chat(i) for i in range(3)]
    return [*records(6, extra_turns=1), two_calls_in_one_message()]


def weighted_chars(example) -> np.ndarray:
    """Which characters of the render the loss sees, from the tokens' offsets and weights."""
    mask = np.zeros(len(example.text), dtype=bool)
    for (start, end), weight in zip(example.offsets, example.weights):
        if weight > 0:
            mask[start:end] = True
    return mask


def expected_chars(case: Case, record: dict, text: str) -> np.ndarray:
    """The oracle: the template's assistant outputs of the messages with weight >= 1."""
    spans = case.oracle(text)
    assistants = [m for m in record["messages"] if m["role"] == "assistant"]
    assert len(spans) == len(assistants), f"{case.name}: the oracle sees {len(spans)} assistant turns"
    mask = np.zeros(len(text), dtype=bool)
    for (start, end), message in zip(spans, assistants):
        if message.get("weight", 1):
            mask[start:end] = True
    return mask


def outcome(case: Case, template: str | None = None) -> tuple[int, int, list[str]]:
    """``(exact, silently_wrong, refusals)`` over the case's trajectories."""
    encoder = Encoder(tokenizer_for(case, template))
    exact, wrong, refused = 0, 0, []
    for record in trajectories(case):
        example = encoder.encode(record)
        if example.refused:
            refused.append(example.refused)
            continue
        got, want = weighted_chars(example), expected_chars(case, record, example.text)
        if np.array_equal(got, want):
            exact += 1
        else:
            wrong += 1
    return exact, wrong, refused


TRAINABLE = [c for c in CASES if c.name != "deepseek-v3"]


@pytest.mark.parametrize("case", TRAINABLE, ids=lambda c: c.name)
def test_weighted_tokens_are_exactly_the_assistant_outputs(case):
    exact, wrong, refused = outcome(case)
    assert wrong == 0, f"{wrong} silently wrong examples"
    assert exact >= 3
    # the only refusal is a template's own: Llama 3.x takes one call per message
    assert all("only supports single tool-calls" in r for r in refused), refused


def test_deepseek_v3_prompt_that_its_render_contradicts_is_refused_with_the_reason():
    """Its generation prompt ends in ``<think>\\n``, which its render of past turns never has."""
    case = next(c for c in CASES if c.name == "deepseek-v3")
    exact, wrong, refused = outcome(case)
    assert wrong == 0 and exact == 0
    assert refused and all("generation prompt does not match" in r for r in refused)


def test_mistral_ids_of_any_length_render_and_train():
    case = next(c for c in CASES if c.name.startswith("mistral"))
    record = trajectory(0, "Oslo", "forecast", with_error=True)
    assert {c["id"] for m in record["messages"] for c in m.get("tool_calls") or []} == {"c0", "c1"}
    example = Encoder(tokenizer_for(case)).encode(record)
    assert example.refused is None and example.trainable
    call_ids = re.findall(r'"id": "([^"]*)"', example.text)
    answer_ids = re.findall(r'"call_id": "([^"]*)"', example.text)
    assert len(call_ids) == 2 and call_ids == answer_ids
    assert all(len(i) == 9 and i.isalnum() for i in call_ids)
    assert np.array_equal(weighted_chars(example), expected_chars(case, record, example.text))


def test_mistral_tools_in_the_last_user_turn_are_never_weighted():
    case = next(c for c in CASES if c.name.startswith("mistral"))
    record = records(1, extra_turns=2)[0]
    example = Encoder(tokenizer_for(case)).encode(record)
    weighted = "".join(example.text[s:e] for (s, e), w in zip(example.offsets, example.weights) if w > 0)
    last_user = example.text.rindex("[INST]")
    assert example.text.index("[AVAILABLE_TOOLS]") > example.text.index("[TOOL_CALLS]")  # moved to the last turn
    assert example.text.index("[AVAILABLE_TOOLS]") < last_user
    assert "[AVAILABLE_TOOLS]" not in weighted and "getWeatherAlerts" not in weighted and "And the time" not in weighted


# A Hermes-style tool turn that renders differently when it is the last message
# (no newline before <|im_end|>), as the Hermes-2-Pro / Hermes-3 tool_use templates do.
HERMES_LOOP_LAST = """\
{{- bos_token }}<|im_start|>system
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}<|im_end|>
{%- for message in messages %}
{%- if message.role == "user" or message.role == "system" or (message.role == "assistant" and message.tool_calls is not defined) %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
{%- elif message.role == "assistant" %}
{{- '<|im_start|>' + message.role }}
{%- for tool_call in message.tool_calls %}
{{- '\\n<tool_call>\\n{"name": "' + tool_call.function.name + '", "arguments": ' + tool_call.function.arguments | tojson + '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == "tool" %}
{%- if loop.previtem and loop.previtem.role != "tool" %}{{- '<|im_start|>tool\\n' }}{%- endif %}
{{- '<tool_response>\\n' + message.content }}
{%- if not loop.last %}{{- '\\n</tool_response>\\n' }}{%- else %}{{- '\\n</tool_response>' }}{%- endif %}
{%- if not loop.last and loop.nextitem.role != "tool" %}{{- '<|im_end|>' }}{%- elif loop.last %}{{- '<|im_end|>' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""
HERMES = Case("hermes loop.last", "inline", "", {"bos_token": "<s>", "eos_token": "<|im_end|>", "pad_token": "<pad>"},
              ["<|im_start|>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"], CHATML)


def test_hermes_loop_last_tool_turn_does_not_weight_the_prompt():
    exact, wrong, refused = outcome(HERMES, HERMES_LOOP_LAST)
    assert (wrong, refused) == (0, []) and exact == len(trajectories(HERMES))
    encoder = Encoder(tokenizer_for(HERMES, HERMES_LOOP_LAST))
    example = encoder.encode(records(1)[0])
    after_tool = example.text.index("</tool_response>\n<|im_end|><|im_start|>assistant\n")
    header = slice(after_tool + len("</tool_response>"), after_tool + len("</tool_response>\n<|im_end|><|im_start|>assistant\n"))
    assert not weighted_chars(example)[header].any()


def test_a_template_that_raises_refuses_that_trajectory_with_its_own_message():
    gemma = next(c for c in CASES if c.name == "gemma3")
    encoder = Encoder(tokenizer_for(gemma))
    refused = encoder.encode(records(1)[0])
    assert refused.refused == "chat template refused trajectory t0: Conversation roles must alternate user/assistant/user/assistant/..."
    assert not refused.trainable
    kept, _ = encoder.encode_all([records(1)[0], chat(0)])
    assert [r["id"] for r in kept] == ["chat0"]
    assert encoder.report.refused == [("t0", refused.refused)]
    with pytest.raises(TrainingError) as caught:
        encoder.encode_all(records(2))
    message = str(caught.value)
    assert "\n" not in message and "every trajectory was refused (2)" in message
    assert "Conversation roles must alternate" in message


def test_cli_prints_the_templates_refusal_as_one_error_line(tmp_path, capsys):
    from training.__main__ import main

    gemma = next(c for c in CASES if c.name == "gemma3")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records(2)))
    code = main(["sft", "--data", str(data), "--chat-template", str(gemma.path()), "--output", str(tmp_path / "out"),
                 "--max-steps", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: every trajectory was refused (2); the first: chat template refused trajectory t0: ")
    assert "Traceback" not in "\n".join(err)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_piecewise_tokenization_equals_tokenizing_the_whole_render(case):
    tok = tokenizer_for(case)
    encoder = Encoder(tok)
    for record in trajectories(case):
        example = encoder.encode(record)
        if not example.text:
            continue
        whole = tok.backend_tokenizer.encode(example.text, add_special_tokens=False)
        assert example.input_ids.tolist() == whole.ids
        assert [tuple(o) for o in example.offsets.tolist()] == whole.offsets


def toy_render(messages: list[dict], add_generation_prompt: bool) -> str:
    """A toy template: ``<role>content|`` per message, the last two messages' text interleaved when asked."""
    parts = []
    for m in messages:
        if m.get("mix") and parts:
            previous = parts.pop()
            parts.append("".join(a + b for a, b in zip(previous, m["content"])))
        else:
            parts.append(m["content"])
    text = "".join(f"<{m['role']}>{p}|" for m, p in zip(messages, parts))
    return text + ("<assistant>" if add_generation_prompt else "")


@pytest.mark.parametrize("header", [None, "<assistant>"])
def test_locator_spans_and_refusals_on_a_toy_template(header):
    from training.spans import Locator, SpanError

    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                {"role": "user", "content": "ab"}, {"role": "assistant", "content": "cd", "mix": True},
                {"role": "assistant", "content": "..."}]
    text = toy_render(messages, False)
    locator = Locator(text, messages, toy_render, "|", header)
    span = locator.span(1)
    assert text[span.start : span.end] == "yo|"
    with pytest.raises(SpanError, match="interleaved with message 2's"):
        locator.span(3)
    with pytest.raises(SpanError, match="renders no text of its own"):
        locator.span(4)


def test_code_table_is_the_formula_for_every_character_pair_that_occurs():
    from training.spans import code_formula, codes_of

    rng = np.random.default_rng(0)
    points = np.concatenate([np.arange(200), [0x130, 0x17F, 0x212A, 0x1F600, 0x10FFFF]]).astype(np.uint32)
    before, after = np.repeat(points, len(points)), np.tile(points, len(points))
    assert np.array_equal(codes_of(before, after), code_formula(before, after))
    random_pairs = rng.integers(0, 0x110000, size=(2, 10_000)).astype(np.uint32)
    assert np.array_equal(codes_of(*random_pairs), code_formula(*random_pairs))
