"""The JSONL export shaped as Axolotl's ``type: chat_template`` reads it, one trajectory a line.

The lines are the canonical JSONL's (``jsonl.export_records``: the same records,
derived correction examples included, ``"weight": 0|1`` on every assistant
message for ``message_field_training: weight``), with two differences, each
for a check in Axolotl's ``ChatTemplateStrategy``
(``src/axolotl/prompt_strategies/chat_template.py``):

- ``tools`` is a list of OpenAI function tools, not JSON text (the dataset
  schema documents ``field_tools`` as a ``list[dict]``, and older releases
  refuse anything else), each tool's ``parameters`` as JSON text, which
  ``_get_tools`` decodes: so every line has one Arrow schema whatever the tools'
  parameters are.
- ``transform_message`` decodes each call's ``arguments`` with ``json.loads``
  and raises on one that is not JSON, stopping the whole preprocessing. A call
  the model got wrong that way (masked, ``parse_error``) is written with its
  text as a JSON string, which decodes back to that text; blank arguments
  become ``{}``, as curator's own trainer renders them.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

from ..db import Store
from ..toolcalls import function_of
from .jsonl import export_records, once_per_list, record_line
from .summary import ExportSummary


def export_axolotl(store: Store, out: str | os.PathLike[str], status: str = "accepted") -> ExportSummary:
    """Write what ``export_jsonl`` writes, in the shape Axolotl's chat_template strategy loads."""
    converted: dict[int, tuple[list[Any], list[dict[str, Any]]]] = {}

    def line_of(record: dict[str, Any], encoded_tools: dict[int, tuple[list[Any], str]]) -> str:
        tools = once_per_list(converted, record["tools"], axolotl_tools)
        return record_line({**record, "messages": [_message(m) for m in record["messages"]], "tools": tools},
                           encoded_tools, text_fields=("meta",))

    return export_records(store, out, status, line_of)


def axolotl_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI function tools with each ``parameters`` schema as JSON text."""
    return [{"type": "function", "function": _function(function_of(t))} for t in tools]


def _function(function: Mapping[str, Any]) -> dict[str, Any]:
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return {**function, "parameters": json.dumps(parameters, ensure_ascii=False)}


def _message(message: dict[str, Any]) -> dict[str, Any]:
    calls = message.get("tool_calls")
    if not calls:
        return message
    return {**message, "tool_calls": [_call(c) for c in calls]}


def _call(call: dict[str, Any]) -> dict[str, Any]:
    """The call with ``arguments`` that ``json.loads`` takes: as they are when they are JSON."""
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str) or not arguments.strip():
        arguments = "{}"
    elif not _is_json(arguments):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return call if arguments == function.get("arguments") else {**call, "function": {**function,
                                                                                     "arguments": arguments}}


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True
