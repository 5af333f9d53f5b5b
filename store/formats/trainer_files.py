"""Exports for trainers that read a file as it is: OpenAI fine-tuning and TRL's SFTTrainer.

Both start from the canonical records (``Store.iter_records``, correction examples
included) and keep only what the target reads, so nothing of the store (``raw``
model output, ``weight_source``, ``meta``) leaks into a training file.

- **openai**: ``{"messages", "tools"[, "parallel_tool_calls"]}`` as OpenAI's chat
  fine-tuning format documents it; assistant messages keep ``"weight": 0|1``, so a
  masked call stays in the context and never trains. A line OpenAI would reject is
  left out and counted: a call whose arguments are not JSON, or no assistant message
  at weight 1 (nothing to train).
- **trl**: TRL cannot weight messages, so each trained assistant message becomes a
  conversational prompt-completion example (``prompt``: every message before it,
  ``completion``: it), which SFTTrainer trains on the completion only: exactly the
  messages at weight 1 train, each once. ``tools`` is JSON text (``records.TEXT_FIELDS``),
  which SFTTrainer decodes itself.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterator

from ..db import Store
from ..records import dumps
from .files import write_lines
from .summary import ExportSummary

#: The keys OpenAI's fine-tuning format reads, per role.
_OPENAI_KEYS = {
    "system": ("role", "content"),
    "user": ("role", "content"),
    "assistant": ("role", "content", "tool_calls", "weight"),
    "tool": ("role", "tool_call_id", "content"),
}
#: The keys of a chat message a chat template reads (no weights: the example's shape says what trains);
#: ``content`` is kept even when null, since templates read it on every message.
_CHAT_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")

NOT_JSON = "a call's arguments are not JSON"
NOTHING_TO_TRAIN = "no assistant message at weight 1"


def export_openai(store: Store, out: str | os.PathLike[str], status: str = "accepted") -> ExportSummary:
    summary = ExportSummary()

    def lines() -> Iterator[str]:
        for record in store.iter_records(status):
            line = openai_line(record)
            if isinstance(line, str):
                summary.left_out[line] += 1
                continue
            summary.count(record)
            yield json.dumps(line, ensure_ascii=False) + "\n"

    write_lines(out, lines())
    return summary


def openai_line(record: dict[str, Any]) -> dict[str, Any] | str:
    """The OpenAI fine-tuning example of ``record``, or the reason it cannot be one."""
    messages = [_only(m, _OPENAI_KEYS.get(m["role"], ("role", "content"))) for m in record["messages"]]
    if any(not _arguments_are_json(m) for m in messages):
        return NOT_JSON
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    messages = messages[:last + 1]  # OpenAI learns from assistant turns: what follows the last one is dropped
    if not any(m.get("weight") == 1 for m in messages):
        return NOTHING_TO_TRAIN
    line: dict[str, Any] = {"messages": messages}
    if record.get("tools"):
        line["tools"] = record["tools"]
    if any(len(m.get("tool_calls") or ()) > 1 for m in messages):
        line["parallel_tool_calls"] = True
    return line


def export_trl(store: Store, out: str | os.PathLike[str], status: str = "accepted") -> ExportSummary:
    summary = ExportSummary()

    def lines() -> Iterator[str]:
        for record in store.iter_records(status):
            examples = list(trl_examples(record))
            if not examples:
                summary.left_out[NOTHING_TO_TRAIN] += 1
                continue
            summary.count(record)
            summary.completions += len(examples)
            yield from (json.dumps(e, ensure_ascii=False) + "\n" for e in examples)

    write_lines(out, lines())
    return summary


def trl_examples(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One prompt-completion example per assistant message of ``record`` at weight 1."""
    messages = [{"content": m.get("content"), **_only(m, _CHAT_KEYS)} for m in record["messages"]]
    tools = dumps(record.get("tools") or [])
    for index, message in enumerate(record["messages"]):
        if message["role"] == "assistant" and message.get("weight", 1) == 1:
            yield {"id": f"{record['id']}@{index}", "prompt": messages[:index], "completion": [messages[index]],
                   "tools": tools}


def _only(message: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``message`` with only ``keys``, and no null values (a template may test a key's presence)."""
    return {k: message[k] for k in keys if message.get(k) is not None}


def _arguments_are_json(message: dict[str, Any]) -> bool:
    for call in message.get("tool_calls") or ():
        try:
            json.loads((call.get("function") or {}).get("arguments") or "")
        except (json.JSONDecodeError, TypeError):
            return False
    return True

