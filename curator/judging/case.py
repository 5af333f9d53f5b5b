"""What the semantic judge is asked about one trajectory: its calls still in question, and its final answer.

APIGen checks in three stages: format, execution, semantics. The first two are the flagger's
(``store.flagging``); the judge is asked only about what they left standing: a call on a message that
a check or a human already masked, or that an annotator corrected, is not asked about (it does not
train as it is), nor a call whose arguments do not parse. The judge's own earlier tags do not count:
re-judging asks again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from store import Trajectory
from store.taxonomy import MaskPolicy
from store.toolcalls import CallParseError, parse_openai_call
from store.verdicts import ORIGIN


@dataclass(frozen=True)
class AskedCall:
    """One call the judge is asked about; ``number`` (from 1) names it in the prompt and the reply, ``position``
    is its place among its message's calls."""

    number: int
    message_index: int
    position: int
    tool: str
    arguments: dict[str, Any]


@dataclass
class Case:
    trajectory: Trajectory
    #: The toolset's tools (OpenAI function schemas); empty when the trajectory has no stored toolset.
    tools: list[dict[str, Any]]
    calls: list[AskedCall] = field(default_factory=list)
    #: The index and text of the final answer (the last message, an assistant's text), when it is asked about.
    answer_index: int | None = None
    answer: str | None = None
    #: Messages not asked about, by index, and the codes that masked them (what the prompt shows).
    settled: dict[int, list[str]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Nothing to ask: no call left in question and no final answer."""
        return not self.calls and self.answer_index is None


def build_case(trajectory: Trajectory, tools: list[dict[str, Any]], policy: MaskPolicy) -> Case:
    """The case of ``trajectory``: the calls and final answer no other check or human has settled."""
    settled: dict[int, list[str]] = {}
    for tag in trajectory.tags:
        if tag.message_index is not None and tag.origin != ORIGIN and policy.masks(tag.code):
            settled.setdefault(tag.message_index, []).append(tag.code)
    for correction in trajectory.corrections:
        settled.setdefault(correction.message_index, []).append("corrected")
    case = Case(trajectory, tools, settled=settled)
    for message in trajectory.messages:
        if message.role != "assistant" or message.index is None or message.index in settled:
            continue
        for position, entry in enumerate(message.tool_calls or []):
            try:
                call = parse_openai_call(entry)
            except CallParseError:
                continue
            case.calls.append(AskedCall(len(case.calls) + 1, message.index, position, call.name, call.arguments))
    last = trajectory.messages[-1] if trajectory.messages else None
    if last is not None and last.role == "assistant" and not last.tool_calls and (last.content or "").strip() \
            and last.index not in settled:
        case.answer_index, case.answer = last.index, last.content
    return case
