"""ShareGPT export as LLaMA-Factory reads it, one conversation a line.

``{"conversations": [{"from": "human"|"gpt"|"function_call"|"observation", "value"}], "system", "tools"}``
with ``tools`` a JSON string of function schemas. Register it in LLaMA-Factory's
``dataset_info.json`` with ``"formatting": "sharegpt"`` and ``"columns":
{"messages": "conversations", "system": "system", "tools": "tools"}``.

The format has one slot per turn, so an assistant message that thinks and calls
keeps only the call, the answers to several calls of one message become one
``observation`` (a JSON array), and per-message weights are not carried: use the
JSONL export to train with masks. Every turn trains, so a corrected call is
written as the annotator fixed it, never as the model first made it.
"""
from __future__ import annotations

import json
import os
from typing import Any

from ..db import Store
from ..records import corrected_message
from ..toolcalls import function_of
from .files import write_lines
from .summary import ExportSummary


def export_sharegpt(store: Store, out: str | os.PathLike[str], status: str = "accepted") -> ExportSummary:
    return ExportSummary(write_lines(out, (json.dumps(sharegpt_record(r), ensure_ascii=False) + "\n"
                                           for r in store.iter_records(status, derived=False))))


def sharegpt_record(record: dict[str, Any]) -> dict[str, Any]:
    """One canonical record (``Store.iter_records``) as a LLaMA-Factory ShareGPT example."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    fixes = {c["message"]: c["tool_calls"] for c in (record.get("meta") or {}).get("corrections") or []}
    for index, message in enumerate(record["messages"]):
        if index in fixes:
            message = corrected_message(message, fixes[index])
        role, content = message["role"], message.get("content") or ""
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
    tools = [dict(function_of(t)) for t in record.get("tools") or []]
    return {"conversations": turns, "system": "\n\n".join(system),
            "tools": json.dumps(tools, ensure_ascii=False) if tools else ""}


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
