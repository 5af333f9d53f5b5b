"""Import Glaive function-calling v2 (``glaiveai/glaive-function-calling-v2``): ``{"system", "chat"}`` records.

``system`` is ``SYSTEM: You are a helpful assistant with access to the following functions. Use them if
required -`` followed by the function definitions, each a pretty-printed JSON object
(``{"name", "description", "parameters"}``), or ``SYSTEM: You are a helpful assistant, with no access to
external functions.`` for the records without any (about a third of the file). The definitions become
the trajectory's toolset (``tools-<digest>``, one per distinct list); the lead-in sentence that introduces
them is dropped (the chat template renders the tools in its own words), and any other system text stays
the system message.

``chat`` is one string of turns, ``USER: …``, ``ASSISTANT: …`` and ``FUNCTION RESPONSE: …``, mostly
separated by blank lines (two or three newlines), each assistant turn ending in ``<|endoftext|>``. A call is
``ASSISTANT: <functioncall> {"name": "f", "arguments": '{"x": 1}'} <|endoftext|>``: the arguments are JSON
wrapped in single quotes (so the call as a whole is not JSON, and a quote inside the arguments is not
escaped), sometimes a plain JSON object. A ``FUNCTION RESPONSE`` answers the call before it. Text before
``<functioncall>`` is the message's content.

A call that cannot be read (arguments that are not a JSON object, such as ``\\'`` escapes, ``Infinity`` or a
list; no ``arguments``; a broken brace) keeps its turn as text and is flagged ``parse_error`` after the
import, as is an assistant turn that a function response follows without any call (a call in another
syntax). A marker that is not at the start of a line after a blank line (``…the book is "\\nASSISTANT: A
Modern…``, a defect of some records) stays inside its turn's text. A name defined twice is kept once, with
its first definition; a different later definition is kept in the trajectory's ``meta.duplicate_tools``.

Ids derive from the record's content, so importing the file again skips what it imported before. There
are no gold items: the format has no reference answers apart from the conversations themselves.
"""
from __future__ import annotations

import os
import re
from typing import Any

from ..db import Store
from ..records import Trajectory
from .chat_text import Conversation, decode_json, distinct_tools, function_tool, json_prefix, json_string
from .importing import Imported, read_trajectories, write_imported
from .summary import ImportSummary

#: The sentences that introduce the function definitions (v2, and v1's wording); dropped with them.
LEAD_INS = (
    "You are a helpful assistant with access to the following functions. Use them if required -",
    "You are an helpful assistant who has access to the following functions to help the user, "
    "you can use the functions if needed-",
)
_END = "<|endoftext|>"
#: A turn marker: at the start, after a blank line, or after an end-of-text token.
_TURN = re.compile(r"(?:\A|(?<=\n\n)|(?<=<\|endoftext\|>))[ \t\n]*(USER|ASSISTANT|FUNCTION RESPONSE):[ \t]?")
#: A call whose arguments are JSON in single quotes; greedy, so quotes inside the arguments are theirs.
_QUOTED_CALL = re.compile(r'\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"arguments"\s*:\s*\'(.*)\'\s*\}', re.DOTALL)
_CALL_TAG = "<functioncall>"


def import_glaive(store: Store, path: str | os.PathLike[str]) -> ImportSummary:
    """Read the whole file (a JSON array, as published, or JSON Lines), then write it in one transaction."""
    return write_imported(store, read_glaive(path))


def looks_like(record: dict[str, Any]) -> bool:
    return isinstance(record.get("system"), str) and isinstance(record.get("chat"), str)


def read_glaive(path: str | os.PathLike[str]) -> Imported:
    return read_trajectories(path, trajectory_from_record)


def trajectory_from_record(record: dict[str, Any], imported: Imported, source: str) -> Trajectory:
    """One record as a trajectory (its toolset added to ``imported``); ValueError names the bad field."""
    system, chat = record.get("system"), record.get("chat")
    if not isinstance(system, str) or not isinstance(chat, str):
        raise ValueError("a Glaive record needs 'system' and 'chat' strings")
    prose, definitions = split_system(system)
    tools, duplicates = distinct_tools([function_tool(d, f"function {i + 1}") for i, d in enumerate(definitions)])
    conversation = Conversation()
    if prose:
        conversation.system(prose)
    for role, text in turns(chat):
        if role == "USER":
            conversation.user(text)
        elif role == "FUNCTION RESPONSE":
            conversation.tool(text)
        else:
            _assistant(conversation, text)
    meta: dict[str, Any] = {"duplicate_tools": duplicates} if duplicates else {}
    return conversation.trajectory("glaive", record, imported.toolset_for(tools, source) if tools else None, meta)


def split_system(system: str) -> tuple[str, list[dict[str, Any]]]:
    """The system text without the ``SYSTEM:`` label, the lead-in and the definitions; and the definitions
    (every JSON object in it that has a ``name``)."""
    text = system.strip().removeprefix("SYSTEM:").strip()
    definitions: list[dict[str, Any]] = []
    prose: list[str] = []
    position = 0
    for match in re.finditer(r"\{", text):
        if match.start() < position:
            continue
        found = json_prefix(text, match.start())
        if found is None or not isinstance(found[0], dict) or "name" not in found[0]:
            continue
        prose.append(text[position:match.start()])
        definitions.append(found[0])
        position = found[1]
    prose.append(text[position:])
    rest = "\n".join(part.strip() for part in prose if part.strip())
    for lead_in in LEAD_INS:
        rest = rest.removeprefix(lead_in).strip()
    return rest, definitions


def turns(chat: str) -> list[tuple[str, str]]:
    """``(marker, text)`` per turn, ``<|endoftext|>`` taken off its end; ValueError when the chat has no turn
    or text before its first marker."""
    markers = list(_TURN.finditer(chat))
    if not markers:
        raise ValueError("'chat' holds no USER:, ASSISTANT: or FUNCTION RESPONSE: turn")
    if chat[:markers[0].start()].strip():
        raise ValueError("'chat' does not begin with USER:, ASSISTANT: or FUNCTION RESPONSE:")
    found = []
    for number, marker in enumerate(markers):
        end = markers[number + 1].start() if number + 1 < len(markers) else len(chat)
        text = chat[marker.end():end].strip()
        while text.endswith(_END):
            text = text[:-len(_END)].rstrip()
        found.append((marker.group(1), text))
    return found


def _assistant(conversation: Conversation, text: str) -> None:
    before, tag, body = text.partition(_CALL_TAG)
    if not tag:
        conversation.assistant(text or None)
        return
    call = parse_call(body)
    if call is None:
        conversation.unparsed(text)
    else:
        conversation.assistant(before.strip() or None, [call])


def parse_call(body: str) -> tuple[str, str] | None:
    """``(name, JSON arguments)`` from the text after ``<functioncall>``, or None when it cannot be read."""
    body = body.strip()
    try:
        call = decode_json(body)
    except ValueError:
        call = None
    if isinstance(call, dict):
        name, arguments = call.get("name"), call.get("arguments")
    else:
        match = _QUOTED_CALL.fullmatch(body)
        if match is None:
            return None
        try:
            name = decode_json(match.group(1))
        except ValueError:
            return None
        arguments = match.group(2)
    if isinstance(arguments, str):
        try:
            arguments = decode_json(arguments)
        except ValueError:
            return None
    if not isinstance(name, str) or not name.strip() or not isinstance(arguments, dict):
        return None
    return name.strip(), json_string(arguments)


__all__ = ["LEAD_INS", "import_glaive", "looks_like", "parse_call", "read_glaive", "split_system",
           "turns"]
