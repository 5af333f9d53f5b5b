"""Import the Berkeley Function-Calling Leaderboard (gorilla, ``berkeley-function-call-leaderboard``).

BFCL is an evaluation benchmark: its files become toolsets and gold items, never
trajectories. A question file (``BFCL_v3_simple.json``, ``BFCL_v4_simple_python.json``
… — JSON Lines despite the name) holds ``{"id", "question": [[{"role", "content"}…]…],
"function": [{"name", "description", "parameters": {"type": "dict", …}}]}``; its
possible answers are in a file of the same name in a ``possible_answer/`` folder
beside it or beside its parent folder (the repository's ``data/`` and
``bfcl_eval/data/`` layouts), ``{"id", "ground_truth": [{"func": {"param":
[acceptable values…]}}…]}``, where ``""`` means the parameter may be left out.

Each item's acceptable calls are every combination of acceptable values, with
and without each omissible parameter, nested objects expanded the same way; for
multi-call items (parallel, multiple) the union over the ground-truth entries,
since the judge scores a predicted call against its best match. At most
``MAX_CALLS`` per item are kept, the first combinations, so a wide answer
cannot explode. Parameter types become JSON Schema (``schema_types.bfcl_schema``);
in the Java and JavaScript categories every parameter is a string holding the
value in that language's syntax, as BFCL itself prompts and scores them, and
the original type is added to its description.

Categories without possible answers by design (``irrelevance``,
``live_irrelevance``, ``live_relevance``: the right answer is no call) are
skipped and counted, as is an item the possible-answer file has no entry for;
the summary says how many. Any other file whose possible-answer file is missing
imports nothing: the error names the paths looked for.
"""
from __future__ import annotations

import itertools
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from ..db import Store
from ..errors import InputError
from ..records import GoldItem, Tool
from ..toolcalls import ToolCall
from .files import json_type
from .importing import Imported, iter_records, write_imported
from .schema_types import bfcl_schema, schema_problem
from .summary import ImportSummary

#: The most acceptable calls one gold item keeps (the first combinations, in the file's order).
MAX_CALLS = 256
#: ``simple_13`` → ``simple``; ``live_multiple_3-1-0`` → ``live_multiple``.
_CATEGORY = re.compile(r"^(.*?)_[\d-]+$")
#: An acceptable value meaning "this parameter may be left out".
_OMIT = ""


@dataclass
class BfclImported(Imported):
    #: Items skipped because no possible answer exists for them (irrelevance categories, missing entries).
    unanswered: int = 0


@dataclass
class BfclSummary(ImportSummary):
    unanswered: int = 0

    def describe(self) -> str:
        text = super().describe()
        if self.unanswered:
            text += f" ({self.unanswered} BFCL items without possible answers skipped)"
        return text


def import_bfcl(store: Store, path: str | os.PathLike[str]) -> ImportSummary:
    imported = read_bfcl(path)
    return BfclSummary(**asdict(write_imported(store, imported)), unanswered=imported.unanswered)


def read_bfcl(path: str | os.PathLike[str]) -> BfclImported:
    source = str(path)
    imported = BfclImported()
    answers: dict[str, Any] | None = None
    for where, record in iter_records(path):
        item_id = record.get("id")
        if not isinstance(item_id, str) or not item_id:
            raise InputError(source, f"'id' must be a non-empty string, got {json_type(item_id)}", where)
        if not has_answers(category(item_id)):
            imported.unanswered += 1
            continue
        if answers is None:
            answers = _possible_answers(Path(path))
        if item_id not in answers:
            imported.unanswered += 1
            continue
        _read_item(imported, record, answers[item_id], _Where(source, where, item_id))
    return imported


def category(item_id: str) -> str:
    match = _CATEGORY.match(item_id)
    return match.group(1) if match else item_id


def has_answers(name: str) -> bool:
    """Irrelevance and relevance categories have no possible answers: the right answer is no call."""
    return "relevance" not in name


@dataclass
class _Where:
    source: str
    where: str | int
    item_id: str

    def error(self, problem: str) -> InputError:
        return InputError(self.source, f"{self.item_id}: {problem}", self.where)


def _possible_answers(path: Path) -> dict[str, Any]:
    """``id → ground_truth`` from the possible-answer file of the same name (beside the file or its folder)."""
    candidates = [path.parent / "possible_answer" / path.name, path.parent.parent / "possible_answer" / path.name]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise InputError(str(path), "no possible answers, nothing imported: looked for "
                                    + " and ".join(str(c) for c in candidates))
    answers: dict[str, Any] = {}
    for where, record in iter_records(found):
        if not isinstance(record.get("id"), str) or "ground_truth" not in record:
            raise InputError(str(found), "a possible answer needs 'id' and 'ground_truth'", where)
        answers[record["id"]] = (str(found), where, record["ground_truth"])
    return answers


def _read_item(imported: BfclImported, record: dict[str, Any], answer: tuple[str, str | int, Any],
               at: _Where) -> None:
    messages = _messages(record.get("question"), at)
    functions = record.get("function")
    functions = [functions] if isinstance(functions, dict) else functions
    if not isinstance(functions, list) or not functions:
        raise at.error(f"'function' must be a non-empty array, got {json_type(functions)}")
    language = _language(category(at.item_id))
    tools = [_tool(f, f"function[{i}]", language, at) for i, f in enumerate(functions)]
    names = [t.name for t in tools]
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise at.error(f"function: two functions are named '{twice}'")
    calls = _acceptable_calls(answer, at.item_id)
    toolset = imported.toolset_for(tools, at.source)
    imported.gold.append(GoldItem(
        id=f"bfcl:{at.item_id}", toolset=toolset, tools=imported.toolsets[toolset].openai_tools(),
        messages=messages, calls=calls, source="bfcl",
    ))


def _messages(question: Any, at: _Where) -> list[dict[str, Any]]:
    """The turns of ``question`` (a list of turns, each a list of messages), flattened; system prompts kept."""
    if not isinstance(question, list) or not question:
        raise at.error(f"'question' must be a non-empty array of turns, got {json_type(question)}")
    turns = [turn if isinstance(turn, list) else [turn] for turn in question]
    messages = []
    for index, message in enumerate(itertools.chain.from_iterable(turns)):
        if not (isinstance(message, dict) and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)):
            raise at.error(f"question, message {index}: expected {{'role', 'content'}} strings")
        messages.append({"role": message["role"], "content": message["content"]})
    if not any(m["role"] == "user" for m in messages):
        raise at.error("'question' has no user message")
    return messages


def _language(name: str) -> str | None:
    if "javascript" in name:
        return "JavaScript"
    return "Java" if "java" in name else None


def _tool(function: Any, field: str, language: str | None, at: _Where) -> Tool:
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
        raise at.error(f"{field}: a function needs a 'name' string")
    name, description = function["name"], function.get("description") or ""
    if not isinstance(description, str):
        raise at.error(f"{field} ({name}): 'description' must be a string, got {json_type(description)}")
    parameters = function.get("parameters") or {"type": "dict", "properties": {}}
    if not isinstance(parameters, dict) or not isinstance(parameters.get("properties", {}), dict):
        raise at.error(f"{field} ({name}): 'parameters' must be an object with 'properties'")
    schema = bfcl_schema(parameters)
    schema["type"] = "object"
    schema.setdefault("properties", {})
    if language:
        schema["properties"] = {p: _as_string(s, language) for p, s in parameters.get("properties", {}).items()}
    problem = schema_problem(schema)
    if problem:
        raise at.error(f"{field} ({name}): parameters are {problem}")
    return Tool(name, description, schema)


def _as_string(spec: Any, language: str) -> dict[str, Any]:
    """A Java or JavaScript parameter: a string in that language's syntax, its type named in the description."""
    spec = spec if isinstance(spec, dict) else {}
    kind = spec.get("type", "any")
    description = spec.get("description") if isinstance(spec.get("description"), str) else ""
    note = f"any {language} value" if kind == "any" else f"{language} {kind}"
    return {"type": "string", "description": f"{description} (a {note}, as a string)".strip()}


def _acceptable_calls(answer: tuple[str, str | int, Any], item_id: str) -> list[ToolCall]:
    source, where, truth = answer
    if not isinstance(truth, list) or not truth:
        raise InputError(source, f"{item_id}: 'ground_truth' must be a non-empty array of "
                                 "{function: {param: [values]}}", where)
    calls: list[ToolCall] = []
    for index, entry in enumerate(truth):
        if not (isinstance(entry, dict) and len(entry) == 1):
            raise InputError(source, f"{item_id}: ground_truth[{index}] must be one {{function: {{param: "
                                     f"[values]}}}}, got {json_type(entry)}", where)
        (name, params), = entry.items()
        if not isinstance(params, dict) or not all(isinstance(v, list) for v in params.values()):
            raise InputError(source, f"{item_id}: ground_truth[{index}] ({name}): every parameter needs a "
                                     "list of acceptable values", where)
        for arguments in itertools.islice(_combinations(params), MAX_CALLS):
            call = ToolCall(name, arguments)
            if call not in calls:
                calls.append(call)
            if len(calls) == MAX_CALLS:
                return calls
    return calls


def _combinations(params: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """Each combination of acceptable values, the file's first choices first; ``""`` leaves the parameter out."""
    names = list(params)
    choices = [list(itertools.islice(_choices(params[n]), MAX_CALLS)) for n in names]
    for picked in itertools.product(*choices):
        yield {n: v for n, v in zip(names, picked) if v is not _LEFT_OUT}


_LEFT_OUT = object()


def _choices(values: list[Any]) -> Iterator[Any]:
    seen: list[Any] = []
    for value in values:
        for choice in [_LEFT_OUT] if value == _OMIT else _expand(value):
            # by type too: 1, 1.0 and true are different acceptable values
            if not any(type(s) is type(choice) and s == choice for s in seen):
                seen.append(choice)
                yield choice


def _expand(value: Any) -> Iterator[Any]:
    """A value as the literals it stands for: a nested ``{key: [alternatives]}`` object is expanded like the
    call's own parameters, a list of such objects element by element; anything else is itself."""
    if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        yield from itertools.islice(_combinations(value), MAX_CALLS)
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        elements = [list(itertools.islice(_expand(v), MAX_CALLS)) for v in value]
        yield from (list(p) for p in itertools.islice(itertools.product(*elements), MAX_CALLS))
    else:
        yield value


def looks_like(record: dict[str, Any]) -> bool:
    return "question" in record and "function" in record
