"""The constant generation prompt: proven from the template's code, and the spans it finds are the full method's."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

pytest.importorskip("torch")

from real_templates import CASES  # noqa: E402
from test_spans import HERMES, HERMES_LOOP_LAST, chat, tokenizer_for, trajectories  # noqa: E402
from training.data import Renderer, template_messages, template_tools  # noqa: E402
from training.spans import SpanError, after_header, prompt_cut  # noqa: E402
from training.templates import SPECIAL_TOKENS, TEMPLATES  # noqa: E402
from training_fixtures import records  # noqa: E402

TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}
LOOP = "{% for m in messages %}{{ m.content }}{% endfor %}"


def header_of(template: str) -> str | None:
    return Renderer(template, TOKENS).header


@pytest.mark.parametrize("template, header", [
    (LOOP + "{% if add_generation_prompt %}<|assistant|>{% endif %}", "<|assistant|>"),
    (LOOP + "{% if add_generation_prompt %}{{ bos_token }}A:{% if think is defined %}<t>{% endif %}{% endif %}", "<s>A:"),
    (LOOP, None),  # no prompt at all: rendered per message
    (LOOP + "{% if add_generation_prompt %}A:{% else %}{{ eos_token }}{% endif %}", None),  # Phi: else differs
    (LOOP + "{% if add_generation_prompt %}A:{% endif %}.", None),  # text after it
    ("{% set g = add_generation_prompt %}" + LOOP + "{% if add_generation_prompt %}A:{% endif %}", None),
    ("{% set ns = namespace(t=false) %}" + LOOP + "{% if add_generation_prompt %}{% if ns.t %}T{% endif %}A:{% endif %}",
     None),  # reads state
    ("{% set x = 'X' %}" + LOOP + "{% if add_generation_prompt %}{{ x }}{% endif %}", None),  # an assigned name
    (LOOP + "{% if add_generation_prompt %}{{ self }}{% endif %}", None),  # the template itself
    (LOOP + "{% if add_generation_prompt %}{{ messages | length }}{% endif %}", None),  # a message-dependent filter
    (LOOP + "{% if add_generation_prompt and messages %}A:{% endif %}", None),  # a compound test
])
def test_the_header_is_proven_only_from_a_last_pure_prompt_statement(template, header):
    assert header_of(template) == header


def template_files() -> list[Path]:
    trl = pytest.importorskip("trl")
    return sorted((Path(trl.__file__).parent / "chat_templates").glob("*.jinja"))


@pytest.mark.parametrize("path", [*template_files(), *(c.path() for c in CASES if c.where == "fixture")],
                         ids=lambda p: p.name)
def test_a_proven_header_is_what_every_prompt_appends(path):
    renderer = Renderer(path.read_text(), {**TOKENS, "pad_token": "<pad>"})
    if renderer.header is None:
        pytest.skip("no constant header: prompts are rendered per message")
    checked = 0
    no_system = {**chat(1), "messages": chat(1)["messages"][1:]}  # for templates that take no system turn
    for record in [*records(3, extra_turns=1), chat(0), no_system]:
        messages, tools = template_messages(record["messages"]), template_tools(record["tools"])
        for i in range(1, len(messages) + 1):
            try:
                context = renderer.render(messages[:i], tools)
            except Exception:  # the template refuses this prefix either way
                continue
            assert renderer.render(messages[:i], tools, add_generation_prompt=True) == context + renderer.header
            checked += 1
    assert checked


def spans(renderer: Renderer, record: dict) -> list:
    """Each assistant message's span or refusal reason, as the encoder locates it."""
    text, messages = renderer.conversation(template_messages(record["messages"]), template_tools(record["tools"]))
    locator = renderer.locator(text, messages, template_tools(record["tools"]))
    out = []
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            try:
                out.append(locator.span(i))
            except SpanError as exc:
                out.append(str(exc))
    return out




@pytest.mark.parametrize("case", [*CASES, HERMES], ids=lambda c: c.name)
def test_spans_from_the_header_are_the_spans_from_rendered_prompts(case):
    tok = tokenizer_for(case, HERMES_LOOP_LAST if case is HERMES else None)
    fast, full = Renderer.of(tok), Renderer.of(tok)
    full.header = None
    for record in trajectories(case):
        try:
            expected = spans(full, record)
        except Exception as exc:  # the template refuses the conversation: both refuse alike
            with pytest.raises(type(exc)):
                spans(fast, record)
            continue
        assert spans(fast, record) == expected


@pytest.mark.parametrize("style", list(TEMPLATES))
def test_tiny_styles_render_no_prompt_per_message(style, monkeypatch):
    renderer = Renderer(TEMPLATES[style], SPECIAL_TOKENS[style])
    assert renderer.header
    record = records(1, extra_turns=2)[0]
    calls = []
    render = renderer.render
    monkeypatch.setattr(renderer, "render", lambda *a, **k: calls.append(a) or render(*a, **k))
    assert all(not isinstance(s, str) for s in spans(renderer, record))
    assert len(calls) == 2  # the conversation and its perturbed twin


@pytest.mark.parametrize("run, gap, cut", [
    ("ok", "</r><|im_end|>\n<|im_start|>assistant\n<c>", len("</r><|im_end|>\n<|im_start|>assistant\n")),
    ("ok", "<|im_start|>assistant\n", len("<|im_start|>assistant\n")),
    ("ok", "</r>\n<c>", None),  # no header in the gap
    ("ok", "<|im_start|>assistant\n<|im_start|>assistant\n", None),  # twice: ambiguous
    ("x<|im_start|>assistant", "\n<|im_start|>assistant\n", None),  # could also end inside the run
    ("", "<|im_start|>assistant\n", None),  # nothing before: the empty cut fits too
])
def test_after_header_answers_only_when_one_cut_is_possible(run, gap, cut):
    assert after_header(run, gap, "<|im_start|>assistant\n") == cut


def test_overlapping_occurrences_are_ambiguous():
    assert after_header("ok", "xaaa", "aa") is None


def test_after_header_agrees_with_the_rendered_prompt_whatever_the_context():
    """The proof, checked by brute force on small strings: whenever ``after_header`` answers,
    comparing the rendered prompt ``context + header`` (any context) finds the same cut."""
    rng = random.Random(0)
    text = lambda n: "".join(rng.choice("ab<") for _ in range(rng.randint(0, n)))  # noqa: E731
    answered = 0
    for _ in range(40_000):
        header, run, gap = text(4) or "a", text(6), text(8)
        context = text(6) + rng.choice(["", run + gap[: rng.randint(0, len(gap))]])
        cut = after_header(run, gap, header)
        if cut is not None:
            answered += 1
            assert prompt_cut(run, gap, context + header, lambda: context) == cut, (run, gap, header, context)
    assert answered > 1000
