"""Import ToolACE (Hugging Face ``Team-ACE/ToolACE``): one conversation a record, its tools in its system prompt.

A record is ``{"system": str, "conversations": [{"from": "user"|"assistant"|"tool", "value": str}]}``:

- ``system`` lists the tools as a JSON array after "Here is a list of functions in
  JSON format that you can invoke:". Their parameters are JSON-schema-like with
  Python type names (``"dict"`` for an object, ``"int"``, ``"List[str]"`` …),
  converted here to JSON Schema. The prompt itself stays the trajectory's system
  message: it is the format's prompt (it also tells the call syntax).
- an assistant turn is either a call list in Python call syntax,
  ``[Get Weather(city="Oslo", days=3), other.func(x=[1, 2])]`` (several calls are
  parallel calls), or a text answer. Tool names may hold spaces, dots or hyphens,
  so the tool list's names are swapped for placeholders before ``ast`` parses the
  list; every argument must be a keyword whose value is a literal.
- a tool turn is a JSON array of ``{"name", "results"}``, one per call of the
  assistant turn before it, in order: result *i* answers call *i*.

There is no ground truth (the calls are the assistant's turns), so no gold items.
Ids derive from the record's content, so importing a file twice adds nothing.
"""
from __future__ import annotations

import ast
import json
import os
import re
from typing import Any, Iterator

from ..db import Store
from ..errors import InputError
from ..records import Message, Tool, Trajectory
from ..safe_json import loads
from .files import json_type
from .importing import Imported, content_id, iter_records, write_imported
from .schema_types import schema_problem
from .summary import ImportSummary

ROLES = ("user", "assistant", "tool")
#: What precedes the tool list in every ToolACE system prompt.
TOOLS_MARKER = "Here is a list of functions in JSON format that you can invoke:"
#: ToolACE's (Python) type names for the JSON-schema ones; ``any`` means no constraint.
_TYPES = {
    "dict": "object", "object": "object", "map": "object", "str": "string", "string": "string", "text": "string",
    "int": "integer", "integer": "integer", "long": "integer", "float": "number", "number": "number",
    "double": "number", "bool": "boolean", "boolean": "boolean", "list": "array", "array": "array",
    "tuple": "array", "set": "array", "null": "null", "none": "null", "any": None,
}
#: ``List[int]``, ``Dict[str, Any]``, ``Optional[str]`` …: the container and what it holds.
_GENERIC = re.compile(r"^(\w+)\s*\[(.*)\]$")
#: An assistant turn that means to be a call list: ``[name(`` …
_CALL_LIST = re.compile(r"^\[\s*[^\s\[\]()'\"][^\[\]()'\"]*\(")


def import_toolace(store: Store, path: str | os.PathLike[str]) -> ImportSummary:
    """Read the whole file first, then write it in one transaction (a bad record writes nothing)."""
    return write_imported(store, read_toolace(path))


def read_toolace(path: str | os.PathLike[str]) -> Imported:
    """Each record as a trajectory whose toolset is the tools its system prompt lists."""
    source = str(path)
    imported = Imported()
    for where, record in iter_records(path):
        imported.trajectories.append(_trajectory(record, imported, source, where))
    return imported


def looks_like(record: dict[str, Any]) -> bool:
    """A ``system`` string beside ``conversations`` whose turns come ``from`` user, assistant or tool (Hermes and
    ShareGPT records have no top-level system and say human/gpt)."""
    turns = record.get("conversations")
    return (isinstance(record.get("system"), str) and isinstance(turns, list) and bool(turns)
            and all(isinstance(t, dict) and t.get("from") in ROLES for t in turns))


def _trajectory(record: dict[str, Any], imported: Imported, source: str, where: str | int) -> Trajectory:
    system = record.get("system")
    turns = record.get("conversations")
    if not isinstance(system, str):
        raise InputError(source, f"'system' must be a string, got {json_type(system)}", where)
    if not isinstance(turns, list) or not turns:
        raise InputError(source, "'conversations' must be a non-empty array of turns", where)
    tools = _tools(system, source, where)
    messages = [Message("system", system), *_Turns(tools, source, where).messages(turns)]
    instruction = next((m.content for m in messages if m.role == "user" and m.content), "")
    return Trajectory(
        id=content_id("toolace", system, json.dumps(turns, ensure_ascii=False)),
        toolset=imported.toolset_for(tools, source), instruction=instruction, status="imported",
        source="imported", meta={"format": "toolace"}, messages=messages,
    )


# -- the tool list in the system prompt -------------------------------------------------------------
def _tools(system: str, source: str, where: str | int) -> list[Tool]:
    start = system.find("[", system.find(TOOLS_MARKER) + 1) if TOOLS_MARKER in system else -1
    if start < 0:
        raise InputError(source, f"'system' has no tool list (a JSON array after {TOOLS_MARKER!r})", where)
    try:
        _, end = json.JSONDecoder().raw_decode(system, start)
        listed = loads(system[start:end])
    except (json.JSONDecodeError, RecursionError) as exc:
        problem = f"column {exc.colno - start}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else "too deep"
        raise InputError(source, f"the tool list in 'system' is not JSON ({problem})", where) from None
    if not isinstance(listed, list):
        raise InputError(source, f"the tool list in 'system' must be an array, got {json_type(listed)}", where)
    tools = [_tool(entry, source, f"{_at(where)}, tool {number}") for number, entry in enumerate(listed, 1)]
    names = [t.name for t in tools]
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise InputError(source, f"two tools are named {twice!r}", where)
    return tools


def _tool(entry: Any, source: str, where: str) -> Tool:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
        raise InputError(source, "a tool must be an object with a 'name' string", where)
    where = f"{where} ({entry['name']})"
    description = entry.get("description")
    if description is not None and not isinstance(description, str):
        raise InputError(source, f"'description' must be a string, got {json_type(description)}", where)
    parameters = _parameters(entry.get("parameters"), source, where)
    problem = schema_problem(parameters)
    if problem:
        raise InputError(source, f"parameters are {problem}", where)
    return Tool(entry["name"], description or "", parameters)


def _parameters(raw: Any, source: str, where: str) -> dict[str, Any]:
    """The tool's parameters as a JSON-schema object (``None`` or ``{}``: no parameters)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError(source, f"'parameters' must be an object, got {json_type(raw)}", where)
    schema = _schema(raw, source, where)
    schema["type"] = "object"
    schema.setdefault("properties", {})
    return schema


def _schema(node: Any, source: str, where: str) -> dict[str, Any]:
    """A JSON-schema copy of one ToolACE schema: type names converted, ``required: true`` on a property lifted
    into its object's ``required`` list (a boolean ``required`` is not JSON Schema)."""
    if not isinstance(node, dict):
        raise InputError(source, f"a schema must be an object, got {json_type(node)}", where)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            out.update(_type(value))
        elif key == "properties":
            if not isinstance(value, dict):
                raise InputError(source, f"'properties' must be an object, got {json_type(value)}", where)
            out[key] = {name: _schema(sub, source, f"{where}, parameter '{name}'") for name, sub in value.items()}
            lifted = [name for name, sub in value.items() if isinstance(sub, dict) and sub.get("required") is True]
            if lifted:
                listed = node.get("required") if isinstance(node.get("required"), list) else []
                out["required"] = [*listed, *(name for name in lifted if name not in listed)]
        elif key == "items" and isinstance(value, dict):
            out[key] = _schema(value, source, where)
        elif key == "items" and isinstance(value, list):  # a tuple's positions
            out["prefixItems"] = [_schema(v, source, where) for v in value]
        elif key == "required":
            if isinstance(value, list) and "required" not in out:
                out[key] = value
        else:
            out[key] = value
    return out


def _type(value: Any) -> dict[str, Any]:
    """``{"type": …}`` (and ``items`` for ``List[X]``) for a ToolACE type name; unknown or ``any`` names
    constrain nothing and are kept as ``x-toolace-type``, so nothing the record said is lost."""
    if isinstance(value, list):
        names = [_type(v).get("type") for v in value]
        return {"type": names} if all(isinstance(n, str) for n in names) else {"x-toolace-type": value}
    if not isinstance(value, str):
        return {"x-toolace-type": value}
    name = value.strip().removesuffix(", optional").removesuffix(",optional").strip()
    generic = _GENERIC.match(name)
    if generic:
        container, inner = generic.group(1).lower(), generic.group(2)
        if container in ("optional", "union") and "," not in inner:
            return _type(inner)
        if _TYPES.get(container) == "array":
            items = _type(inner.split(",")[0]) if "," not in inner or container != "tuple" else {}
            return {"type": "array", **({"items": items} if items.get("type") else {})}
        if _TYPES.get(container) == "object":
            return {"type": "object"}
    json_type_name = _TYPES.get(name.lower(), "unknown")
    if json_type_name == "unknown" or json_type_name is None:
        return {"x-toolace-type": value}
    return {"type": json_type_name}


# -- the conversation ----------------------------------------------------------------------------
class UnreadableCall(ValueError):
    """An assistant turn that means to call but cannot be read: it is kept as text and flagged, not refused."""


class _Turns:
    """Turns into messages, numbering calls across the conversation and matching results to their calls."""

    def __init__(self, tools: list[Tool], source: str, where: str | int):
        self.names = [t.name for t in tools]
        self.source, self.where = source, where
        self.calls = 0
        self.pending: list[dict[str, Any]] = []  # the last assistant turn's calls, in order
        self.unparsed = False  # the last assistant turn called in a way nobody can read

    def messages(self, turns: list[Any]) -> Iterator[Message]:
        for number, turn in enumerate(turns, 1):
            here = f"{_at(self.where)}, message {number}"
            if not isinstance(turn, dict) or turn.get("from") not in ROLES:
                raise InputError(self.source, f"a turn needs 'from' (one of {', '.join(ROLES)})", here)
            value = turn.get("value")
            if not isinstance(value, str):
                raise InputError(self.source, f"'value' must be a string, got {json_type(value)}", here)
            if turn["from"] == "user":
                yield Message("user", value)
            elif turn["from"] == "assistant":
                yield self._assistant(value)
            else:
                yield from self._results(value, here)

    def _assistant(self, value: str) -> Message:
        """A text answer, the turn's calls, or (when they cannot be read) the turn as ``raw`` text, which
        the auto-flagger tags ``parse_error`` (weight 0)."""
        self.pending, self.unparsed = [], False
        try:
            calls = parse_calls(value, self.names)
        except UnreadableCall:
            self.unparsed = True
            return Message("assistant", value, raw=value)
        if calls is None:
            return Message("assistant", value)
        for name, arguments in calls:
            self.calls += 1
            self.pending.append({"id": f"call_{self.calls}", "type": "function", "function": {
                "name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}})
        return Message("assistant", None, tool_calls=list(self.pending))

    def _results(self, value: str, here: str) -> Iterator[Message]:
        try:
            results = loads(value)
        except json.JSONDecodeError as exc:
            raise InputError(self.source, f"the tool turn is not JSON (column {exc.colno}: {exc.msg})", here) from None
        if not isinstance(results, list) or not all(isinstance(r, dict) and isinstance(r.get("name"), str)
                                                    for r in results):
            raise InputError(self.source, 'the tool turn must be a JSON array of {"name", "results"}', here)
        if self.unparsed:  # the answers to calls that could not be read answer no call id
            for result in results:
                yield Message("tool", _result_text(result), name=result["name"])
            return
        if len(results) > len(self.pending):
            raise InputError(self.source, f"the tool turn has {len(results)} results for {len(self.pending)} "
                                          "calls of the assistant turn before it", here)
        for call, result in zip(self.pending, results):
            yield Message("tool", _result_text(result), tool_call_id=call["id"], name=result["name"])
        self.pending = []


def _result_text(result: dict[str, Any]) -> str:
    content = result.get("results")
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def parse_calls(text: str, names: list[str]) -> list[tuple[str, dict[str, Any]]] | None:
    """``[f(a=1), Get Data(b="x")]`` as ``(name, arguments)`` pairs; None when ``text`` is a text answer.

    ``names`` (the listed tools) may not be Python identifiers, so each one that is
    not is swapped for a placeholder where it is called before parsing. A call list that cannot be read
    raises ``UnreadableCall`` saying why.
    """
    stripped = text.strip()
    if not (stripped.startswith("[") and stripped.endswith("]")):
        return None
    placeholders: dict[str, str] = {}
    for number, name in enumerate(sorted(names, key=len, reverse=True)):
        if not all(part.isidentifier() for part in name.split(".")):
            placeholder = f"_toolace_{number}"
            pattern = re.compile(r"(?<=[\[,])(\s*)" + re.escape(name) + r"(\s*\()")
            stripped, count = pattern.subn(lambda m, p=placeholder: m.group(1) + p + m.group(2), stripped)
            if count:
                placeholders[placeholder] = name
    try:
        tree = ast.parse(stripped, mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        if not _CALL_LIST.match(text.strip()):
            return None  # a text answer that happens to be bracketed
        detail = f"column {exc.offset}: {exc.msg}" if isinstance(exc, SyntaxError) else type(exc).__name__
        raise UnreadableCall(f"the call list is not Python call syntax ({detail})") from None
    if not isinstance(tree, ast.List) or not tree.elts or not all(isinstance(e, ast.Call) for e in tree.elts):
        return None
    return [_call(node, placeholders) for node in tree.elts]


def _call(node: ast.Call, placeholders: dict[str, str]) -> tuple[str, dict[str, Any]]:
    name = _dotted(node.func)
    if name is None:
        raise UnreadableCall(f"a call's function is not a name ({ast.unparse(node.func)})")
    name = placeholders.get(name, name)
    if node.args:
        raise UnreadableCall(f"'{name}' has a positional argument ({ast.unparse(node.args[0])}); "
                             "ToolACE calls take keyword arguments")
    arguments: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise UnreadableCall(f"'{name}' unpacks **{ast.unparse(keyword.value)}; expected keyword "
                                 "arguments")
        try:
            arguments[keyword.arg] = ast.literal_eval(keyword.value)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            raise UnreadableCall(f"argument '{keyword.arg}' of '{name}' is not a literal "
                                 f"({ast.unparse(keyword.value)[:60]})") from None
    try:  # what a JSON call can hold: no sets, bytes, non-finite numbers, lone surrogates or deep nesting
        loads(json.dumps(arguments, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        raise UnreadableCall(f"the arguments of '{name}' do not fit in JSON (a set, bytes, a complex or "
                             "non-finite number, a lone surrogate or nesting past 100 levels)") from None
    return name, arguments


def _dotted(node: ast.expr) -> str | None:
    """``f`` or ``a.b.f`` as text; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return None if inner is None else f"{inner}.{node.attr}"
    return None


def _at(where: str | int) -> str:
    """``where`` as the start of a longer location (a JSONL line number becomes ``line N``)."""
    return f"line {where}" if isinstance(where, int) else where
