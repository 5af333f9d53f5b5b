"""The one small interface every backend implements, and the values that cross it.

A backend plays the models behind the three agents: it writes the user's
requests and answers, the assistant's next turn, and the API's response to a
well-formed call. Everything that does not need a model — checking calls,
phrasing error feedback, instability, storing, retry policy for the engine —
lives in the agents and the engine, so both backends share it.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from store import Message
from store.toolcalls import ToolCall

from ..toolsets import SimToolset


@dataclass
class Instruction:
    """A user's request; ``meta`` is what the backend wants kept with the trajectory (the scripted plan)."""

    text: str
    meta: dict[str, Any] = field(default_factory=dict)


class Written:
    """The requests written so far in a run, in the order written.

    ``text in written`` is a hash lookup and ``latest`` reads from the end, so a run of
    100,000 trajectories neither copies nor scans the list for every batch of requests.
    """

    def __init__(self) -> None:
        self._texts: dict[str, None] = {}  # a dict for its order

    def __contains__(self, text: object) -> bool:
        return text in self._texts

    def add(self, text: str) -> None:
        self._texts[text] = None

    def latest(self, count: int) -> list[str]:
        """The last ``count`` written, oldest first."""
        return list(islice(reversed(self._texts), count))[::-1]


@dataclass
class Reply:
    """The assistant model's turn as it came: tool-call arguments are the model's raw strings."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


@dataclass
class Episode:
    """One trajectory in progress: what every agent sees of it."""

    index: int
    toolset: SimToolset
    instruction: Instruction
    rng: random.Random
    messages: list[Message] = field(default_factory=list)
    #: The executor's earlier answers in this trajectory: (call, response) for consistency.
    memory: list[tuple[ToolCall, str]] = field(default_factory=list)
    #: Tool messages whose feedback was an error: message index → error code.
    errors: dict[int, str] = field(default_factory=dict)
    #: Scratch space for the backend (the scripted assistant keeps its place in the plan here).
    state: dict[str, Any] = field(default_factory=dict)


class ModelError(Exception):
    """A model request failed for good (after retries); the trajectory fails with this reason."""

    def __init__(self, role: str, reason: str):
        self.role, self.reason = role, reason
        super().__init__(f"{role} model: {reason}")


class FatalModelError(ModelError):
    """A failure no other trajectory would escape (bad key, unknown model): the simulation stops."""


class Backend(ABC):
    """Plays the user, assistant and executor models (and the toolset designer)."""

    #: Stored on every trajectory: ``scripted`` or ``openai``.
    name: str
    requests: int = 0
    retries: int = 0

    @abstractmethod
    def model(self, role: str) -> str:
        """The model name that plays ``role`` (``user``, ``assistant`` or ``executor``)."""

    @abstractmethod
    async def instructions(self, toolset: SimToolset, start: int, count: int,
                           avoid: Written) -> list[Instruction]:
        """Up to ``count`` new requests for the trajectories numbered from ``start``, none of them in ``avoid``
        (the run's requests so far; a backend may add the ones it writes)."""

    @abstractmethod
    async def answer(self, episode: Episode, question: str) -> str:
        """The user's answer to the assistant's clarifying question."""

    @abstractmethod
    async def act(self, episode: Episode) -> Reply:
        """The assistant's next turn for the conversation in ``episode.messages``."""

    @abstractmethod
    async def respond(self, episode: Episode, call: ToolCall) -> str:
        """The API's response body to a well-formed call, consistent with ``episode.memory``."""

    @abstractmethod
    async def design(self, name: str, description: str, feedback: str | None) -> str:
        """An OpenAPI 3 spec (JSON text) for an API; ``feedback`` is why the previous attempt was rejected."""

    async def aclose(self) -> None:
        """Release connections; the default has none."""
