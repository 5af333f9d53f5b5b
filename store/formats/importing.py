"""What every importer shares: reading records, naming toolsets and ids from content, writing all or nothing.

An importer is a reader (file → :class:`Imported`, raising ``InputError`` naming
the file, the line or record, and the field) plus :func:`write_imported`. Ids and
toolset names derive from the content, so importing the same file twice adds
nothing the second time. Readers never validate calls against their tools: a call
that breaks its tool's schema is imported as it is and auto-flagged after the
import (``store.flagging``), like a simulated one.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Iterator

from ..db import Store
from ..errors import InputError
from ..records import GoldItem, Tool, Toolset, Trajectory
from ..safe_json import loads
from .files import iter_json_lines, json_type, open_input, parse_json
from .summary import ImportSummary


@dataclass
class Imported:
    """Everything a reader found in a file, before anything is written."""

    toolsets: dict[str, Toolset] = field(default_factory=dict)
    trajectories: list[Trajectory] = field(default_factory=list)
    gold: list[GoldItem] = field(default_factory=list)

    def toolset_for(self, tools: list[Tool], source: str, description: str = "") -> str:
        """The name of the toolset holding exactly ``tools`` (made once per distinct list)."""
        name = toolset_name(tools)
        if name not in self.toolsets:
            self.toolsets[name] = Toolset(name, tools, description=description, source=source)
        return name


def write_imported(store: Store, imported: Imported) -> ImportSummary:
    """Write in one transaction: toolsets and gold items replace those of the same name or id, trajectories
    already in the store are skipped; the new ones are listed for auto-flagging."""
    toolsets = list(imported.toolsets.values())
    summary = ImportSummary(toolsets=len(toolsets), tools=sum(len(t.tools) for t in toolsets),
                            gold=len(imported.gold))
    with store.transaction():
        for toolset in toolsets:
            store.add_toolset(toolset)
        seen: set[str] = set()
        new = []
        for trajectory in imported.trajectories:
            if trajectory.id not in seen and not store.has_trajectory(trajectory.id):
                new.append(trajectory)
            seen.add(trajectory.id)
        summary.trajectories = store.insert_trajectories(new)
        summary.skipped = len(imported.trajectories) - len(new)
        summary.unflagged = [t.id for t in new]
        store.add_gold(imported.gold)
    return summary


def read_trajectories(path: str | os.PathLike[str],
                      trajectory_from_record: Callable[[dict[str, Any], Imported, str], Trajectory]) -> Imported:
    """Every record of ``path`` as a trajectory; a ``ValueError`` (naming the field) becomes an ``InputError``
    naming the file and the record or line too."""
    source = str(path)
    imported = Imported()
    for where, record in iter_records(path):
        try:
            imported.trajectories.append(trajectory_from_record(record, imported, source))
        except ValueError as exc:
            raise InputError(source, str(exc), where) from None
    return imported


def toolset_name(tools: list[Tool]) -> str:
    """``tools-<digest>``: the same tools (names, descriptions, schemas, order) always get the same name."""
    return "tools-" + content_id(json.dumps([t.to_openai() for t in tools], sort_keys=True))[:8]


def content_id(*parts: str) -> str:
    """A 16-hex-digit id derived from ``parts``, so a re-import finds what it imported before."""
    return hashlib.sha1("\x00".join(parts).encode()).hexdigest()[:16]


def iter_records(path: str | os.PathLike[str]) -> Iterator[tuple[str | int, dict[str, Any]]]:
    """``(where, object)`` for each record of a JSON array (``"record N"``) or a JSONL file (the line number),
    ``where`` as ``InputError`` takes it.

    Published tool-calling datasets come both ways (and BFCL's ``.json`` files are JSON Lines),
    so the content decides: a file whose first non-blank character is ``[`` is an array.
    """
    source = str(path)
    with open_input(path) as handle:
        head = handle.read(4096).lstrip()
    if head.startswith("["):
        with open_input(path) as handle:
            data = parse_json(handle.read(), source)
        for number, record in enumerate(data, 1):
            if not isinstance(record, dict):
                raise InputError(source, f"expected a JSON object, got {json_type(record)}", f"record {number}")
            yield f"record {number}", record
        return
    for number, record in iter_json_lines(path):
        yield number, record


def first_record(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The first record of the file, for telling its format; None when it has none or cannot be read, and for
    a SQLite file (a store: binary pages that might even decode as text, never records)."""
    if is_sqlite_file(path):
        return None
    try:
        with open_input(path) as handle:
            head = handle.read(4096).lstrip()
            if head.startswith("["):
                return _first_element(handle, head)
        for _, record in iter_records(path):
            return record
    except InputError:
        return None
    return None


#: The most of a JSON array read to find its first element.
_FIRST_ELEMENT_LIMIT = 64 << 20


def _first_element(handle: IO[str], text: str) -> dict[str, Any] | None:
    """The first element of the JSON array ``text`` begins, reading more of ``handle`` only as far as it ends:
    telling a format must not decode a whole published file (Glaive's is 271 MB) before the import does."""
    while True:
        start = len(text) - len(text[1:].lstrip())
        try:
            _, end = json.JSONDecoder().raw_decode(text, start)
        except RecursionError:
            return None
        except json.JSONDecodeError:  # cut short (or broken): read on, doubling, until it ends or the file does
            more = handle.read(max(len(text), 1 << 16))
            if not more or len(text) > _FIRST_ELEMENT_LIMIT:
                return None
            text += more
            continue
        try:
            element = loads(text[start:end])  # the same limits as every other read (depth, lone surrogates)
        except json.JSONDecodeError:
            return None
        return element if isinstance(element, dict) else None


#: The first bytes of every SQLite database file.
_SQLITE_HEADER = b"SQLite format 3\x00"


def is_sqlite_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a readable file that starts as a SQLite database does."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER
    except OSError:
        return False
