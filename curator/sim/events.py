"""What a running simulation reports, in the order it happens.

Every message is in the store before its ``MessageAdded`` is emitted, so a
follower (the TUI's watch screen) can always read what an event names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from store import Message


@dataclass(frozen=True)
class TrajectoryStarted:
    trajectory_id: str
    instruction: str


@dataclass(frozen=True)
class MessageAdded:
    trajectory_id: str
    message: Message


@dataclass(frozen=True)
class TrajectoryFinished:
    trajectory_id: str
    status: str  # "complete" or "failed"
    reason: str | None = None


@dataclass(frozen=True)
class Flagged:
    """The auto-flagger's codes for a trajectory (after a failed call, and again when it finishes)."""

    trajectory_id: str
    codes: list[str]


@dataclass
class Summary:
    """What a simulation did; ``requests``/``retries`` count model requests (0 for the scripted backend)."""

    backend: str
    model: str
    toolset: str
    requested: int
    started: int = 0
    complete: int = 0
    failed: int = 0
    flagged: int = 0
    messages: int = 0
    requests: int = 0
    retries: int = 0
    elapsed: float = 0.0
    cancelled: bool = False
    error: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Finished trajectories per second."""
        return (self.complete + self.failed) / self.elapsed if self.elapsed > 0 else 0.0

    def describe(self) -> str:
        """One line for a terminal: what was kept and why some failed."""
        head = f"{self.complete} complete, {self.failed} failed of {self.requested} requested"
        if self.started < self.requested:
            head += f" ({self.requested - self.started} not started)"
        parts = [head, f"{self.messages} messages", f"{self.elapsed:.1f} s"]
        if self.requests:
            parts.append(f"{self.requests} model requests ({self.retries} retried)")
        if self.reasons:
            parts.append("failures: " + ", ".join(f"{k} ×{v}" for k, v in sorted(self.reasons.items())))
        if self.error:
            parts.append(f"stopped: {self.error}")
        return "; ".join(parts)


@dataclass(frozen=True)
class SimulationDone:
    summary: Summary


Event = Union[TrajectoryStarted, MessageAdded, TrajectoryFinished, Flagged, SimulationDone]
