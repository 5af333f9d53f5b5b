"""The compiled template's shortcuts render exactly what ``transformers`` renders."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from jinja2.runtime import LoopContext  # noqa: E402
from transformers.utils.chat_template_utils import _compile_jinja_template  # noqa: E402

from test_spans import chat  # noqa: E402
from training.compiled import compiled, fast_getattr  # noqa: E402
from training.data import _adaptations, template_messages, template_tools  # noqa: E402
from training.templates import TEMPLATES  # noqa: E402
from training_fixtures import records  # noqa: E402

TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}


def template_files() -> list[Path]:
    trl = pytest.importorskip("trl")
    return sorted((Path(trl.__file__).parent / "chat_templates").glob("*.jinja"))


def outcome(render, **kwargs) -> str:
    """The text, or the kind of error the template raised."""
    try:
        return render(**kwargs)
    except Exception as exc:  # what the template raises is part of its behaviour
        return f"raised {type(exc).__name__}"


def conversations() -> list[tuple[list, list | None]]:
    rows = [*records(4, extra_turns=1), chat(0)]
    out = []
    for row in rows:
        tools = template_tools(row["tools"])
        out += [(variant, tools) for variant in _adaptations(template_messages(row["messages"]))]
    return out


@pytest.mark.parametrize("path", template_files(), ids=lambda p: p.name)
def test_every_trl_template_renders_the_same_text(path):
    source = path.read_text()
    theirs, ours = _compile_jinja_template(source), compiled(source).template
    for messages, tools in conversations():
        for prompt in (False, True):
            kwargs = dict(messages=messages, tools=tools, add_generation_prompt=prompt, **TOKENS)
            assert outcome(ours.render, **kwargs) == outcome(theirs.render, **kwargs)


@pytest.mark.parametrize("style", list(TEMPLATES))
def test_the_tiny_styles_render_the_same_text(style):
    theirs, ours = _compile_jinja_template(TEMPLATES[style]), compiled(TEMPLATES[style]).template
    for messages, tools in conversations():
        kwargs = dict(messages=messages, tools=tools, **TOKENS)
        assert outcome(ours.render, **kwargs) == outcome(theirs.render, **kwargs)


@pytest.mark.parametrize("source, text", [
    ("{% set x = 1 %}{% generation %}{% set x = 2 %}{{ x }}{% endgeneration %}{{ x }}", "21"),  # sets stay inside
    ("{% for m in ms %}{% generation %}{{ loop.index }}{{ m }}{% endgeneration %}{% endfor %}", "1a2b"),
    ("{% set ns = namespace(n=0) %}{% generation %}{% set ns.n = 5 %}{% endgeneration %}{{ ns.n }}", "5"),
    ("{% generation %}{{ caller is defined }}{{ varargs }}{% endgeneration %}", "False()"),  # a macro's own names
])
def test_generation_blocks_render_as_transformers_renders_them(source, text):
    assert compiled(source).template.render(ms=["a", "b"]) == text
    assert _compile_jinja_template(source).render(ms=["a", "b"]) == text


def test_fast_getattr_gives_the_sandboxes_answers():
    environment = _compile_jinja_template("{{ x }}").environment
    sandboxed = environment.getattr
    fast = fast_getattr(sandboxed, environment.undefined)
    message = {"role": "user", "content": "hi", "items": "shadowed"}
    loop = LoopContext(iter(["a", "b"]), environment.undefined)
    next(loop)
    for obj, name in [(message, "role"), (message, "tool_calls"), (message, "items"), (message, "keys"),
                      (message, "__class__"), (loop, "index0"), (loop, "last"), (loop, "nextitem"),
                      (loop, "previtem"), (loop, "cycle"), (loop, "_after")]:
        want, got = sandboxed(obj, name), fast(obj, name)
        assert type(got) is type(want) and str(got) == str(want), name
