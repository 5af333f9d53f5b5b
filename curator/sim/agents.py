"""The three agents of a simulation (ToolAlpaca's roles), on top of any backend.

- The user writes requests and answers clarifying questions (the backend's words).
- The assistant takes turns; its reply becomes a store ``Message`` here, and a
  reply that is not a well-formed call or answer is kept with its ``raw`` text
  (a ``parse_error`` step), never raised.
- The tool executor checks every call with ``store.toolcalls`` before anything
  else: a malformed call gets realistic error feedback without asking the
  model; a well-formed one may hit simulated instability, and otherwise gets the
  backend's response, consistent with the executor's earlier answers.
"""
from __future__ import annotations

import json
import re
from typing import Any

from store.feedback import classify_feedback
from store import Message
from store.toolcalls import CallParseError, parse_openai_call

from . import error_replies
from .backends.base import Backend, Episode, Instruction, Reply, Written
from .toolsets import SimToolset

#: Text that is a tool call the model failed to make natively (no tool parser on the server, a stray format).
_CALL_IN_TEXT = re.compile(r'\A\s*(?:```(?:json)?\s*)?\{\s*"(?:name|function|tool)"|<tool_call>|\[TOOL_CALLS\]|'
                           r"\A\s*(?:Action|functions\.\w+)\s*:")


class UserAgent:
    def __init__(self, backend: Backend, toolset: SimToolset):
        self.backend, self.toolset = backend, toolset

    async def instructions(self, start: int, count: int, avoid: Written) -> list[Instruction]:
        return await self.backend.instructions(self.toolset, start, count, avoid)

    async def answer(self, episode: Episode, question: str) -> str:
        return (await self.backend.answer(episode, question)).strip() or "Please go ahead."


class AssistantAgent:
    def __init__(self, backend: Backend):
        self.backend = backend

    async def turn(self, episode: Episode) -> Message:
        return to_message(await self.backend.act(episode), episode)


def to_message(reply: Reply, episode: Episode) -> Message:
    """The assistant's reply as it will be stored; ``raw`` is set exactly when it did not parse."""
    content = reply.content if reply.content and reply.content.strip() else None
    if reply.tool_calls:
        calls = [_normalise(call, episode, i) for i, call in enumerate(reply.tool_calls)]
        raw = None
        for call in calls:
            try:
                parse_openai_call(call)
            except CallParseError:
                raw = json.dumps(reply.tool_calls, ensure_ascii=False)
        return Message("assistant", content, tool_calls=calls, raw=raw)
    if content is None:
        return Message("assistant", None, raw=reply.content or "")
    if _CALL_IN_TEXT.search(content):
        return Message("assistant", content, raw=content)
    return Message("assistant", content)


def _normalise(call: Any, episode: Episode, position: int) -> dict[str, Any]:
    """An OpenAI ``tool_calls`` entry with an id and string arguments, whatever the server sent."""
    call = call if isinstance(call, dict) else {}
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = "" if arguments is None else json.dumps(arguments, ensure_ascii=False)
    call_id = call.get("id") or f"call_{episode.index}_{len(episode.messages)}_{position}"
    return {"id": call_id, "type": "function", "function": {"name": function.get("name") or "", "arguments": arguments}}


def is_question(message: Message) -> bool:
    """A plain reply that asks the user something (only before the assistant has acted, see the engine)."""
    return message.raw is None and not message.tool_calls and (message.content or "").rstrip().endswith("?")


class ToolExecutor:
    def __init__(self, backend: Backend, toolset: SimToolset, instability_rate: float):
        self.backend, self.toolset, self.instability_rate = backend, toolset, instability_rate

    async def run(self, episode: Episode, call: dict[str, Any]) -> tuple[str, str | None]:
        """The tool's answer to one call and, when it is an error, its code."""
        rng, box = episode.rng, self.toolset.box
        try:
            parsed = parse_openai_call(call)
        except CallParseError as exc:
            return error_replies.parse_error(rng, str(exc).split(": ", 1)[-1]), "parse_error"
        problems = box.check(parsed)
        if problems:
            props = box.properties(parsed.name) if parsed.name in box else {}
            text = error_replies.for_problems(rng, parsed.name, parsed.arguments, problems, box.names, props)
            return text, problems[0].code
        if self.instability_rate and rng.random() < self.instability_rate:
            return error_replies.instability(rng, parsed.name), "tool_instability"
        for earlier, response in episode.memory:
            if earlier.name == parsed.name and earlier.arguments == parsed.arguments:
                return response, _error_code(response)
        response = await self.backend.respond(episode, parsed)
        episode.memory.append((parsed, response))
        return response, _error_code(response)


def _error_code(response: str) -> str | None:
    problems = classify_feedback(response)
    return problems[0].code if problems else None
