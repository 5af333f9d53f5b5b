"""The judge's reply format, and reading a reply into a ``Verdict``.

One JSON object (a Markdown fence or a sentence around it is tolerated, nothing inside it is):

    {"calls": [{"call": 1, "verdict": "ok" | "content_error", "reason": "…", "confidence": 0.9}, …],
     "answer": {"verdict": "supported" | "unsupported", "reason": "…", "confidence": 0.8} | null}

Every call asked about has exactly one entry, by its number; ``answer`` is an object exactly when a final
answer was asked about; an error verdict names its reason. Anything else is an ``UnreadableReply`` whose
message says what was wrong, which the client sends back when it asks again.
"""
from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from store.verdicts import AnswerVerdict, CallVerdict, Verdict

from .case import Case

#: A reason is kept (as the tag's note) up to this many characters.
MAX_REASON = 300

_JUDGED = {"reason": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1}}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["calls"],
    "properties": {
        "calls": {"type": "array", "items": {
            "type": "object", "required": ["call", "verdict", "reason", "confidence"],
            "properties": {"call": {"type": "integer"}, "verdict": {"enum": ["ok", "content_error"]}, **_JUDGED}}},
        "answer": {"type": ["object", "null"], "required": ["verdict", "reason", "confidence"],
                   "properties": {"verdict": {"enum": ["supported", "unsupported"]}, **_JUDGED}},
    },
}
_VALIDATOR = Draft202012Validator(SCHEMA)


class UnreadableReply(Exception):
    """A reply that is not a verdict in the reply format; the message says why."""


def read_reply(text: str, case: Case, model: str) -> Verdict:
    """The verdict ``text`` gives on ``case``, or ``UnreadableReply``."""
    reply = _object(text)
    problem = best_match(_VALIDATOR.iter_errors(reply))
    if problem is not None:
        where = "/".join(str(p) for p in problem.absolute_path)
        raise UnreadableReply(f"{where or 'the reply'}: {problem.message}"[:200])
    entries = {e["call"]: e for e in reply["calls"]}
    asked = {c.number for c in case.calls}
    if len(entries) != len(reply["calls"]):
        raise UnreadableReply("a call has more than one entry")
    if set(entries) != asked:
        missing, unknown = sorted(asked - set(entries)), sorted(set(entries) - asked)
        raise UnreadableReply(f"calls asked about: {sorted(asked)}; missing {missing}, not asked {unknown}")
    answer = reply.get("answer")
    if (answer is None) != (case.answer_index is None):
        raise UnreadableReply("answer must be an object when a final answer is asked about, else null")
    calls = [CallVerdict(c.message_index, c.tool, entries[c.number]["verdict"] == "ok",
                         _reason(entries[c.number], "ok"), float(entries[c.number]["confidence"]))
             for c in case.calls]
    verdict = Verdict(case.trajectory.id, model, calls)
    if answer is not None and case.answer_index is not None:
        verdict.answer = AnswerVerdict(case.answer_index, answer["verdict"] == "supported",
                                       _reason(answer, "supported"), float(answer["confidence"]))
    return verdict


def _object(text: str) -> Any:
    """The first JSON object in ``text``."""
    start = text.find("{")
    if start < 0:
        raise UnreadableReply("no JSON object in the reply")
    try:
        return json.JSONDecoder().raw_decode(text, start)[0]
    except json.JSONDecodeError as exc:
        raise UnreadableReply(f"not JSON: {exc}") from None


def _reason(entry: dict[str, Any], fine: str) -> str:
    reason = " ".join(entry["reason"].split())
    if not reason and entry["verdict"] != fine:
        raise UnreadableReply(f"a {entry['verdict']} verdict needs a reason")
    return reason[:MAX_REASON]
