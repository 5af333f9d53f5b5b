"""Import ToolAlpaca data: APIs become toolsets, instances trajectories, golden answers gold items.

A record is one API: ``Name``, ``Description``, ``Documentation`` (an OpenAPI 3
spec as a JSON string), and either ``Instances`` (training format: ``input``,
``output``, ``Final Thought`` and ``intermediate_steps`` of
``[[action, action_input, log], observation]``) or ``Instructions`` with
``Golden_Answers`` (evaluation format: per instruction, the calls a correct
solution makes). Tools are named by ``operationId``, else by the name the
record's ``Function_Projection`` gives the operation, else by the name ToolAlpaca
derives from the path and method (``store.formats.openapi``): most APIs of
ToolAlpaca's real evaluation set (``eval_real.json``) have no ``operationId``.

Ids are derived from the content (API name, position, instruction), so the same
file imports to the same ids: importing it again replaces the toolsets and gold
items and skips the trajectories already in the store.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

from ..db import Store
from ..errors import InputError
from ..records import GoldItem, Message, Toolset, Trajectory
from ..safe_json import loads
from ..toolcalls import ToolCall
from .files import json_type, read_json
from .importing import Imported, content_id, write_imported
from .openapi import toolset_from_openapi
from .summary import ImportSummary

#: The annotators' placeholders for values an earlier call would supply: ``${animeId from searchAnime}``,
#: sometimes with a stray closing quote, sometimes never closed before the next argument.
_PLACEHOLDER = re.compile(r'\$\{[^{}"]*\}"?|\$\{[^{}",]*(?=,)')
#: Where the thought ends in a ReAct log (" I need X.\nAction: f\nAction Input: {}").
_ACTION = re.compile(r"\n?\s*(?:ASSISTANT\s+)?Action\s*:", re.IGNORECASE)
_THOUGHT_PREFIX = re.compile(r"^\s*(?:ASSISTANT\s+)?(?:Thought\s*:)?\s*", re.IGNORECASE)


def import_toolalpaca(store: Store, path: str | os.PathLike[str]) -> ImportSummary:
    """Read the whole file first, then write it in one transaction (a bad record writes nothing)."""
    return write_imported(store, read_toolalpaca(path))


def read_toolalpaca(path: str | os.PathLike[str]) -> Imported:
    """Every API of the file as a toolset named by the API, with its trajectories and gold items."""
    source = str(path)
    data = read_json(path)
    records = [data] if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise InputError(source, f"expected a JSON array of API records, got {json_type(data)}")
    imported = Imported()
    for number, record in enumerate(records, 1):
        where = f"record {number}"
        if not isinstance(record, dict):
            raise InputError(source, f"expected an API object, got {json_type(record)}", where)
        name = record.get("Name")
        if not isinstance(name, str) or not name.strip():
            raise InputError(source, "has no 'Name'", where)
        where = f"record {number} ({name})"
        if name in imported.toolsets:
            raise InputError(source, f"the API name '{name}' appears twice", where)
        toolset = _toolset(record, name, source, where)
        imported.toolsets[name] = toolset
        system = system_prompt(toolset)
        imported.trajectories += _trajectories(record, name, system, source, where)
        imported.gold += _gold(record, toolset, system, source, where)
    return imported


def system_prompt(toolset: Toolset) -> str:
    about = f" ({toolset.description.strip()})" if toolset.description.strip() else ""
    return (f"You are a helpful assistant with the tools of the {toolset.name} API{about}. "
            "Call a tool when you need its information, then answer the user.")


def _toolset(record: dict[str, Any], name: str, source: str, where: str) -> Toolset:
    documentation = record.get("Documentation")
    if isinstance(documentation, str):
        try:
            documentation = loads(documentation)
        except json.JSONDecodeError as exc:
            raise InputError(source, f"Documentation is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                                     f"{exc.msg})", where) from None
    names = _projection(record, source, where)
    try:
        toolset = toolset_from_openapi(documentation, name, source, names)
    except InputError as exc:
        inner = f", {exc.where}" if exc.where else ""
        raise InputError(source, f"Documentation: {exc.problem}", f"{where}{inner}") from None
    if isinstance(record.get("Description"), str) and record["Description"].strip():
        toolset.description = record["Description"].strip()
    return toolset


def _projection(record: dict[str, Any], source: str, where: str) -> dict[str, list[str]]:
    """``Function_Projection``: the tool name ToolAlpaca gave each ``[path, method]`` (its golden answers use them)."""
    projection = record.get("Function_Projection") or {}
    if not isinstance(projection, dict) or not all(
            isinstance(target, list) and len(target) == 2 and all(isinstance(part, str) for part in target)
            for target in projection.values()):
        raise InputError(source, "'Function_Projection' must map each tool name to [path, method]", where)
    return projection


def _trajectories(record: dict[str, Any], name: str, system: str, source: str, where: str) -> list[Trajectory]:
    instances = record.get("Instances") or []
    if not isinstance(instances, list):
        raise InputError(source, f"'Instances' must be an array, got {json_type(instances)}", where)
    out = []
    for number, instance in enumerate(instances, 1):
        here = f"{where}, instance {number}"
        if not isinstance(instance, dict) or not isinstance(instance.get("input"), str):
            raise InputError(source, "an instance needs an 'input' string", here)
        messages = [Message("system", system), Message("user", instance["input"])]
        steps = instance.get("intermediate_steps") or []
        if not isinstance(steps, list):
            raise InputError(source, f"'intermediate_steps' must be an array, got {json_type(steps)}", here)
        for step_number, step in enumerate(steps, 1):
            messages += _step(step, f"call_{step_number}", source, f"{here}, step {step_number}")
        if isinstance(instance.get("output"), str):
            messages.append(Message("assistant", instance["output"]))
        meta = {"final_thought": instance["Final Thought"]} if instance.get("Final Thought") else {}
        out.append(Trajectory(
            id=content_id(name, str(number), instance["input"]), toolset=name, instruction=instance["input"],
            status="imported", source="imported", meta=meta, messages=messages,
        ))
    return out


def _step(step: Any, call_id: str, source: str, where: str) -> list[Message]:
    """``[[action, action_input, log], observation]`` → the assistant's call and the tool's answer."""
    if not (isinstance(step, list) and len(step) == 2 and isinstance(step[0], list) and len(step[0]) >= 2
            and isinstance(step[0][0], str)):
        raise InputError(source, "a step must be [[action, action_input, log], observation]", where)
    action, arguments = step[0][0], step[0][1]
    log = step[0][2] if len(step[0]) > 2 and isinstance(step[0][2], str) else ""
    observation = step[1]
    call = {"id": call_id, "type": "function", "function": {
        "name": action, "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)}}
    return [
        Message("assistant", _thought(log), tool_calls=[call]),
        Message("tool", observation if isinstance(observation, str) else json.dumps(observation),
                tool_call_id=call_id, name=action),
    ]


def _thought(log: str) -> str | None:
    thought = _THOUGHT_PREFIX.sub("", _ACTION.split(log, maxsplit=1)[0]).strip()
    return thought or None


def _gold(record: dict[str, Any], toolset: Toolset, system: str, source: str, where: str) -> list[GoldItem]:
    instructions = record.get("Instructions") or []
    answers = record.get("Golden_Answers")
    if answers is None:
        return []
    if not isinstance(answers, list) or not isinstance(instructions, list) or len(answers) != len(instructions):
        raise InputError(source, "'Golden_Answers' must be an array with one entry per instruction", where)
    tools = toolset.openai_tools()
    items = []
    for number, (instruction, answer) in enumerate(zip(instructions, answers), 1):
        here = f"{where}, golden answer {number}"
        if not isinstance(instruction, str) or not isinstance(answer, list) or not answer:
            raise InputError(source, "expected an instruction string and a non-empty array of calls", here)
        calls: list[ToolCall] = []
        for step in answer:
            call = _gold_call(step, source, here)
            if call not in calls:
                calls.append(call)
        items.append(GoldItem(
            id=f"toolalpaca:{toolset.name}:{number}", toolset=toolset.name, tools=tools,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": instruction}],
            calls=calls, source="toolalpaca",
        ))
    return items


def _gold_call(step: Any, source: str, where: str) -> ToolCall:
    """One golden call; ``${…}`` placeholders become the string ``"${…}"`` (the value an earlier call gives)."""
    if not isinstance(step, dict) or not isinstance(step.get("Action"), str):
        raise InputError(source, "a golden call needs 'Action' and 'Action_Input'", where)
    text = step.get("Action_Input") or "{}"
    try:
        arguments = loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError:
        try:
            arguments = loads(_PLACEHOLDER.sub(_quote_placeholder, text))
        except json.JSONDecodeError as exc:
            raise InputError(source, f"Action_Input is not JSON (column {exc.colno}: {exc.msg})", where) from None
    if not isinstance(arguments, dict):
        raise InputError(source, f"Action_Input must be a JSON object, got {json_type(arguments)}", where)
    return ToolCall(step["Action"], arguments)


def _quote_placeholder(match: re.Match[str]) -> str:
    inner = match.group(0).strip('"').removeprefix("${").removesuffix("}").strip()
    return json.dumps("${" + inner + "}")


def looks_like(record: dict[str, Any]) -> bool:
    return "Name" in record and "Documentation" in record
