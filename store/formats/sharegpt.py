"""ShareGPT export as LLaMA-Factory reads it, one conversation a line.

``{"conversations": [{"from": "human"|"gpt"|"function_call"|"observation", "value"}], "system", "tools"}``
with ``tools`` a JSON string of function schemas. Register it in LLaMA-Factory's
``dataset_info.json`` with ``"formatting": "sharegpt"`` and ``"columns":
{"messages": "conversations", "system": "system", "tools": "tools"}``.

The format has one slot per turn, so an assistant message that thinks and calls
keeps only the call, and the answers to several calls of one message become one
``observation`` (a JSON array). LLaMA-Factory trains every ``gpt`` and
``function_call`` turn and has no per-turn weight, so a masked assistant message
(weight 0) is left out together with the tool answers to it: the recovery that
follows still trains, in a context without the mistake (the JSONL and Axolotl
exports keep the mistake in the context, untrained). A corrected call is written
as the annotator fixed it, never as the model first made it.

LLaMA-Factory's ``SharegptDatasetConverter`` drops a conversation unless
``human``/``observation`` turns sit at even positions and ``gpt``/``function_call``
turns at odd ones, and the count is even. Turns after the last assistant turn
train nothing, so they are cut; a conversation that still breaks the rule (two
user turns in a row, two answers in a row, no assistant turn left) is left out,
and the export summary counts it by reason.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterator

from ..db import Store
from ..records import corrected_message
from ..toolcalls import function_of
from .files import write_lines
from .summary import ExportSummary


#: Where LLaMA-Factory accepts each role: prompts at even positions, answers (the trained turns) at odd ones.
PROMPTS = ("human", "observation")
ANSWERS = ("gpt", "function_call")


def export_sharegpt(store: Store, out: str | os.PathLike[str], status: str = "accepted") -> ExportSummary:
    """Write each selected trajectory LLaMA-Factory would accept; count the others in ``left_out``."""
    summary = ExportSummary()

    def lines() -> Iterator[str]:
        for record in store.iter_records(status, derived=False):
            example = sharegpt_record(record)
            problem = invalid_reason(example["conversations"])
            if problem:
                summary.left_out[problem] += 1
                continue
            summary.trajectories += 1
            yield json.dumps(example, ensure_ascii=False) + "\n"

    write_lines(out, lines())
    return summary


def sharegpt_record(record: dict[str, Any]) -> dict[str, Any]:
    """One canonical record (``Store.iter_records``) as a LLaMA-Factory ShareGPT example."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    fixes = {c["message"]: c["tool_calls"] for c in (record.get("meta") or {}).get("corrections") or []}
    masked = False  # the last assistant message was masked: the tool answers to it go with it
    for index, message in enumerate(record["messages"]):
        if index in fixes:
            message = corrected_message(message, fixes[index])
        role, content = message["role"], message.get("content") or ""
        if role != "tool":
            masked = role == "assistant" and message.get("weight") == 0
        if masked:
            continue
        if role == "system":
            system.append(content)
        elif role == "user":
            turns.append({"from": "human", "value": content})
        elif role == "assistant" and message.get("tool_calls"):
            calls = [_call(c) for c in message["tool_calls"]]
            turns.append({"from": "function_call",
                          "value": json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)})
        elif role == "assistant":
            turns.append({"from": "gpt", "value": content})
        elif turns and turns[-1]["from"] == "observation":
            turns[-1]["answers"].append(content)
        else:
            turns.append({"from": "observation", "answers": [content]})
    for turn in turns:
        if "answers" in turn:
            answers = turn.pop("answers")
            turn["value"] = answers[0] if len(answers) == 1 else json.dumps(answers, ensure_ascii=False)
    while turns and turns[-1]["from"] not in ANSWERS:
        turns.pop()
    tools = [dict(function_of(t)) for t in record.get("tools") or []]
    return {"conversations": turns, "system": "\n\n".join(system),
            "tools": json.dumps(tools, ensure_ascii=False) if tools else ""}


def invalid_reason(turns: list[dict[str, Any]]) -> str | None:
    """Why LLaMA-Factory would drop these turns ("Invalid role tag" / "Invalid message count"), else None."""
    if not turns:
        return "no assistant turn to train"
    if any(turn["from"] not in (PROMPTS, ANSWERS)[i % 2] for i, turn in enumerate(turns)):
        return "turns do not alternate"
    return None


def _call(call: dict[str, Any]) -> dict[str, Any]:
    """``{"name", "arguments"}`` with the arguments decoded (kept as text when they are not JSON)."""
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass
    return {"name": function.get("name"), "arguments": arguments}
