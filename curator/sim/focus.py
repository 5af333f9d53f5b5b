"""Filling the gaps: which trajectories the user agent writes around an under-covered tool and its parameters.

``SimConfig.focus`` maps tools to parameters (``curator simulate --fill-gaps`` takes them from the coverage
report's ``gaps()``: least-called tools first, each with its parameters never exercised). Three trajectories
in four focus, in turn, on the next entry: their first request needs that tool with those parameters; the
fourth is written as usual, so the data keeps its spread. Both backends ask for the same entries by
trajectory number, so a seeded scripted run is deterministic and an ``openai`` run asks its writer model for
what the scripted one would write.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from store.errors import InputError

from .toolsets import SimToolset

#: Of every ``EVERY`` trajectories, the last is written without a focus.
EVERY = 4


@dataclass(frozen=True)
class Focus:
    """One trajectory's aim: its first request needs ``tool``, passing ``parameters``."""

    tool: str
    parameters: tuple[str, ...] = ()


def focus_at(focus: Mapping[str, Sequence[str]], index: int) -> Focus | None:
    """The aim of trajectory ``index``, or None (no focus, or one of the trajectories written as usual)."""
    if not focus or index % EVERY == EVERY - 1:
        return None
    entries = list(focus.items())
    tool, parameters = entries[(index - index // EVERY) % len(entries)]
    return Focus(tool, tuple(parameters))


def check_focus(focus: Mapping[str, Sequence[str]], toolset: SimToolset) -> None:
    """An ``InputError`` naming the first tool or parameter of ``focus`` that ``toolset`` does not have."""
    for tool, parameters in focus.items():
        if tool not in toolset.box:
            raise InputError("simulate", f"focus names {tool!r}, not a tool of toolset {toolset.name}", "focus")
        unknown = [p for p in parameters if p not in toolset.box.properties(tool)]
        if unknown:
            raise InputError("simulate", f"focus names {unknown[0]!r}, not a parameter of {tool}", "focus")


def describe(focus: Focus) -> str:
    """The aim in words, for the writer model's prompt."""
    if not focus.parameters:
        return f"- one that needs {focus.tool}"
    return f"- one that needs {focus.tool} and gives a value for: {', '.join(focus.parameters)}"
