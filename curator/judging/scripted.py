"""The scripted judge: offline, deterministic, no model; the same interface as the model judge.

Two grounding rules, the checks a careful reader makes first:

- **A call's values come from somewhere.** Every argument value (strings, numbers; not booleans, nor a
  parameter whose schema lists its values) must appear in what the user wrote or in a tool result the
  assistant had seen by then; a value from nowhere (another city, a number the user never said) is a
  ``content_error``. A number may be spelled out ("three days").
- **An answer says what the tools said.** Every number in the final answer, and every capitalised word
  that does not start a sentence (a name, a place, a code), must appear in a tool result or the user's
  words; a number may also be the length of a list a tool returned ("3 results").

Confidence says how much the rule could check: 0.9 when every value it read was found, 0.8 for an error,
0.5 when it found nothing to check.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterator

from store.safe_json import loads
from store.verdicts import AnswerVerdict, CallVerdict, Verdict

from .base import Judge
from .case import AskedCall, Case
from .config import SCRIPTED

SURE, ERROR, UNSURE = 0.9, 0.8, 0.5
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_SPELLED = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
            "twelve"]
#: Shown of a value in a reason.
_SHOWN = 40


class ScriptedJudge(Judge):
    model = SCRIPTED

    async def verdict(self, case: Case) -> Verdict:
        return judge_case(case)


def judge_case(case: Case) -> Verdict:
    """The scripted verdict on ``case``."""
    messages = case.trajectory.messages
    said = " ".join(m.content for m in messages if m.role == "user" and m.content)
    schemas = {_name(t): _parameters(t) for t in case.tools}
    verdict = Verdict(case.trajectory.id, SCRIPTED)
    for call in case.calls:
        seen = " ".join([said, *(m.content for m in messages
                                 if m.role == "tool" and m.content and (m.index or 0) < call.message_index)])
        verdict.calls.append(_judge_call(call, seen, schemas.get(call.tool, {})))
    if case.answer_index is not None and case.answer is not None:
        results = [m.content for m in messages if m.role == "tool" and m.content]
        verdict.answer = _judge_answer(case.answer_index, case.answer, said, results)
    return verdict


def _judge_call(call: AskedCall, seen: str, properties: dict[str, Any]) -> CallVerdict:
    text, numbers = _norm(seen), _numbers(seen)
    checked, missing = 0, []
    for name, value in _values(call.arguments, properties):
        checked += 1
        if not _found(value, text, numbers):
            missing.append(f"{name}={json.dumps(value, ensure_ascii=False)[:_SHOWN]}")
    if missing:
        return CallVerdict(call.message_index, call.tool, False,
                           f"{', '.join(missing[:3])} is not in the request or an earlier tool result", ERROR)
    reason = "every value is in the request or an earlier tool result" if checked else "no value to check"
    return CallVerdict(call.message_index, call.tool, True, reason, SURE if checked else UNSURE)


def _judge_answer(index: int, answer: str, said: str, results: list[str]) -> AnswerVerdict:
    backing = " ".join([said, *results])
    text, numbers = _norm(backing), _numbers(backing) | _list_lengths(results)
    claims = [float(n) for n in _NUMBER.findall(answer)]
    unsupported = [_NUMBER.findall(answer)[i] for i, n in enumerate(claims) if n not in numbers]
    names = _names(answer)
    unsupported += [w for w in names if _norm(w) not in text]
    if unsupported:
        shown = ", ".join(dict.fromkeys(unsupported[:5]))
        return AnswerVerdict(index, False, f"the answer says {shown}, which no tool result says", ERROR)
    if claims or names:
        return AnswerVerdict(index, True, "every number and name in it is in a tool result", SURE)
    return AnswerVerdict(index, True, "no number or name to check", UNSURE)


def _values(arguments: dict[str, Any], properties: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(name, value)`` of every checkable leaf: strings and numbers, not booleans nor enum parameters."""
    for key, value in arguments.items():
        schema = properties.get(key) if isinstance(properties.get(key), dict) else {}
        if "enum" in schema or "const" in schema:
            continue
        yield from _leaves(f"{prefix}{key}", value, schema)


def _leaves(name: str, value: Any, schema: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        yield from _values(value, schema.get("properties") or {}, f"{name}.")
    elif isinstance(value, list):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        if "enum" not in items:
            for item in value:
                yield from _leaves(name, item, items)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield name, value
    elif isinstance(value, str) and value.strip():
        yield name, value


def _found(value: Any, text: str, numbers: set[float]) -> bool:
    if isinstance(value, str):
        return _norm(value) in text
    number = abs(float(value))  # a sign is not read from the text ("-3" and "3" are one number there)
    if number in numbers:
        return True
    spelled = _SPELLED[int(number)] if number.is_integer() and number < len(_SPELLED) else None
    return spelled is not None and re.search(rf"\b{spelled}\b", text) is not None


def _names(text: str) -> list[str]:
    """Capitalised words that do not start a sentence (nor are "I"): names, places, codes."""
    out = []
    for match in _WORD.finditer(text):
        word = match.group()
        before = text[:match.start()].rstrip()
        if word[0].isupper() and before and before[-1] not in ".!?:\n\"'(" and not re.fullmatch(r"I(['’]\w+)?", word):
            out.append(word)
    return out


def _list_lengths(results: list[str]) -> set[float]:
    """The lengths of the lists in the tool results that are JSON: an answer may count what a tool returned."""
    lengths: set[float] = set()

    def walk(value: Any) -> None:
        if isinstance(value, list):
            lengths.add(float(len(value)))
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    for result in results:
        try:
            walk(loads(result))
        except (ValueError, TypeError):
            continue
    return lengths


def _numbers(text: str) -> set[float]:
    return {float(n) for n in _NUMBER.findall(text)}


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def _name(tool: dict[str, Any]) -> str:
    return str(tool.get("function", tool).get("name"))


def _parameters(tool: dict[str, Any]) -> dict[str, Any]:
    properties = (tool.get("function", tool).get("parameters") or {}).get("properties")
    return properties if isinstance(properties, dict) else {}
