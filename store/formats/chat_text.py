"""What the importers of chat transcripts share: values written as JSON or as Python literals, function
definitions, and a conversation whose calls get ids and whose tool answers find their calls.

Published tool-calling sets write calls and tools as text inside the turns (Glaive's ``<functioncall>``,
Hermes's ``<tool_call>``), in JSON or in Python's literal syntax (``{'name': 'f', 'flag': True}``).
:func:`decode_value` reads either: JSON through ``store.safe_json``, else ``ast.literal_eval``, which
evaluates literals only (no names, calls or operators); either way the value must be plain JSON data
(:func:`plain`): objects with string keys, arrays, strings, finite numbers, booleans and null, nested
no deeper than ``safe_json.MAX_DEPTH``, no lone surrogate. A tuple, set, bytes or complex number is not
JSON data and is refused, never converted.

A turn whose calls cannot all be read is imported as text: the assistant message keeps the turn as it is in
``content`` and in ``raw``, so the auto-flagger tags it ``parse_error`` (masked by default) and an annotator
can correct it; nothing is guessed.
"""
from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..records import Message, Tool, Trajectory, dumps
from ..safe_json import MAX_DEPTH, loads
from .importing import content_id
from .schema_types import schema_problem

_SURROGATE = re.compile("[\ud800-\udfff]")
_DECODER = json.JSONDecoder()


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` when it is plain JSON data, else ValueError saying what is not."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} is not a JSON number")
        return value
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise ValueError("a string holds a lone surrogate (\\ud800-\\udfff), which is not text")
        return value
    if isinstance(value, list):
        for item in value:
            plain(item, depth + 1)
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"the key {key!r} is not a string")
            plain(key, depth + 1)
            plain(item, depth + 1)
        return value
    raise ValueError(f"a {type(value).__name__} is not JSON data")


def decode_json(text: str) -> Any:
    """``text`` as JSON (``safe_json.loads``), checked to be plain JSON data; ValueError otherwise."""
    try:
        return plain(loads(text))
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from None


def decode_value(text: str) -> Any:
    """``text`` as JSON, else as a Python literal (``{'a': True, 'b': None}``); ValueError when it is neither
    or its value is not plain JSON data."""
    try:
        return decode_json(text)
    except ValueError:
        pass
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError("neither JSON nor a Python literal") from None
    return plain(value)


def json_prefix(text: str, start: int) -> tuple[Any, int] | None:
    """The JSON value that begins at ``text[start]`` and the index after it, or None when none does."""
    try:
        value, end = _DECODER.raw_decode(text, start)
        return plain(value), end
    except (json.JSONDecodeError, RecursionError, ValueError):
        return None


def split_objects(text: str) -> list[str] | None:
    """The top-level ``{…}`` objects of ``text``, written in JSON or Python quoting, when nothing but
    whitespace, commas and one enclosing ``[ ]`` lies around them; else None.

    Braces inside strings (``'…'`` or ``"…"``, with backslash escapes) do not count.
    """
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    objects: list[str] = []
    depth, start, quote, escaped = 0, 0, "", False
    for index, char in enumerate(body):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "'\"":
            if depth == 0:
                return None
            quote = char
        elif char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                return None
            if depth == 0:
                objects.append(body[start:index + 1])
        elif depth == 0 and not (char.isspace() or char == ","):
            return None
    return objects if depth == 0 and not quote and objects else None


def function_tool(definition: Any, where: str) -> Tool:
    """One function definition, OpenAI-wrapped (``{"type": "function", "function": {…}}``) or bare
    (``{"name", "description", "parameters"}``), as a ``Tool``; ValueError naming ``where`` when it is not one,
    or when its parameters are not a JSON schema (the call check could not use them)."""
    if not isinstance(definition, dict):
        raise ValueError(f"{where} is not an object")
    function = definition.get("function", definition)
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"].strip():
        raise ValueError(f"{where} has no function name")
    name = function["name"]
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise ValueError(f"{where} ({name}): 'parameters' must be an object")
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise ValueError(f"{where} ({name}): 'description' must be a string")
    problem = schema_problem(parameters or {})
    if problem:
        raise ValueError(f"{where} ({name}): parameters are {problem}")
    return Tool(name, description or "", parameters or {"type": "object", "properties": {}})


def distinct_tools(tools: list[Tool]) -> tuple[list[Tool], list[dict[str, Any]]]:
    """``tools`` with each name once (the first definition), and the later definitions of a name that differ
    from the first (as OpenAI tools), which a toolset cannot hold beside it. A repeat equal to the first is
    dropped silently: it says nothing new."""
    kept: dict[str, Tool] = {}
    dropped: list[dict[str, Any]] = []
    for tool in tools:
        first = kept.setdefault(tool.name, tool)
        if first is not tool and first != tool:
            dropped.append(tool.to_openai())
    return list(kept.values()), dropped


def json_string(value: Any) -> str:
    """A decoded value as JSON text, as ``ToolCall.to_openai`` writes call arguments."""
    return json.dumps(value, ensure_ascii=False)


@dataclass
class Conversation:
    """Messages as a transcript's turns arrive: calls numbered ``call_1``, ``call_2`` … across the
    conversation, and each tool answer paired with a call of the assistant message just before it."""

    messages: list[Message] = field(default_factory=list)
    calls: int = 0
    #: The unanswered calls of the last assistant message, as ``(id, name)``.
    pending: list[tuple[str, str]] = field(default_factory=list)

    def system(self, text: str) -> None:
        self.messages.append(Message("system", text))

    def user(self, text: str) -> None:
        self.pending = []
        self.messages.append(Message("user", text))

    def assistant(self, content: str | None, calls: list[tuple[str, str]] = ()) -> None:
        """An assistant message with ``calls`` as ``(name, JSON arguments)``; an empty one (no text, no
        call) is kept as unparsed output (``raw`` ""), which the flagger tags."""
        self.pending = []
        tool_calls = []
        for name, arguments in calls:
            self.calls += 1
            call_id = f"call_{self.calls}"
            tool_calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
            self.pending.append((call_id, name))
        raw = "" if content is None and not tool_calls else None
        self.messages.append(Message("assistant", content, tool_calls=tool_calls or None, raw=raw))

    def unparsed(self, text: str) -> None:
        """An assistant turn whose calls cannot all be read: kept as it is, in ``content`` and ``raw``."""
        self.pending = []
        self.messages.append(Message("assistant", text, raw=text))

    def tool(self, content: str, name: str | None = None) -> None:
        """A tool's answer: to the first unanswered call named ``name`` (else the first unanswered call) of the
        assistant message before it.

        An answer with no call to answer keeps no ``tool_call_id``; when the message before it is an
        assistant message without calls, that message must have called in a syntax nobody reads, so it is
        marked unparsed (``raw``) for the flagger.
        """
        match = next((p for p in self.pending if name is not None and p[1] == name), None)
        if match is None and self.pending:
            match = self.pending[0]
        if match is not None:
            self.pending.remove(match)
            self.messages.append(Message("tool", content, tool_call_id=match[0], name=match[1]))
            return
        last = self.messages[-1] if self.messages else None
        if last is not None and last.role == "assistant" and not last.tool_calls and last.raw is None:
            last.raw = last.content or ""
        self.messages.append(Message("tool", content, name=name))

    def trajectory(self, fmt: str, record: dict[str, Any], toolset: str | None, meta: dict[str, Any]
                   ) -> Trajectory:
        """The conversation as an imported trajectory of format ``fmt``, its id derived from the whole record."""
        return Trajectory(id=content_id(fmt, dumps(record) or ""), toolset=toolset, instruction=self.instruction(),
                          status="imported", source="imported", meta={"format": fmt, **meta}, messages=self.messages)

    def instruction(self) -> str:
        """The first user message's text: what the trajectory is asked to do."""
        return next((m.content for m in self.messages if m.role == "user" and m.content), "")
