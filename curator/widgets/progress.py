"""One-line summaries: review progress (reviewed / total, accept rate) and the watch screen's counters."""
from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from store.queue import Progress
from store.text import SIGN, visible

BAR_WIDTH = 20


class ReviewProgress(Static):
    def show(self, progress: Progress, queue: str, queued: int, *, adjudicator: str | None = None) -> None:
        """One line; ``adjudicator`` (who adjudicates the disagreements queue) leads it, so a narrow
        terminal shows it too."""
        done = progress.reviewed / progress.total if progress.total else 0.0
        filled = round(done * BAR_WIDTH)
        rate = "–" if progress.accept_rate is None else f"{progress.accept_rate:.0%}"
        self.update(Text.assemble(
            (f"⚖ adjudicating as {visible(adjudicator, SIGN)}  " if adjudicator else "", "bold yellow"),
            ("━" * filled, "bold green"), ("━" * (BAR_WIDTH - filled), "dim"),
            f"  reviewed {progress.reviewed} / {progress.total}",
            f"  ·  accept rate {rate}",
            f"  ·  ✓ {progress.accepted}  ✗ {progress.rejected}  » {progress.skipped}",
            f"  ·  queue: {visible(queue, SIGN)} ({queued})",
        ))


@dataclass(frozen=True)
class Counts:
    """The store as the watch screen sees it: trajectories by status, flagged ones, and the message rate."""

    running: int = 0
    complete: int = 0
    failed: int = 0
    flagged: int = 0
    messages_per_s: float = 0.0
    finished_per_min: float = 0.0


class WatchCounters(Static):
    def show(self, counts: Counts, simulation: str) -> None:
        """The counters, then what the simulation started here is doing. The rates are measured over the last
        seconds, so they lag: with nothing running they would still say trajectories are finishing."""
        rate = (f"rate {counts.messages_per_s:.1f} msg/s · {counts.finished_per_min:.0f} trajectories/min"
                if counts.running else "idle")
        self.update(Text.assemble(
            ("● running ", "bold yellow"), str(counts.running),
            ("   ✓ complete ", "bold green"), str(counts.complete),
            ("   ✗ failed ", "bold red"), str(counts.failed),
            ("   ⚑ flagged ", "bold magenta"), str(counts.flagged),
            f"   {rate}",
            ("\n" + simulation, "italic"),
        ))
