"""What the model-backed agents are told (ToolAlpaca's roles, rewritten for chat models with native tools).

Each system prompt opens with the sentence that names the role; keep those
openings stable: the loopback test server tells roles apart by them.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from store.toolcalls import ToolCall

from .focus import Focus, describe
from .toolsets import SimToolset

USER_WRITER = "You write requests that real users send to an assistant that can use an API."
USER_ANSWERER = "You are the user talking to an assistant."
EXECUTOR = "You simulate an API server."
DESIGNER = "You design small REST APIs."
#: How many of the requests written so far the writer is shown, not to repeat them.
SHOWN_WRITTEN = 20


def assistant_system(toolset: SimToolset) -> str:
    """The assistant's system message; it is stored as the trajectory's first message."""
    about = f" ({toolset.description.strip()})" if toolset.description.strip() else ""
    return (f"You are a helpful assistant with the tools of the {toolset.name} API{about}. "
            "Call a tool when you need its information, then answer the user. "
            "If the request is missing something you need, ask the user.")


def documentation(toolset: SimToolset) -> str:
    """The toolset as the user writer reads it: names, descriptions and parameters."""
    lines = [f"API: {toolset.name}" + (f" - {toolset.description}" if toolset.description else "")]
    for tool in toolset.toolset.tools:
        params = tool.parameters.get("properties") or {}
        required = set(tool.parameters.get("required") or [])
        shown = ", ".join(
            f"{p} ({'required' if p in required else 'optional'}"
            + (f"; {s.get('description')}" if isinstance(s, dict) and s.get("description") else "") + ")"
            for p, s in params.items()
        )
        lines.append(f"- {tool.name}: {tool.description}" + (f" Inputs: {shown}." if shown else ""))
    return "\n".join(lines)


def write_requests(toolset: SimToolset, count: int, recent: list[str],
                   aims: Sequence[Focus] = ()) -> list[dict[str, str]]:
    """The writer's prompt; ``aims`` (``curator.sim.focus``) name functions and inputs some requests must need."""
    seen = "\n".join(f"- {a}" for a in recent)
    system = (
        f"{USER_WRITER} Given the API documentation, write {count} different requests a user could make. "
        "Each request must be answerable with the API, give concrete values (real names, dates, amounts), "
        "sound like a person and vary in style and length; some may need two or three calls. "
        "Never name the API's functions and never use placeholders such as <city> or [date]. "
        f"Answer with a JSON array of {count} strings and nothing else."
    )
    user = documentation(toolset) + (f"\n\nAlready written (do not repeat these):\n{seen}" if seen else "")
    if aims:
        user += (f"\n\nThe data has too few requests for some functions and inputs: of the {count} requests, "
                 f"write these {len(aims)}, one request each:\n" + "\n".join(describe(aim) for aim in aims))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def answer_question(toolset: SimToolset, instruction: str, transcript: list[dict[str, Any]],
                    question: str) -> list[dict[str, str]]:
    system = (
        f"{USER_ANSWERER} Your request was: {instruction!r}. The assistant asks you something; answer in one "
        "or two sentences, in character, with concrete values consistent with your request. "
        "Do not mention that you are simulated."
    )
    shown = "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in transcript if m["role"] in ("user", "assistant"))
    return [{"role": "system", "content": system},
            {"role": "user", "content": f"Conversation so far:\n{shown}\n\nThe assistant asks: {question}"}]


def execute(toolset: SimToolset, call: ToolCall, memory: list[tuple[ToolCall, str]]) -> list[dict[str, str]]:
    tool = toolset.by_name[call.name]
    returns = toolset.returns(call.name)
    system = (
        f"{EXECUTOR} Play the {toolset.name} API and answer one call to its {call.name} operation with the "
        "response body a real server would return: JSON only, no explanation, no code fence. "
        "Keep it realistic and consistent with the responses you gave earlier in this session. "
        "If the arguments name something that cannot exist, answer with a JSON error object."
    )
    parts = [f"Operation: {tool.name}\nDescription: {tool.description}",
             f"Parameters schema: {json.dumps(tool.parameters, ensure_ascii=False)}"]
    if returns:
        parts.append(f"Response schema: {json.dumps(returns, ensure_ascii=False)}")
    if memory:
        earlier = "\n".join(f"{c.name}({json.dumps(c.arguments, ensure_ascii=False)}) -> {r}" for c, r in memory[-6:])
        parts.append(f"Your earlier responses in this session:\n{earlier}")
    parts.append(f"Call: {call.name}({json.dumps(call.arguments, ensure_ascii=False)})")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def describe_functions(name: str, description: str) -> list[dict[str, str]]:
    """ToolAlpaca's first generation step: the functions an API offers, in words."""
    system = (f"{DESIGNER} List the 3 to 6 functions a public web API would offer, one per line as "
              "'name: what it does; inputs: ...; output: ...', with camelCase names.")
    return [{"role": "system", "content": system}, {"role": "user", "content": f"API: {name}\n{description}"}]


def write_spec(name: str, description: str, functions: str, feedback: str | None) -> list[dict[str, str]]:
    """The second step: an OpenAPI 3 spec for those functions (again with the validator's complaint)."""
    system = (
        f"{DESIGNER} Write the OpenAPI 3.0 specification, as JSON only, of the API described. Every operation "
        "needs an operationId (the function's name), a description, typed parameters or a JSON request body, "
        "and a 200 response with a JSON schema."
    )
    user = f"API: {name}\n{description}\n\nFunctions:\n{functions}"
    if feedback:
        user += f"\n\nYour previous specification was rejected: {feedback}\nFix it and answer with the whole spec."
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
