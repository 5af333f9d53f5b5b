"""The canonical JSONL format: one trajectory a line, ``{"id", "messages", "tools", "meta"}``.

Messages are OpenAI chat messages (assistant messages carry ``"weight": 0|1``),
``tools`` the OpenAI function tools, ``meta`` the store's fields (``toolset``,
``status``, ``source``, ``decision``, ``tags``, and when there are some
``corrections`` and ``notes``); ``tools`` and ``meta`` are JSON text
(``records.TEXT_FIELDS``), so ``datasets`` and TRL load the file as it is, and
they import either way. After a trajectory with corrections comes one
derived line per correction (``meta.derived_from``; see
``records.correction_examples``): the corrected call as an example of its own,
so a trainer that reads the file as it is learns the fix, never the original.
Export then import restores everything the export shows (derived lines are
skipped: they follow from their trajectory), so ``import(export(store))``
exports the same bytes. A line with only ``messages`` (and maybe ``tools``), as other tools write
it, imports too: its id and toolset name are then derived from its content.

Importing is one transaction: a bad line names its line number and writes
nothing. Trajectories whose id is already in the store are skipped, so
importing a file twice adds nothing the second time.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Callable, Iterator, TypeVar

from ..db import Store
from ..errors import InputError
from ..records import (
    AUTO_ORIGINS,
    DECISIONS,
    STATUSES,
    Correction,
    Message,
    Note,
    Tag,
    Tool,
    Toolset,
    TEXT_FIELDS,
    Trajectory,
    dumps,
    from_line,
    is_derived,
)
from ..taxonomy import check_code
from .files import iter_json_lines, json_type, write_lines
from .summary import ExportSummary, ImportSummary


def export_jsonl(store: Store, out: str | os.PathLike[str], status: str = "accepted") -> ExportSummary:
    """Write the trajectories the review filter ``status`` selects, each followed by its correction examples."""
    return export_records(store, out, status, record_line)


#: Turns one record into its line; the dict is ``record_line``'s tools cache, one per export.
LineOf = Callable[[dict[str, Any], dict[int, tuple[list[Any], str]]], str]


def export_records(store: Store, out: str | os.PathLike[str], status: str, line_of: LineOf) -> ExportSummary:
    """Write every record ``iter_records(status)`` yields (derived correction examples too) as ``line_of`` makes it."""
    summary = ExportSummary()
    encoded_tools: dict[int, tuple[list[Any], str]] = {}

    def lines() -> Iterator[str]:
        for record in store.iter_records(status):
            summary.count(record)
            yield line_of(record, encoded_tools)

    write_lines(out, lines())
    return summary


def record_line(record: dict[str, Any], encoded_tools: dict[int, tuple[list[Any], str]] | None = None,
                text_fields: tuple[str, ...] = TEXT_FIELDS) -> str:
    """One JSONL line: the record with compact separators, its ``text_fields`` as JSON text.

    ``iter_records`` hands every record of a toolset the same ``tools`` list, so
    with an ``encoded_tools`` cache it is encoded once per toolset rather than
    once per line (a quarter of a typical line).
    """
    parts = []
    for key, value in record.items():
        encode = _text if key in text_fields else _dumps
        if key == "tools" and encoded_tools is not None:
            parts.append(f'"tools":{once_per_list(encoded_tools, value, encode)}')
        else:
            parts.append(f"{_dumps(key)}:{encode(value)}")
    return "{" + ",".join(parts) + "}\n"


T = TypeVar("T")


def once_per_list(cache: dict[int, tuple[list[Any], T]], value: list[Any], make: Callable[[list[Any]], T]) -> T:
    """``make(value)``, computed once per list object (``iter_records`` shares one ``tools`` list per toolset).

    The cache holds the list itself, so its id cannot be reused by another list while cached.
    """
    cached = cache.get(id(value))
    if cached is None or cached[0] is not value:
        cached = cache[id(value)] = (value, make(value))
    return cached[1]


#: One encoder for every line (``json.dumps`` with options builds a new one per call).
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _text(value: Any) -> str:
    """``value`` as a JSON string holding its JSON text."""
    return _dumps(_dumps(value))


def import_jsonl(store: Store, path: str | os.PathLike[str]) -> ImportSummary:
    summary = ImportSummary()
    reader = _Reader(store, str(path), summary)
    with store.transaction():
        summary.trajectories = store.insert_trajectories(reader.trajectories(path))
    return summary


class _Reader:
    """Turns lines into trajectories, creating their toolsets as it meets them."""

    def __init__(self, store: Store, source: str, summary: ImportSummary):
        self.store, self.source, self.summary = store, source, summary
        self.toolsets: dict[str, list[dict[str, Any]]] = {}  # name -> its tools, to spot a conflicting redefinition
        self.lines: dict[str, int] = {}  # trajectory id -> the line it came from

    def trajectories(self, path: str | os.PathLike[str]) -> Iterator[Trajectory]:
        for number, line in iter_json_lines(path):
            try:
                record = from_line(line)
                if is_derived(record):
                    self.summary.derived += 1
                    continue
                trajectory, tools = trajectory_from_record(record)
            except (ValueError, TypeError, KeyError) as exc:
                raise InputError(self.source, str(exc), number) from None
            if trajectory.id in self.lines:
                raise InputError(self.source, f"id {trajectory.id!r} was already used on line "
                                              f"{self.lines[trajectory.id]}", number)
            self.lines[trajectory.id] = number
            if self.store.has_trajectory(trajectory.id):
                self.summary.skipped += 1
                continue
            self._ensure_toolset(trajectory.toolset, tools, number)
            yield trajectory

    def _ensure_toolset(self, name: str | None, tools: list[Tool], number: int) -> None:
        """Create the record's toolset when it is new; a record without tools only names its toolset."""
        if name is None or not tools:
            return
        wanted = [t.to_openai() for t in tools]
        if name not in self.toolsets:
            existing = self.store.toolset(name)
            self.toolsets[name] = existing.openai_tools() if existing is not None else wanted
            if existing is None:
                self.store.add_toolset(Toolset(name, tools, source=self.source))
                self.summary.toolsets += 1
                self.summary.tools += len(tools)
        if self.toolsets[name] != wanted:
            raise InputError(self.source, f"the tools of toolset {name!r} differ from the toolset of that name "
                                          "already in the store or earlier in the file", number)


def looks_like(record: dict[str, Any]) -> bool:
    """curator's own lines: OpenAI chat ``messages`` whose entries carry a ``role``."""
    messages = record.get("messages")
    return isinstance(messages, list) and bool(messages) and all(isinstance(m, dict) and "role" in m
                                                                 for m in messages)


def trajectory_from_record(record: dict[str, Any]) -> tuple[Trajectory, list[Tool]]:
    """A trajectory and its tools from one canonical record; ValueError names the bad field."""
    messages = _field(record, "messages", list)
    if not messages:
        raise ValueError("'messages' is empty")
    tools = [_tool(t, i) for i, t in enumerate(_field(record, "tools", list, []))]
    names = [t.name for t in tools]
    if len(set(names)) < len(names):
        twice = next(name for i, name in enumerate(names) if name in names[:i])
        raise ValueError(f"two tools are named {twice!r}")
    meta = _field(record, "meta", dict, {})
    parsed = [_message(m, i) for i, m in enumerate(messages)]
    toolset = _field(meta, "toolset", str, None, "meta.")
    if toolset is None and tools:
        toolset = "tools-" + _digest(dumps([t.to_openai() for t in tools]) or "")[:8]
    status = _field(meta, "status", str, "imported", "meta.")
    if status not in STATUSES:
        raise ValueError(f"meta.status must be one of {', '.join(STATUSES)}, got {status!r}")
    decision = _field(meta, "decision", str, None, "meta.")
    if decision is not None and decision not in DECISIONS:
        raise ValueError(f"meta.decision must be one of {', '.join(DECISIONS)} or null, got {decision!r}")
    instruction = _field(meta, "instruction", str, None, "meta.")
    if instruction is None:
        instruction = next((m.content for m in parsed if m.role == "user" and m.content), "")
    trajectory_id = _field(record, "id", str, None) or _digest(dumps(record) or "")
    trajectory = Trajectory(
        id=trajectory_id, toolset=toolset, instruction=instruction, status=status,
        source=_field(meta, "source", str, "imported", "meta."),
        backend=_field(meta, "backend", str, None, "meta."),
        model=_field(meta, "model", str, None, "meta."),
        difficulty=_field(meta, "difficulty", str, None, "meta."),
        reason=_field(meta, "reason", str, None, "meta."),
        created_at=_field(meta, "created_at", str, None, "meta."),
        meta=_field(meta, "extra", dict, {}, "meta."),
        messages=parsed,
        tags=[_tag(t, i, len(parsed)) for i, t in enumerate(_field(meta, "tags", list, [], "meta."))],
        decision=decision,
        corrections=_corrections(trajectory_id, _field(meta, "corrections", list, [], "meta."), parsed),
        notes=[_note(trajectory_id, n, i, len(parsed))
               for i, n in enumerate(_field(meta, "notes", list, [], "meta."))],
    )
    return trajectory, tools


_MISSING = object()


def _field(obj: dict[str, Any], key: str, kind: type, default: Any = _MISSING, prefix: str = "") -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise ValueError(f"'{prefix}{key}' is missing")
        return default
    if not isinstance(value, kind):
        raise ValueError(f"'{prefix}{key}' must be {_A[kind]}, got {json_type(value)}")
    return value


_A = {list: "an array", dict: "an object", str: "a string"}


def _message(message: Any, index: int) -> Message:
    where = f"message {index}"
    _check_object(message, where)
    try:
        parsed = Message.from_openai(message)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if parsed.content is not None and not isinstance(parsed.content, str):
        raise ValueError(f"{where}: 'content' must be a string or null, got {json_type(parsed.content)}")
    if parsed.tool_calls is not None:
        if not isinstance(parsed.tool_calls, list):
            raise ValueError(f"{where}: 'tool_calls' must be an array, got {json_type(parsed.tool_calls)}")
        parsed.tool_calls = _calls(parsed.tool_calls, f"{where}, tool call")
    return parsed


def _tool_call(call: Any, where: str) -> dict[str, Any]:
    """An OpenAI tool call with its arguments as a JSON string (the canonical form)."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise ValueError(f"{where}: expected {{'id', 'type': 'function', 'function': {{'name', 'arguments'}}}}")
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        call = {**call, "function": {**function, "arguments": json.dumps(arguments or {}, ensure_ascii=False)}}
    return call


def _calls(calls: list[Any], where: str) -> list[dict[str, Any]]:
    return [_tool_call(c, f"{where} {i}") for i, c in enumerate(calls)]


def _tool(tool: Any, index: int) -> Tool:
    _check_object(tool, f"tool {index}")
    fn = tool.get("function", tool)
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise ValueError(f"tool {index} has no function name")
    if not isinstance(fn.get("parameters", {}), dict):
        raise ValueError(f"tool {index} ({fn['name']}): 'parameters' must be an object")
    return Tool.from_openai(tool)


def _tag(tag: Any, index: int, message_count: int) -> Tag:
    where = f"meta.tags[{index}]"
    _check_object(tag, where)
    try:
        code = check_code(tag.get("code"))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    source = tag.get("source", "human")
    if source not in ("auto", "human"):
        raise ValueError(f"{where}: 'source' must be 'auto' or 'human', got {source!r}")
    message = _message_index(tag, where, message_count)
    note = tag.get("note")
    origin = tag.get("origin")
    if origin is not None and (source != "auto" or origin not in AUTO_ORIGINS):
        raise ValueError(f"{where}: 'origin' must be one of {', '.join(AUTO_ORIGINS)} on an auto tag, got {origin!r}")
    return Tag(code, source, message, None, note if isinstance(note, str) else None, origin)


def _corrections(trajectory_id: str, entries: list[Any], messages: list[Message]) -> list[Correction]:
    """``meta.corrections``: at most one per message, each of an assistant message and its calls as they are."""
    corrections: dict[int, Correction] = {}
    for index, entry in enumerate(entries):
        where = f"meta.corrections[{index}]"
        _check_object(entry, where)
        message = _message_index(entry, where, len(messages), nullable=False)
        if messages[message].role != "assistant":
            raise ValueError(f"{where}: message {message} is a {messages[message].role} message, not the assistant's")
        if message in corrections:
            raise ValueError(f"{where}: message {message} is corrected twice")
        fixed = _calls(_field(entry, "tool_calls", list, prefix=f"{where}."), f"{where}, tool call")
        if not fixed:
            raise ValueError(f"{where}: 'tool_calls' is empty")
        original = _field(entry, "original", list, None, f"{where}.")
        # the message holds the original; one that differs would be lost on import, so it is refused
        if original is not None and _calls(original, f"{where}, original call") != (messages[message].tool_calls or []):
            raise ValueError(f"{where}: 'original' is not message {message}'s tool_calls")
        strings = _strings(entry, where, "annotator", "note", "created_at")
        corrections[message] = Correction(trajectory_id, message, fixed, **strings)
    return sorted(corrections.values(), key=lambda c: c.message_index)


def _note(trajectory_id: str, note: Any, index: int, message_count: int) -> Note:
    where = f"meta.notes[{index}]"
    _check_object(note, where)
    text = _field(note, "text", str, prefix=f"{where}.")
    return Note(trajectory_id, text, _message_index(note, where, message_count),
                **_strings(note, where, "annotator", "created_at"))


def _check_object(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object, got {json_type(value)}")


def _message_index(entry: dict[str, Any], where: str, message_count: int, nullable: bool = True) -> int | None:
    """``entry["message"]``: a message index (or null, for the whole trajectory, when ``nullable``)."""
    message = entry.get("message")
    if message is None and nullable:
        return None
    if not isinstance(message, int) or isinstance(message, bool) or not 0 <= message < message_count:
        allowed = "null or a message index" if nullable else "a message index"
        raise ValueError(f"{where}: 'message' must be {allowed} below {message_count}, got {message!r}")
    return message


def _strings(entry: dict[str, Any], where: str, *keys: str) -> dict[str, str | None]:
    """The optional string fields ``keys`` of ``entry``."""
    return {key: _field(entry, key, str, None, f"{where}.") for key in keys}


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]
