"""Chat templates with tool support, and reading tool calls back out of generated text.

Three styles modelled on widely used templates, used by the tiny model and by
``--chat-template`` for a tokenizer that has none:

- ``chatml``: ChatML with Hermes/Qwen-style ``<tool_call>{json}</tool_call>`` blocks,
- ``llama3``: Llama-3.1 style, tools in the first user turn, a call as
  ``{"name": ..., "parameters": {...}}``, tool results in the ``ipython`` role,
- ``plain``: a plain-text transcript, a call as ``Call: name {json}``,
- ``compact``: ``chatml`` with the tools block cut to a line of tool names (the demo model's).

Training never parses these markers (it finds message and name tokens by
rendering prefixes); only evaluation and the GRPO reward need to read calls out
of free text, and :func:`parse_generation` reads all three shapes.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from store.toolcalls import CallParseError, ToolCall, parse_call

CHATML = """\
{%- if tools -%}
<|im_start|>system
{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}

{% endif %}# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif messages[0]['role'] == 'system' -%}
<|im_start|>system
{{ messages[0]['content'] }}<|im_end|>
{% endif -%}
{%- for message in messages -%}
{%- if message['role'] == 'system' and loop.first -%}
{%- elif message['role'] == 'assistant' -%}
<|im_start|>assistant
{% if message['content'] %}{{ message['content'] }}{% endif %}
{%- for call in message['tool_calls'] or [] %}{% if message['content'] or not loop.first %}{{ '\n' }}{% endif %}<tool_call>
{"name": "{{ call['function']['name'] }}", "arguments": {{ call['function']['arguments'] if call['function']['arguments'] is string else call['function']['arguments'] | tojson }}}
</tool_call>{% endfor %}<|im_end|>
{% elif message['role'] == 'tool' -%}
<|im_start|>user
<tool_response>
{{ message['content'] }}
</tool_response><|im_end|>
{% else -%}
<|im_start|>{{ message['role'] }}
{{ message['content'] }}<|im_end|>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant
{% endif -%}
"""

LLAMA3 = """\
{{- bos_token -}}
{%- if messages[0]['role'] == 'system' -%}
{%- set system = messages[0]['content'] -%}
{%- set rest = messages[1:] -%}
{%- else -%}
{%- set system = '' -%}
{%- set rest = messages -%}
{%- endif -%}
<|start_header_id|>system<|end_header_id|>

{% if tools %}Environment: ipython
{% endif %}{{ system }}<|eot_id|>
{%- for message in rest -%}
{%- if message['role'] == 'user' and loop.first and tools -%}
<|start_header_id|>user<|end_header_id|>

Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.

Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}. Do not use variables.

{% for tool in tools %}{{ tool | tojson(indent=4) }}

{% endfor %}{{ message['content'] }}<|eot_id|>
{%- elif message['role'] == 'assistant' -%}
<|start_header_id|>assistant<|end_header_id|>

{% if message['content'] %}{{ message['content'] }}{% endif %}
{%- for call in message['tool_calls'] or [] %}{% if message['content'] or not loop.first %}{{ '\n' }}{% endif %}{"name": "{{ call['function']['name'] }}", "parameters": {{ call['function']['arguments'] if call['function']['arguments'] is string else call['function']['arguments'] | tojson }}}{% endfor %}<|eot_id|>
{%- elif message['role'] == 'tool' -%}
<|start_header_id|>ipython<|end_header_id|>

{{ message['content'] }}<|eot_id|>
{%- else -%}
<|start_header_id|>{{ message['role'] }}<|end_header_id|>

{{ message['content'] }}<|eot_id|>
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<|start_header_id|>assistant<|end_header_id|>

{% endif -%}
"""

PLAIN = """\
{%- if messages[0]['role'] == 'system' -%}
System: {{ messages[0]['content'] }}
{% endif -%}
{%- if tools -%}
Tools:
{% for tool in tools %}- {{ tool['function']['name'] }}: {{ tool['function']['description'] }} Parameters: {{ tool['function']['parameters'] | tojson }}
{% endfor -%}
{%- endif -%}
{%- for message in messages -%}
{%- if message['role'] == 'system' and loop.first -%}
{%- elif message['role'] == 'assistant' -%}
Assistant:
{% if message['content'] %}{{ message['content'] }}{% endif %}
{%- for call in message['tool_calls'] or [] %}{% if message['content'] or not loop.first %}{{ '\n' }}{% endif %}Call: {{ call['function']['name'] }} {{ call['function']['arguments'] if call['function']['arguments'] is string else call['function']['arguments'] | tojson }}{% endfor %}{{ eos_token }}
{% elif message['role'] == 'tool' -%}
Result: {{ message['content'] }}
{% else -%}
{{ message['role'] | capitalize }}: {{ message['content'] }}
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
Assistant:
{% endif -%}
"""



def _compact_chatml() -> str:
    """ChatML with its tools block (instructions and one JSON schema a tool) cut to one line of tool names and
    one line showing the call format: the tiny demo model's context holds a whole trajectory at a fraction of
    the tokens."""
    start, end = CHATML.find("# Tools"), CHATML.find("</tool_call><|im_end|>")
    if start == -1 or end == -1 or "tool | tojson" not in CHATML[start:end]:
        raise RuntimeError("CHATML changed: update _compact_chatml()")
    # the line break is written as an expression: transformers renders with trim_blocks, which eats a newline
    # right after a block tag, and the last tool's name would run into "Call"
    compact = ("# Tools: {% for tool in tools %}{{ tool['function']['name'] }}{{ ', ' if not loop.last }}{% endfor %}"
               '{{ "\\n" }}Call a tool as <tool_call>{"name": ..., "arguments": {...}}')
    return CHATML[:start] + compact + CHATML[end:]


COMPACT = _compact_chatml()

TEMPLATES: dict[str, str] = {"chatml": CHATML, "llama3": LLAMA3, "plain": PLAIN, "compact": COMPACT}

# The special tokens each style needs; the tiny tokenizer adds them as whole tokens.
SPECIAL_TOKENS: dict[str, dict[str, str]] = {
    "chatml": {"bos_token": "<s>", "eos_token": "<|im_end|>", "pad_token": "<pad>"},
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<pad>"},
    "plain": {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"},
    "compact": {"bos_token": "<s>", "eos_token": "<|im_end|>", "pad_token": "<pad>"},
}
EXTRA_SPECIAL_TOKENS: dict[str, list[str]] = {
    "chatml": ["<|im_start|>"],
    "llama3": ["<|start_header_id|>", "<|end_header_id|>"],
    "plain": [],
    "compact": ["<|im_start|>"],
}


def resolve_template(name_or_path: str) -> str:
    """A template by style name, or the Jinja text of a file."""
    if name_or_path in TEMPLATES:
        return TEMPLATES[name_or_path]
    path = Path(name_or_path)
    if path.is_file():
        return path.read_text()
    raise ValueError(f"unknown chat template {name_or_path!r}: use one of {', '.join(TEMPLATES)} or a Jinja file")


@dataclass
class Generation:
    """What a model said: its text answer, the calls it made, or why they could not be read."""

    content: str
    calls: list[ToolCall] = field(default_factory=list)
    error: str | None = None

    @property
    def parse_error(self) -> bool:
        return self.error is not None


_TOOL_CALL_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_PLAIN_CALL = re.compile(r"^\s*Call:\s*([^\s{]*)\s*(.*)$")
_STOP_MARKERS = ("<|im_end|>", "<|eot_id|>", "</s>", "<|im_start|>", "<|start_header_id|>", "<|end_of_text|>")


def parse_generation(text: str) -> Generation:
    """Read the tool calls out of a completion in any of the three styles.

    Text with no call-shaped part is a plain answer; a call-shaped part that
    cannot be read (broken JSON, no name) makes the whole generation a parse error.
    """
    text = _cut_at_stop(text)
    if "<tool_call>" in text:
        blocks = _TOOL_CALL_BLOCK.findall(text)
        content = text[: text.index("<tool_call>")].strip()
        return _calls_from_json(blocks, content, args_keys=("arguments", "parameters"))
    lines = text.splitlines()
    if any(_PLAIN_CALL.match(line) for line in lines):
        return _plain_calls(lines)
    json_lines = [line for line in lines if line.strip().startswith("{")]
    if json_lines:
        content = "\n".join(line for line in lines if not line.strip().startswith("{")).strip()
        return _calls_from_json(json_lines, content, args_keys=("parameters", "arguments"))
    return Generation(content=text.strip())


def _cut_at_stop(text: str) -> str:
    cut = len(text)
    for marker in _STOP_MARKERS:
        at = text.find(marker)
        if at != -1:
            cut = min(cut, at)
    return text[:cut]


def _calls_from_json(blocks: list[str], content: str, args_keys: tuple[str, ...]) -> Generation:
    calls = []
    for block in blocks:
        try:
            obj = json.loads(block.strip())
        except json.JSONDecodeError as exc:
            return Generation(content, error=f"call is not valid JSON: {exc}")
        if not isinstance(obj, dict):
            return Generation(content, error="call is not a JSON object")
        arguments = next((obj[k] for k in args_keys if k in obj), None)
        try:
            calls.append(parse_call(obj.get("name"), arguments))
        except CallParseError as exc:
            return Generation(content, error=str(exc))
    return Generation(content, calls)


def _plain_calls(lines: list[str]) -> Generation:
    calls, content = [], []
    for line in lines:
        match = _PLAIN_CALL.match(line)
        if not match:
            content.append(line)
            continue
        try:
            calls.append(parse_call(match.group(1), match.group(2).strip() or None))
        except CallParseError as exc:
            return Generation("\n".join(content).strip(), error=str(exc))
    return Generation("\n".join(content).strip(), calls)
