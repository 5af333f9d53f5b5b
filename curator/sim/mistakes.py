"""The scripted assistant's mistakes: a correct call turned into a realistic wrong one.

Each maker returns the erroneous tool call (OpenAI shape, arguments as the raw
string a model would emit) or None when the mistake cannot be made on this call
(no required argument to leave out, no sibling tool to confuse it with); the
caller then falls back to another kind. Calls that should fail the schema check
are checked with the same ``Toolbox`` the executor uses, so a planted
``param_invalid`` is always caught as one.
"""
from __future__ import annotations

import json
import os
import random
from typing import Any, Callable

from store.toolcalls import ToolCall

from .toolsets import SimToolset
from .values import value_for

#: Names models reach for instead of the schema's (``location`` for ``city``).
SYNONYMS = {
    "city": ["location", "city_name", "town"], "date": ["day", "on_date", "when"], "days": ["num_days", "n_days"],
    "word": ["term", "text"], "query": ["q", "search", "keywords"], "author": ["author_name", "writer"],
    "isbn": ["book_id", "isbn13"], "limit": ["max_results", "count"], "title": ["name", "summary"],
    "amount": ["value", "quantity"], "base": ["from", "base_currency"], "target": ["to", "target_currency"],
    "from_currency": ["from", "source"], "to_currency": ["to", "dest"], "event_id": ["id", "eventId"],
}
EXTRA_PARAMS = ["format", "verbose", "lang", "units", "detailed", "colour", "include_details", "timezone"]
FAILING_VALUES = {"city": ["Atlantis", "Gotham", "Pariss"], "word": ["flibbertigibbet2", "qwzx"],
                  "author": ["J. Doe-Unknown"], "query": ["xqzv lorem"], "isbn": ["9780000000000"],
                  "event_id": ["evt-0000"]}


def call_dict(call_id: str, name: str, arguments: dict[str, Any] | str) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def wrong_tool(toolset: SimToolset, call: ToolCall, rng: random.Random) -> ToolCall | None:
    """The sibling whose name shares the longest prefix with the right one, called with what fits."""
    others = [n for n in toolset.box.names if n != call.name]
    if not others:
        return None
    best = max(len(os.path.commonprefix([call.name, n])) for n in others)
    name = rng.choice([n for n in others if len(os.path.commonprefix([call.name, n])) == best])
    props = toolset.box.properties(name)
    arguments = {k: v for k, v in call.arguments.items() if k in props}
    for param in toolset.box.required(name):
        arguments.setdefault(param, value_for(props.get(param), param, rng))
    wrong = ToolCall(name, arguments)
    return wrong if not toolset.box.check(wrong) else None


def tool_hallucination(toolset: SimToolset, call: ToolCall, rng: random.Random) -> ToolCall | None:
    name = call.name
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    stem = name[3:] if name.startswith(("get", "set")) and name[3:4].isupper() else name[:1].upper() + name[1:]
    candidates = [name + "s", snake, "fetch" + stem, stem[:1].lower() + stem[1:], name + "Info", name + "V2"]
    candidates = [c for c in candidates if c not in toolset.box and c != name]
    return ToolCall(rng.choice(candidates), dict(call.arguments)) if candidates else None


def param_hallucination(toolset: SimToolset, call: ToolCall, rng: random.Random) -> ToolCall | None:
    props = toolset.box.properties(call.name)
    renames = [(k, s) for k in call.arguments for s in SYNONYMS.get(k, []) if s not in props]
    arguments = dict(call.arguments)
    if renames and rng.random() < 0.5:
        old, new = rng.choice(renames)
        arguments = {(new if k == old else k): v for k, v in arguments.items()}
    else:
        extra = rng.choice([p for p in EXTRA_PARAMS if p not in props] or ["extra"])
        arguments[extra] = value_for(None, extra, rng) if extra not in ("verbose", "detailed") else True
    return ToolCall(call.name, arguments)


def param_missing(toolset: SimToolset, call: ToolCall, rng: random.Random) -> ToolCall | None:
    required = [p for p in toolset.box.required(call.name) if p in call.arguments]
    if not required:
        return None
    drop = rng.choice(required)
    return ToolCall(call.name, {k: v for k, v in call.arguments.items() if k != drop})


def param_invalid(toolset: SimToolset, call: ToolCall, rng: random.Random) -> ToolCall | None:
    props = toolset.box.properties(call.name)
    params = list(call.arguments)
    rng.shuffle(params)
    for param in params:
        for bad in _bad_values(props.get(param) or {}, call.arguments[param]):
            wrong = ToolCall(call.name, {**call.arguments, param: bad})
            if any(p.code == "param_invalid" for p in toolset.box.check(wrong)):
                return wrong
    return None


def _bad_values(schema: dict[str, Any], value: Any) -> list[Any]:
    """Values a model plausibly sends that break ``schema``: words for numbers, near-miss enums, other formats."""
    out: list[Any] = []
    kind = schema.get("type")
    if "enum" in schema:
        out += [str(value).lower() if str(value).isupper() else str(value).upper(), str(value).title() + "s"]
    if kind == "integer":
        words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 7: "seven", 10: "ten"}
        out += [words.get(value, f"{value} days" if isinstance(value, int) else "several"), str(value)]
        if "maximum" in schema:
            out.append(int(schema["maximum"]) + 3)
    if kind == "number":
        out += [f"{value} dollars", -abs(value or 1)]
    if schema.get("format") == "date" and isinstance(value, str) and len(value) == 10:
        out += [f"{value[8:10]}/{value[5:7]}/{value[0:4]}", "next Tuesday"]
    if "pattern" in schema and isinstance(value, str):
        out += [f"{value[:3]}-{value[3:]}", value.replace(":", "h")]
    if kind == "array":
        out.append(", ".join(map(str, value)) if isinstance(value, list) else str(value))
    if kind == "boolean":
        out.append("yes")
    return out


def parse_error(call: ToolCall, rng: random.Random) -> str:
    """Arguments text that is not JSON, the ways models actually break it."""
    text = json.dumps(call.arguments, ensure_ascii=False)
    python = repr(call.arguments)
    choices = [python, text[:-1] + ",}" if len(text) > 2 else "{,}", text[: max(2, len(text) * 2 // 3)]]
    unquoted = text
    for key in call.arguments:
        unquoted = unquoted.replace(f'"{key}":', f"{key}:")
    if unquoted != text:
        choices.append(unquoted)
    broken = [c for c in choices if not _is_json(c)]
    return rng.choice(broken) if broken else "{'"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def call_failure(toolset: SimToolset, call: ToolCall, rng: random.Random) -> ToolCall | None:
    """A well-formed call whose value the tool cannot find (a typo, a place that does not exist)."""
    props = toolset.box.properties(call.name)
    for param, values in FAILING_VALUES.items():
        if param in call.arguments:
            wrong = ToolCall(call.name, {**call.arguments, param: rng.choice(values)})
            if not toolset.box.check(wrong):
                return wrong
    strings = [p for p, v in call.arguments.items() if isinstance(v, str) and "enum" not in (props.get(p) or {})
               and "pattern" not in (props.get(p) or {}) and "format" not in (props.get(p) or {})]
    if not strings:
        return None
    param = rng.choice(strings)
    return ToolCall(call.name, {**call.arguments, param: call.arguments[param] + "x"})


MAKERS: dict[str, Callable[[SimToolset, ToolCall, random.Random], ToolCall | None]] = {
    "wrong_tool": wrong_tool,
    "tool_hallucination": tool_hallucination,
    "param_hallucination": param_hallucination,
    "param_missing": param_missing,
    "param_invalid": param_invalid,
    "tool_call_failure": call_failure,
}
#: When a kind cannot be planted on a call, try these in order.
FALLBACKS = ("param_hallucination", "tool_hallucination")
