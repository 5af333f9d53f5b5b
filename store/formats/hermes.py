"""Import NousResearch's Hermes function-calling v1 (``NousResearch/hermes-function-calling-v1``).

A record is ShareGPT: ``{"id", "conversations": [{"from", "value"}], "category", "subcategory", "task"}``
(some files add ``tools``), with turns from ``system``, ``human``, ``gpt`` and ``tool``. The files are JSON
arrays (``func-calling-singleturn.json``, ``func-calling.json``, ``glaive-function-calling-5k.json``, and
the ``json-mode-*`` files, whose conversations have no tools); JSON Lines import the same.

- **system**: the tools are the ``<tools>…</tools>`` element of the system turn (a list of OpenAI function
  tools, or tools one after another), else the record's ``tools`` field. They become the trajectory's toolset
  (``tools-<digest>``, one per distinct list). The Hermes tool prompt around them (from the start of the
  turn to the end of its ``<tool_call>`` example, or to ``</tools>`` when it has none) is Hermes's rendering
  of the tools and of its call syntax, which the chat template replaces with its own, so it is dropped; text
  after it stays the system message. A system turn without ``<tools>`` (JSON mode) is kept as it is.
- **human** is a user message; **gpt** an assistant message whose ``<tool_call>…</tool_call>`` blocks are
  its calls (several: parallel calls, ``call_1``, ``call_2`` … across the conversation) and whose other text
  is its content.
- **tool**: each ``<tool_response>…</tool_response>`` block (or the whole turn when it has none) is one tool
  message, answering the call it names (``{"name": …, "content": …}``, whose ``content`` becomes the
  message's) or else the next unanswered call.

Calls and tools are written in JSON in some releases and as Python literals in others
(``{'arguments': {'flexible_cancellation': True}, 'name': 'search_flights'}``); both are read
(``chat_text.decode_value``: ``ast.literal_eval``, literals only). Some blocks are wrapped in a literal
backslash-n (``<tool_call>\\n{…}\\n</tool_call>`` as text), which is taken off. In the structured-extraction
records the call's ``name`` sits inside its ``arguments``; when the top level has none and the one inside
names a tool of the record, it is taken out (and noted in ``meta.repairs``), and the call is then flagged
for what it is: arguments that do not fit the tool. A turn whose calls cannot all be read is kept as text
and flagged ``parse_error`` after the import.

The record's ``id`` (not unique across the files), ``category``, ``subcategory`` and ``task`` are kept in
the trajectory's meta; the trajectory id derives from the whole record, so importing a file again skips
what it imported before. There are no gold items.
"""
from __future__ import annotations

import os
import re
from typing import Any

from ..db import Store
from ..records import Tool, Trajectory
from .chat_text import Conversation, decode_value, distinct_tools, function_tool, json_string, split_objects
from .files import json_type
from .importing import Imported, read_trajectories, write_imported
from .summary import ImportSummary

ROLES = ("system", "human", "gpt", "tool")
_TOOLS = re.compile(r"<tools>(.*?)</tools>", re.DOTALL)
_CALL_OPEN, _CALL_CLOSE = "<tool_call>", "</tool_call>"
_RESPONSE = re.compile(r"<tool_response>(.*?)</tool_response>", re.DOTALL)
#: Whitespace and literal backslash-n (as text) around a block's body.
_EDGES = re.compile(r"\A(?:\s|\\n)+|(?:\s|\\n)+\Z")
_META = ("id", "category", "subcategory", "task")


def import_hermes(store: Store, path: str | os.PathLike[str]) -> ImportSummary:
    """Read the whole file, then write it in one transaction (a bad record writes nothing)."""
    return write_imported(store, read_hermes(path))


def looks_like(record: dict[str, Any]) -> bool:
    """ShareGPT turns from system/human/gpt/tool with a Hermes mark: ``<tools>`` or ``<schema>`` in the
    system turn, a ``<tool_call>`` in a gpt turn, or a tool turn.

    Not a ToolACE record (a top-level ``system`` string, turns from user/assistant/tool), not LLaMA-Factory's
    ShareGPT (``function_call``/``observation`` turns) and not curator's own lines (``messages``).
    """
    conversations = record.get("conversations")
    if isinstance(record.get("system"), str) or not isinstance(conversations, list) or not conversations:
        return False
    if not all(isinstance(t, dict) and t.get("from") in ROLES and isinstance(t.get("value"), str)
               for t in conversations):
        return False
    return any((t["from"] == "system" and ("<tools>" in t["value"] or "<schema>" in t["value"]))
               or (t["from"] == "gpt" and _CALL_OPEN in t["value"]) or t["from"] == "tool"
               for t in conversations)


def read_hermes(path: str | os.PathLike[str]) -> Imported:
    return read_trajectories(path, trajectory_from_record)


def trajectory_from_record(record: dict[str, Any], imported: Imported, source: str) -> Trajectory:
    """One record as a trajectory (its toolset added to ``imported``); ValueError names the bad turn or field."""
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise ValueError("a Hermes record needs a non-empty 'conversations' array")
    for number, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise ValueError(f"turn {number} must be an object with a 'value' string")
        if turn.get("from") not in ROLES:
            raise ValueError(f"turn {number}: 'from' must be one of {', '.join(ROLES)}, got {turn.get('from')!r}")
    tools, duplicates = distinct_tools(_record_tools(record, turns))
    names = {t.name for t in tools}
    conversation = Conversation()
    repairs: list[str] = []
    for turn in turns:
        text = turn["value"]
        if turn["from"] == "system":
            rest = system_text(text)
            if rest:
                conversation.system(rest)
        elif turn["from"] == "human":
            conversation.user(text)
        elif turn["from"] == "gpt":
            _assistant(conversation, text, names, repairs)
        else:
            for name, content in responses(text):
                conversation.tool(content, name)
    meta: dict[str, Any] = {key: record[key] for key in _META if isinstance(record.get(key), str)}
    if repairs:
        meta["repairs"] = repairs
    if duplicates:
        meta["duplicate_tools"] = duplicates
    return conversation.trajectory("hermes", record, imported.toolset_for(tools, source) if tools else None, meta)


def _record_tools(record: dict[str, Any], turns: list[dict[str, Any]]) -> list[Tool]:
    """The tools of the system turn's ``<tools>`` element, else of the record's ``tools`` field."""
    for turn in turns:
        match = _tools_element(turn["value"]) if turn["from"] == "system" else None
        if match is not None:
            return _tools(match.group(1), "the <tools> element")
    field = record.get("tools")
    if isinstance(field, list):
        return [function_tool(d, f"tool {i + 1}") for i, d in enumerate(field)]
    if isinstance(field, str) and field.strip():
        return _tools(field, "'tools'")
    if field is not None and field != "":
        raise ValueError(f"'tools' must be an array or a string, got {json_type(field)}")
    return []


def _tools(text: str, what: str) -> list[Tool]:
    """Tools written as one list, one tool, or tools one after another (JSON or Python literals)."""
    if not text.strip():
        return []
    try:
        value = decode_value(text)
    except ValueError:
        parts = split_objects(text)
        if parts is None:
            raise ValueError(f"{what} is neither JSON nor Python literals") from None
        try:
            value = [decode_value(p) for p in parts]
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None
    definitions = value if isinstance(value, list) else [value]
    return [function_tool(d, f"{what}, tool {i + 1}") for i, d in enumerate(definitions)]


def _tools_element(text: str) -> re.Match[str] | None:
    """The first ``<tools>…</tools>`` that holds something: the prompt's own prose names the empty pair
    (``signatures within <tools> </tools> XML tags``) before the element itself."""
    return next((m for m in _TOOLS.finditer(text) if m.group(1).strip()), None)


def system_text(text: str) -> str:
    """A system turn less its Hermes tool prompt: what follows the tool-call example after the tools (the
    last ``</tool_call>``), or the tools themselves; a turn without tools is kept whole."""
    match = _tools_element(text)
    if match is None:
        return text.strip()
    example = text.rfind(_CALL_CLOSE, match.end())
    end = match.end() if example == -1 else example + len(_CALL_CLOSE)
    return text[end:].strip()


def split_calls(text: str) -> tuple[str | None, list[str]]:
    """An assistant turn's text outside its ``<tool_call>`` blocks (None when blank), and the blocks' bodies;
    a block left open runs to the end of the turn."""
    outside: list[str] = []
    bodies: list[str] = []
    position = 0
    while True:
        start = text.find(_CALL_OPEN, position)
        if start == -1:
            outside.append(text[position:])
            break
        outside.append(text[position:start])
        end = text.find(_CALL_CLOSE, start)
        body_end = len(text) if end == -1 else end
        bodies.append(text[start + len(_CALL_OPEN):body_end])
        position = len(text) if end == -1 else end + len(_CALL_CLOSE)
    content = "".join(outside).strip()
    return content or None, bodies


def parse_call(body: str, names: set[str]) -> tuple[str, str, bool] | None:
    """``(name, JSON arguments, repaired)`` from a ``<tool_call>`` body, or None when it cannot be read.

    ``repaired``: the name was inside the arguments (and names one of ``names``), and was taken out.
    """
    try:
        call = decode_value(_EDGES.sub("", body))
    except ValueError:
        return None
    if not isinstance(call, dict):
        return None
    name, arguments, repaired = call.get("name"), call.get("arguments"), False
    if isinstance(arguments, str):
        try:
            arguments = decode_value(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    if name is None and isinstance(arguments.get("name"), str) and arguments["name"] in names:
        name, arguments, repaired = arguments["name"], {k: v for k, v in arguments.items() if k != "name"}, True
    if not isinstance(name, str) or not name.strip():
        return None
    return name.strip(), json_string(arguments), repaired


def _assistant(conversation: Conversation, text: str, names: set[str], repairs: list[str]) -> None:
    content, bodies = split_calls(text)
    if not bodies:
        conversation.assistant(content)
        return
    calls = [parse_call(body, names) for body in bodies]
    if any(call is None for call in calls):
        conversation.unparsed(text)
        return
    index = len(conversation.messages)
    for name, _, repaired in calls:  # type: ignore[misc]
        if repaired:
            repairs.append(f"message {index}: the name of the call to {name} was inside its arguments")
    conversation.assistant(content, [(name, arguments) for name, arguments, _ in calls])  # type: ignore[misc]


def responses(text: str) -> list[tuple[str | None, str]]:
    """``(name, content)`` per ``<tool_response>`` block of a tool turn (the whole turn when it has none).

    A block holding ``{"name": …, "content": …}`` gives that name and content (a non-string content as
    JSON); any other block is the content as written, with no name.
    """
    bodies = _RESPONSE.findall(text) or [text]
    found = []
    for body in bodies:
        body = _EDGES.sub("", body)
        try:
            value = decode_value(body)
        except ValueError:
            value = None
        if (isinstance(value, dict) and "content" in value and isinstance(value.get("name"), str)
                and set(value) <= {"name", "content", "tool_call_id"}):
            content = value["content"]
            found.append((value["name"], content if isinstance(content, str) else json_string(content)))
        else:
            found.append((None, body))
    return found
