"""Import Salesforce xLAM / APIGen function-calling records (``Salesforce/xlam-function-calling-60k``).

A record is ``{"id", "query", "tools", "answers"}``: ``tools`` and ``answers``
are JSON strings (lists are accepted too) of ``[{"name", "description",
"parameters": {"p": {"type": "str", "description", "default"}}}]`` and
``[{"name", "arguments"}]``. The parameter dict is not JSON Schema: each type
name (``"str"``, ``"List[int]"``, ``"str, optional"`` …) becomes one
(``store.formats.schema_types``), and a parameter is required unless its type
says optional or it has a ``default``.

Each record becomes a trajectory — the query as the user message, then one
assistant message whose ``tool_calls`` are all the answers (parallel calls);
no system prompt (the records have none) and no tool results (none exist) —
and a gold item ``xlam:<id>`` whose acceptable calls are the answers. The
record id and any other field it carries (argilla's merge adds ``origin`` …)
are kept in the trajectory's meta. A record without answers (a refusal) is a
trajectory with the user message only and no gold item.
"""
from __future__ import annotations

import json
import os
from typing import Any

from ..db import Store
from ..errors import InputError
from ..records import GoldItem, Message, Tool, Trajectory
from ..safe_json import loads
from ..toolcalls import ToolCall
from .files import json_type
from .importing import Imported, content_id, iter_records, write_imported
from .schema_types import python_type, schema_problem
from .summary import ImportSummary

#: The fields every record has; the others are kept in the trajectory's meta.
_FIELDS = ("id", "query", "tools", "answers")


def import_xlam(store: Store, path: str | os.PathLike[str]) -> ImportSummary:
    return write_imported(store, read_xlam(path))


def read_xlam(path: str | os.PathLike[str]) -> Imported:
    """Every record of a JSON array or JSONL file, all read before anything is written."""
    source = str(path)
    imported = Imported()
    for where, record in iter_records(path):
        _read_record(imported, record, _Where(source, where))
    return imported


class _Where:
    """The file and record an error names; the field goes first in the problem (``answers[1]: …``)."""

    def __init__(self, source: str, where: str | int):
        self.source, self.where = source, where

    def error(self, problem: str) -> InputError:
        return InputError(self.source, problem, self.where)


def _read_record(imported: Imported, record: dict[str, Any], at: _Where) -> None:
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise at.error(f"'query' must be a non-empty string, got {json_type(query)}")
    record_id = record.get("id")
    if record_id is not None and (isinstance(record_id, bool) or not isinstance(record_id, (int, str))):
        raise at.error(f"'id' must be a number or a string, got {json_type(record_id)}")
    tools = [_tool(t, f"tools[{i}]", at) for i, t in enumerate(_json_list(record, "tools", at))]
    _check_unique(tools, at)
    calls = [_call(a, f"answers[{i}]", at) for i, a in enumerate(_json_list(record, "answers", at))]
    toolset = imported.toolset_for(tools, at.source)
    key = str(record_id) if record_id is not None else content_id(query, json.dumps(
        [[c.name, c.arguments] for c in calls], sort_keys=True))
    imported.trajectories.append(Trajectory(
        id=content_id("xlam", key, query), toolset=toolset, instruction=query, status="imported",
        source="imported", meta=_meta(record), messages=_messages(query, calls),
    ))
    if calls:
        imported.gold.append(GoldItem(
            id=f"xlam:{key}", toolset=toolset, tools=imported.toolsets[toolset].openai_tools(),
            messages=[{"role": "user", "content": query}], calls=calls, source="xlam",
        ))


def _json_list(record: dict[str, Any], key: str, at: _Where) -> list[Any]:
    """``record[key]``: a JSON string of an array, or the array itself."""
    if key not in record:
        raise at.error(f"has no '{key}'")
    value = record[key]
    if isinstance(value, str):
        try:
            value = loads(value)
        except json.JSONDecodeError as exc:
            raise at.error(f"'{key}' is not JSON (column {exc.colno}: {exc.msg})") from None
    if not isinstance(value, list):
        raise at.error(f"'{key}' must be an array, got {json_type(value)}")
    return value


def _tool(tool: Any, field: str, at: _Where) -> Tool:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
        raise at.error(f"{field}: a tool needs a 'name' string")
    description = tool.get("description") or ""
    if not isinstance(description, str):
        raise at.error(f"{field} ({tool['name']}): 'description' must be a string, got {json_type(description)}")
    parameters = _parameters(tool.get("parameters") or {}, f"{field} ({tool['name']})", at)
    return Tool(tool["name"], description, parameters)


def _parameters(params: Any, field: str, at: _Where) -> dict[str, Any]:
    """xLAM's ``{"p": {"type", "description", "default"}}`` as a JSON-Schema object."""
    if not isinstance(params, dict):
        raise at.error(f"{field}: 'parameters' must be an object, got {json_type(params)}")
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in params.items():
        if not isinstance(spec, dict):
            raise at.error(f"{field}: parameter '{name}' must be an object, got {json_type(spec)}")
        kind = spec.get("type", "any")
        if not isinstance(kind, str):
            raise at.error(f"{field}: parameter '{name}': 'type' must be a string, got {json_type(kind)}")
        schema, optional = python_type(kind)
        for key in ("description", "default"):
            if key in spec:
                schema[key] = spec[key]
        properties[name] = schema
        if not optional and "default" not in spec:
            required.append(name)
    schema = {"type": "object", "properties": properties, "required": required}
    problem = schema_problem(schema)
    if problem:
        raise at.error(f"{field}: parameters are {problem}")
    return schema


def _check_unique(tools: list[Tool], at: _Where) -> None:
    names = [t.name for t in tools]
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise at.error(f"tools: two tools are named '{twice}'")


def _call(answer: Any, field: str, at: _Where) -> ToolCall:
    """One answer as a call, imported as it is (a call that breaks its tool's schema is auto-flagged later)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("name"), str):
        raise at.error(f"{field}: an answer needs a 'name' string")
    arguments = answer.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise at.error(f"{field} ({answer['name']}): 'arguments' is not JSON "
                           f"(column {exc.colno}: {exc.msg})") from None
    if not isinstance(arguments, dict):
        raise at.error(f"{field} ({answer['name']}): 'arguments' must be an object, got {json_type(arguments)}")
    return ToolCall(answer["name"], arguments)


def _messages(query: str, calls: list[ToolCall]) -> list[Message]:
    messages = [Message("user", query)]
    if calls:
        messages.append(Message("assistant", None, tool_calls=[
            {**call.to_openai(), "id": f"call_{number}"} for number, call in enumerate(calls, 1)]))
    return messages


def _meta(record: dict[str, Any]) -> dict[str, Any]:
    extra = {k: v for k, v in record.items() if k not in _FIELDS and v is not None}
    return {**extra, "format": "xlam", **({"xlam_id": record["id"]} if record.get("id") is not None else {})}


def looks_like(record: dict[str, Any]) -> bool:
    return "query" in record and "tools" in record and "answers" in record
