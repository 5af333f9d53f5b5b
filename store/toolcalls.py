"""Parse, validate and compare tool calls: the one judge of a call.

The tool executor (is this call well-formed?), the auto-flagger (what is wrong
with it?), the RL reward and the evaluation (how close is it to the gold
call?) all use this module, so a call is judged the same way everywhere.

Tools are OpenAI function schemas, either wrapped
(``{"type": "function", "function": {...}}``) or bare (``{"name", "parameters"}``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``tool_calls`` entry; ``arguments`` is a JSON string."""
        return {
            "id": self.id or "",
            "type": "function",
            "function": {"name": self.name, "arguments": json.dumps(self.arguments, ensure_ascii=False)},
        }


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a call, as a taxonomy code and the names involved."""

    code: str
    detail: str
    tool: str | None = None
    param: str | None = None


class CallParseError(ValueError):
    """The call cannot be read: its arguments are not a JSON object, or it has no name."""

    code = "parse_error"


def parse_arguments(arguments: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Arguments as a dict; a JSON string must decode to an object."""
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, Mapping):
        return dict(arguments)
    try:
        value = json.loads(arguments)
    except (TypeError, json.JSONDecodeError) as exc:
        raise CallParseError(f"arguments are not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CallParseError(f"arguments must be a JSON object, got {type(value).__name__}")
    return value


def parse_call(name: Any, arguments: str | Mapping[str, Any] | None, id: str | None = None) -> ToolCall:
    """A ``ToolCall`` from a name and JSON arguments, or ``CallParseError``."""
    if not isinstance(name, str) or not name.strip():
        raise CallParseError("the call has no tool name")
    return ToolCall(name=name.strip(), arguments=parse_arguments(arguments), id=id)


def parse_openai_call(tool_call: Mapping[str, Any]) -> ToolCall:
    """A ``ToolCall`` from one entry of an OpenAI message's ``tool_calls``."""
    function = tool_call.get("function")
    if not isinstance(function, Mapping):
        raise CallParseError("tool call has no 'function' object")
    return parse_call(function.get("name"), function.get("arguments"), tool_call.get("id"))


def function_of(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``{"name", "description", "parameters"}`` part of a wrapped or bare tool."""
    inner = tool.get("function")
    return inner if isinstance(inner, Mapping) else tool


def tool_names(tools: Iterable[Mapping[str, Any]]) -> list[str]:
    return [function_of(t)["name"] for t in tools]


class Toolbox:
    """A toolset's schemas with their validators compiled once."""

    def __init__(self, tools: Sequence[Mapping[str, Any]]):
        self.tools = list(tools)
        self.parameters: dict[str, dict[str, Any]] = {}
        self._validators: dict[str, Draft202012Validator] = {}
        for tool in self.tools:
            fn = function_of(tool)
            params = dict(fn.get("parameters") or {"type": "object", "properties": {}})
            self.parameters[fn["name"]] = params
            self._validators[fn["name"]] = Draft202012Validator(params, format_checker=FormatChecker())

    @property
    def names(self) -> list[str]:
        return list(self.parameters)

    def __contains__(self, name: object) -> bool:
        return name in self.parameters

    def properties(self, name: str) -> dict[str, Any]:
        return dict(self.parameters[name].get("properties") or {})

    def required(self, name: str) -> list[str]:
        return list(self.parameters[name].get("required") or [])

    def check(self, call: ToolCall) -> list[Problem]:
        """Everything wrong with a parsed call, in a stable order; empty when it is valid."""
        if call.name not in self.parameters:
            return [Problem("tool_hallucination", f"'{call.name}' is not a valid tool", tool=call.name)]
        props = self.properties(call.name)
        problems = [
            Problem("param_hallucination", f"unexpected argument '{arg}'", call.name, arg)
            for arg in call.arguments
            if arg not in props
        ]
        known = {k: v for k, v in call.arguments.items() if k in props}
        for error in sorted(self._validators[call.name].iter_errors(known), key=_error_order):
            problems.append(_problem_from(error, call.name))
        return problems


def _error_order(error: ValidationError) -> tuple[str, str]:
    return (str(list(error.absolute_path)), error.validator)


def _problem_from(error: ValidationError, tool: str) -> Problem:
    if error.validator == "required" and not error.absolute_path:
        missing = _missing_name(error)
        return Problem("param_missing", f"missing required argument '{missing}'", tool, missing)
    param = str(error.absolute_path[0]) if error.absolute_path else None
    where = f"argument '{param}'" if param else "arguments"
    return Problem("param_invalid", f"{where}: {error.message}", tool, param)


def _missing_name(error: ValidationError) -> str:
    # jsonschema's message is "'city' is a required property"
    for name in error.validator_value:
        if isinstance(error.instance, Mapping) and name not in error.instance:
            return name
    return error.message


def check_call(call: ToolCall, tools: Sequence[Mapping[str, Any]] | Toolbox) -> list[Problem]:
    """``Toolbox(tools).check(call)`` for a one-off check."""
    box = tools if isinstance(tools, Toolbox) else Toolbox(tools)
    return box.check(call)
