"""What an import did, for the one-line summary the CLI prints."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ImportSummary:
    toolsets: int = 0
    tools: int = 0
    trajectories: int = 0
    skipped: int = 0
    gold: int = 0
    #: New trajectories that arrived without flags (raw data), for the caller to auto-flag.
    unflagged: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """``1 toolset (3 tools), 3 trajectories (2 already in the store, skipped), 100 gold items``."""
        parts = []
        if self.toolsets:
            parts.append(f"{_count(self.toolsets, 'toolset', 'toolsets')} ({_count(self.tools, 'tool', 'tools')})")
        parts.append(_count(self.trajectories, "trajectory", "trajectories"))
        if self.skipped:
            parts[-1] += f" ({self.skipped} already in the store, skipped)"
        if self.gold:
            parts.append(_count(self.gold, "gold item", "gold items"))
        return ", ".join(parts)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
