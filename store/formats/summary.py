"""What an import or an export did, for the one-line summary the CLI prints."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..records import is_derived


@dataclass
class ImportSummary:
    toolsets: int = 0
    tools: int = 0
    trajectories: int = 0
    skipped: int = 0
    #: Lines derived from a trajectory's corrections (``meta.derived_from``), not trajectories of their own.
    derived: int = 0
    gold: int = 0
    #: New trajectories that arrived without flags (raw data), for the caller to auto-flag.
    unflagged: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """``1 toolset (3 tools), 3 trajectories (2 already in the store, skipped; 1 derived correction example
        skipped), 100 gold items``."""
        parts = []
        if self.toolsets:
            parts.append(f"{_count(self.toolsets, 'toolset', 'toolsets')} ({_count(self.tools, 'tool', 'tools')})")
        parts.append(_count(self.trajectories, "trajectory", "trajectories"))
        asides = [f"{self.skipped} already in the store, skipped"] if self.skipped else []
        if self.derived:
            asides.append(f"{_count(self.derived, 'derived correction example', 'derived correction examples')} "
                          "skipped")
        if asides:
            parts[-1] += f" ({'; '.join(asides)})"
        if self.gold:
            parts.append(_count(self.gold, "gold item", "gold items"))
        return ", ".join(parts)


@dataclass
class MergeSummary(ImportSummary):
    """What merging another curator store added (``store.merge``): ``trajectories`` are the new ones,
    ``skipped`` those already here (their review work is merged all the same), ``unflagged`` every
    trajectory that gained a row, for the caller to re-flag."""

    #: Trajectories still being written in the source (``running``), left for a later merge.
    running: int = 0
    reviews: int = 0
    tags: int = 0
    notes: int = 0
    corrections: int = 0
    marks: int = 0

    def describe(self) -> str:
        """``2 new trajectories (10 already there), 7 reviews, 3 tags, 1 note, 0 corrections, 2 mask marks,
        1 toolset``."""
        added = f"{_count(self.trajectories, 'new trajectory', 'new trajectories')} ({self.skipped} already there"
        added += f", {self.running} still running, left out)" if self.running else ")"
        parts = [added, _count(self.reviews, "review", "reviews"), _count(self.tags, "tag", "tags"),
                 _count(self.notes, "note", "notes"), _count(self.corrections, "correction", "corrections"),
                 _count(self.marks, "mask mark", "mask marks")]
        if self.toolsets:
            parts.append(_count(self.toolsets, "toolset", "toolsets"))
        if self.gold:
            parts.append(_count(self.gold, "gold item", "gold items"))
        return ", ".join(parts)


@dataclass
class ExportSummary:
    trajectories: int = 0
    #: Lines of their own for corrected calls (``records.correction_examples``), after their trajectories.
    examples: int = 0
    #: Prompt-completion examples, where a format writes one per trained message.
    completions: int = 0
    #: Records the format cannot hold as its reader requires, by reason (e.g. ShareGPT's turn order).
    left_out: Counter[str] = field(default_factory=Counter)

    def count(self, record: dict[str, Any]) -> None:
        """Count one written record: a trajectory, or a correction example derived from one."""
        if is_derived(record):
            self.examples += 1
        else:
            self.trajectories += 1

    def describe(self) -> str:
        """``3 trajectories and 1 correction example as 9 prompt-completion examples (2 left out: 1 …, 1 …)``."""
        text = _count(self.trajectories, "trajectory", "trajectories")
        if self.examples:
            text += f" and {_count(self.examples, 'correction example', 'correction examples')}"
        if self.completions:
            text += f" as {_count(self.completions, 'prompt-completion example', 'prompt-completion examples')}"
        if self.left_out:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.left_out.items()))
            text += f" ({sum(self.left_out.values())} left out: {reasons})"
        return text


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
