"""What the model judge is sent: the task and reply format, then the trajectory as one JSON document.

The conversation goes as JSON (roles, contents, calls with their numbers), so nothing a user, model or
tool wrote can pass for the prompt's own words; long contents are cut.
"""
from __future__ import annotations

import json
from typing import Any

from store import Message

from .case import Case

SYSTEM = """You are the semantic judge of tool-use conversations: a user's request, an assistant that calls \
tools, and what the tools returned. You judge two things.

1. Each numbered tool call: does it do what the user asked for? The tool must serve the request and every \
argument value must say what the user said (or what an earlier tool result gave): another city, date, \
amount, item or person, a value the user never gave, or a tool that does not serve the request is a \
content_error. Whether the call is well-formed is checked elsewhere: judge its meaning only.
2. The final answer, when there is one: is every fact in it supported by the tool results (or by the user's \
own words)? An answer that states what no tool returned, or contradicts a tool result, is unsupported.

Judge only the calls you are asked about (by number) and the answer only when you are asked about it. Reply \
with one JSON object and nothing else:
{"calls": [{"call": 1, "verdict": "ok", "reason": "...", "confidence": 0.9}],
 "answer": {"verdict": "supported", "reason": "...", "confidence": 0.9}}
- "calls": one entry for every call asked about, by its number; "verdict" is "ok" or "content_error".
- "answer": "verdict" is "supported" or "unsupported"; null when you are not asked about the answer.
- "reason": one short sentence; for an error, say what is wrong (the value asked for and the value given).
- "confidence": how sure you are of that verdict, a number from 0 to 1."""

#: A message's content is cut to this many characters in the prompt.
MAX_CONTENT = 6000


def messages(case: Case) -> list[dict[str, Any]]:
    """The chat messages that ask the judge about ``case``."""
    numbers = {(c.message_index, c.position): c.number for c in case.calls}
    conversation = [_message(m, numbers, case.settled.get(m.index)) for m in case.trajectory.messages]
    document = {
        "tools": [_tool(t) for t in case.tools],
        "conversation": conversation,
        "judge": {"calls": [c.number for c in case.calls], "answer": case.answer_index is not None},
    }
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": "The trajectory, as JSON:\n" + json.dumps(document, ensure_ascii=False)}]


def again(problem: str) -> dict[str, Any]:
    """The message that asks for a reply again, saying what was wrong with the last one."""
    return {"role": "user", "content": f"That reply is not in the format ({problem}). Reply again with only the "
                                       "JSON object, one entry for every call asked about."}


def _message(message: Message, numbers: dict[tuple[int, int], int], settled: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": _cut(message.content)}
    if message.tool_calls:
        out["calls"] = [{"call": numbers.get((message.index, p)), **_call(entry)}
                        for p, entry in enumerate(message.tool_calls)]
    if settled:
        out["already_flagged"] = settled  # not asked about; shown so the judge knows why
    return out


def _call(entry: Any) -> dict[str, Any]:
    """A stored call as the prompt shows it: the tool and the arguments as the model wrote them."""
    function = entry.get("function") if isinstance(entry, dict) else None
    function = function if isinstance(function, dict) else {}
    return {"tool": function.get("name"), "arguments": _cut(function.get("arguments"))}


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function", tool)
    return {k: function.get(k) for k in ("name", "description", "parameters")}


def _cut(text: Any) -> Any:
    if isinstance(text, str) and len(text) > MAX_CONTENT:
        return f"{text[:MAX_CONTENT]}… ({len(text) - MAX_CONTENT} more characters)"
    return text
