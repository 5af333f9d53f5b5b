"""The semantic judge's verdicts and how they are kept: auto tags of origin ``judge``, the weights they give, a score.

The semantic judge (``curator.judging``, APIGen's third stage) asks a model whether each call says what the
user asked for and whether the final answer is what the tool results say. It is not
``store.toolcalls.judge``, the rule-based error-type reward of a call against a gold call.

A verdict becomes ``content_error`` on the assistant message of a call that does not match the request and
``answer_unsupported`` on a final answer the observations do not back, each with the judge's reason as its
note and the judge's model as its annotator; the lowest confidence of its verdicts becomes the trajectory's
``judge`` score. Re-judging replaces the judge's tags and score and nothing else: the flagger's tags stay,
and a human tag or un-tag still wins (the ``effective_tags`` view).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from store.db import Store
from store.flagging import AutoTag, apply_weights, auto_weighted
from store.taxonomy import MaskPolicy

#: The ``origin`` of the judge's auto tags (``flagger`` is the call checks').
ORIGIN = "judge"
#: The score kind the judge's confidence is kept under.
SCORE = "judge"


@dataclass(frozen=True)
class CallVerdict:
    """One tool call: does it match the user's request (tool and argument values)?"""

    message_index: int
    tool: str
    ok: bool
    reason: str
    confidence: float


@dataclass(frozen=True)
class AnswerVerdict:
    """The final answer: is it supported by the observations (the tool results)?"""

    message_index: int
    supported: bool
    reason: str
    confidence: float


@dataclass
class Verdict:
    """What the judge said of one trajectory."""

    trajectory_id: str
    model: str
    calls: list[CallVerdict] = field(default_factory=list)
    answer: AnswerVerdict | None = None

    @property
    def confidence(self) -> float:
        """How sure the judge is of this trajectory: its least confident verdict."""
        found = [c.confidence for c in self.calls] + ([self.answer.confidence] if self.answer else [])
        return min(found, default=1.0)

    @property
    def content_errors(self) -> list[CallVerdict]:
        return [c for c in self.calls if not c.ok]

    def tags(self) -> list[AutoTag]:
        """``(message_index, code, note)``: one ``content_error`` per message (its bad calls' reasons joined),
        ``answer_unsupported`` on an unsupported answer."""
        notes: dict[int, list[str]] = {}
        for call in self.content_errors:
            notes.setdefault(call.message_index, []).append(f"{call.tool}: {call.reason}")
        tags: list[AutoTag] = [(i, "content_error", "; ".join(dict.fromkeys(n))) for i, n in notes.items()]
        if self.answer is not None and not self.answer.supported:
            tags.append((self.answer.message_index, "answer_unsupported", self.answer.reason))
        return tags


def record_verdict(store: Store, verdict: Verdict, policy: MaskPolicy) -> dict[int, int]:
    """Replace the judge's tags and score of the verdict's trajectory and re-weigh it by ``policy``, in one
    transaction; the assistant messages' auto weights it set."""
    with store.transaction():
        store.replace_auto_tags(verdict.trajectory_id, verdict.tags(), origin=ORIGIN, annotator=verdict.model)
        weights = apply_weights(store, verdict.trajectory_id, auto_weighted(store.messages(verdict.trajectory_id)),
                                policy)
        store.set_scores(SCORE, {verdict.trajectory_id: verdict.confidence}, model=verdict.model)
    return weights
