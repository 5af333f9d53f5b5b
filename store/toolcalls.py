"""Parse, validate and compare tool calls: the one judge of a call.

The tool executor (is this call well-formed?), the auto-flagger (what is wrong
with it?), the RL reward and the evaluation (how close is it to the gold
call?) all use this module, so a call is judged the same way everywhere.

Tools are OpenAI function schemas, either wrapped
(``{"type": "function", "function": {...}}``) or bare (``{"name", "parameters"}``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from .safe_json import loads


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
        value = loads(arguments)
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


# --- The judge: a predicted call against the gold call(s) -------------------------------------

#: TL-Training's error-type reward: the penalty of each code; a call's reward is the sum of its
#: codes' penalties, or ``CORRECT_REWARD`` when it has none. The codes a verdict can hold are
#: hierarchical (see ``judge``), so only the parameter codes ever add up.
REWARDS: dict[str, float] = {
    "parse_error": -2.0,
    "tool_hallucination": -2.0,
    "wrong_tool": -1.5,
    "param_hallucination": -0.8,
    "param_redundant": -0.5,
    "param_missing": -0.5,
    "content_error": -0.25,
}
CORRECT_REWARD = 1.0

Predicted = ToolCall | Mapping[str, Any] | str


@dataclass(frozen=True)
class Verdict:
    """How a predicted call compares with a gold call.

    ``ts``: the right tool; ``pi``: also exactly the gold argument names; ``cf``: also equal
    values (RoTBench). ``problems`` name the tool and parameters behind each code.
    """

    problems: tuple[Problem, ...]
    reward: float
    ts: bool
    pi: bool
    cf: bool
    call: ToolCall | None = None
    gold: ToolCall | None = None

    @property
    def codes(self) -> tuple[str, ...]:
        """The distinct codes, in the order their problems were found."""
        return tuple(dict.fromkeys(p.code for p in self.problems))

    @property
    def correct(self) -> bool:
        return not self.problems


def judge(
    predicted: Predicted,
    gold: ToolCall | Mapping[str, Any] | Sequence[ToolCall | Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | Toolbox,
) -> Verdict:
    """Judge ``predicted`` against the gold call, or the best of several acceptable ones.

    ``predicted`` is a ``ToolCall``, an OpenAI ``tool_calls`` entry, a bare
    ``{"name", "arguments"}`` dict, or a raw string that did not parse (always
    ``parse_error``). The checks stop at the first level that fails: unparseable,
    then tool not in the toolset, then wrong tool, then parameter names
    (hallucinated, redundant and missing add up), then values (``content_error``).
    With several gold calls the verdict that gets furthest along TS → PI → CF wins,
    then the higher reward; values compare as ``normalize_value`` says.
    """
    box = tools if isinstance(tools, Toolbox) else Toolbox(tools)
    golds = [_as_call(g) for g in _gold_list(gold)]
    if not golds:
        raise ValueError("judge needs at least one gold call")
    try:
        call = _as_call(predicted)
    except CallParseError as exc:
        return _verdict([Problem("parse_error", str(exc))], None, golds[0])
    return max((_judge_one(call, g, box) for g in golds), key=_rank)


def _gold_list(gold: Any) -> list[Any]:
    if isinstance(gold, (ToolCall, Mapping)):
        return [gold]
    return list(gold)


def _as_call(value: Predicted) -> ToolCall:
    if isinstance(value, ToolCall):
        return value
    if isinstance(value, str):
        raise CallParseError(f"not a tool call: {value[:80]!r}")
    if isinstance(value, Mapping) and "function" in value:
        return parse_openai_call(value)
    if isinstance(value, Mapping):
        return parse_call(value.get("name"), value.get("arguments"), value.get("id"))
    raise CallParseError(f"not a tool call: {type(value).__name__}")


def _rank(verdict: Verdict) -> tuple[bool, bool, bool, float]:
    return (verdict.cf, verdict.pi, verdict.ts, verdict.reward)


def _verdict(problems: list[Problem], call: ToolCall | None, gold: ToolCall) -> Verdict:
    codes = dict.fromkeys(p.code for p in problems)
    reward = round(sum(REWARDS[c] for c in codes), 4) if codes else CORRECT_REWARD
    ts = call is not None and call.name == gold.name
    pi = ts and set(call.arguments) == set(gold.arguments)
    cf = pi and not codes
    return Verdict(tuple(problems), reward, ts, pi, cf, call, gold)


def _judge_one(call: ToolCall, gold: ToolCall, box: Toolbox) -> Verdict:
    if call.name not in box:
        return _verdict([Problem("tool_hallucination", f"'{call.name}' is not a valid tool", call.name)], call, gold)
    if call.name != gold.name:
        detail = f"called '{call.name}', expected '{gold.name}'"
        return _verdict([Problem("wrong_tool", detail, call.name)], call, gold)
    problems = _name_problems(call, gold, box) or _value_problems(call, gold, box)
    return _verdict(problems, call, gold)


def _name_problems(call: ToolCall, gold: ToolCall, box: Toolbox) -> list[Problem]:
    """Hallucinated (not in the schema), then redundant (in the schema, not in gold), then missing."""
    props = box.properties(call.name)
    hallucinated = [a for a in call.arguments if a not in props]
    redundant = [a for a in call.arguments if a in props and a not in gold.arguments]
    missing = [a for a in gold.arguments if a not in call.arguments]
    return (
        [Problem("param_hallucination", f"'{a}' is not a parameter", call.name, a) for a in hallucinated]
        + [Problem("param_redundant", f"'{a}' is not needed", call.name, a) for a in redundant]
        + [Problem("param_missing", f"'{a}' is missing", call.name, a) for a in missing]
    )


def _value_problems(call: ToolCall, gold: ToolCall, box: Toolbox) -> list[Problem]:
    props = box.properties(call.name)
    return [
        Problem("content_error", f"'{arg}' is {value!r}, expected {gold.arguments[arg]!r}", call.name, arg)
        for arg, value in call.arguments.items()
        if not is_placeholder(gold.arguments[arg])
        and normalize_value(value, props.get(arg)) != normalize_value(gold.arguments[arg], props.get(arg))
    ]


_PLACEHOLDER = re.compile(r"\$\{[^{}]*\}")


def is_placeholder(value: Any) -> bool:
    """A gold value that stands for an earlier call's output, as ToolAlpaca's golden answers write it
    (``"${animeId from searchAnime}"``): a single-step prediction cannot know it, so any value matches."""
    return isinstance(value, str) and _PLACEHOLDER.fullmatch(value.strip()) is not None


# --- Value normalisation ------------------------------------------------------------------------

_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


def normalize_value(value: Any, schema: Mapping[str, Any] | None = None) -> Any:
    """A comparable form of an argument value, read through its JSON-schema type.

    - integer / number: numeric strings become numbers ("3" == 3 == 3.0); a
      value that is not a number stays as it is (and so differs from one that is).
    - boolean: "true"/"false", "yes"/"no", "1"/"0" (any case) become booleans.
    - string: compared case-insensitively (``casefold``) with surrounding
      whitespace stripped and inner runs of whitespace collapsed to one space,
      because tools and gold answers disagree on "New York" / "new york " far more
      often than case carries meaning; a number given for a string parameter
      compares as its text ("3" == 3).
    - array: element by element, in order, through ``items``; object: key by key
      through ``properties``.
    - no schema or no type: strings as above, everything else as it is.
    """
    schema = schema if isinstance(schema, Mapping) else {}
    kind = _schema_type(schema, value)
    if kind in ("integer", "number"):
        return _to_number(value)
    if kind == "boolean":
        return _to_bool(value)
    if kind == "string" or isinstance(value, str):
        return _normalize_string(value)
    if isinstance(value, list):
        return [normalize_value(v, schema.get("items")) for v in value]
    if isinstance(value, Mapping):
        props = schema.get("properties") or {}
        return {k: normalize_value(v, props.get(k)) for k, v in value.items()}
    return value


def _schema_type(schema: Mapping[str, Any], value: Any) -> str | None:
    """The schema's type; of a union such as ["integer", "null"], the first that is not null."""
    kind = schema.get("type")
    if isinstance(kind, list):
        if value is None:
            return None
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def _to_number(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return _normalize_string(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _to_bool(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip().casefold()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        return _normalize_string(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return value


def _normalize_string(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = json.dumps(value)
    if not isinstance(value, str):
        return value
    return " ".join(value.split()).casefold()
