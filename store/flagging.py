"""Auto-flagging: call checks and tool feedback → error tags → MAE weights.

From a flagged call to zero weight in the loss, in three files:

1. **Here.** When a simulated trajectory ends (``curator.sim.engine``), after an import,
   on ``curator flag``, on a human tag or un-tag in review, and on the snapshot that
   ``T`` trains on, :func:`flag_trajectory` reads every assistant tool call twice: the
   call check (``store.toolcalls.Toolbox.check``: the call against the toolset's JSON
   schemas) and the tool's answer (``store.feedback.classify_feedback``). Each problem
   becomes an ``auto`` tag with an error code from ``store.taxonomy``; the store's
   effective tags (a human tag or un-tag wins over ``auto``) whose code the one
   ``MaskPolicy`` masks give the message weight 0 (``Store.set_auto_weights``), unless a
   human set that message's weight with ``m``.
2. **store/formats/jsonl.py** writes that weight on every assistant message of the
   export (``"weight": 0|1``): the file ``T`` hands the training run.
3. **training/data.py** gives each token of an assistant message its message's weight
   (times PKT's key-token weight), and ``training/sft.py``'s loss is Σ wᵢ·CEᵢ / Σ wᵢ:
   a weight-0 call adds nothing to the loss or its gradient; the recovery after it trains.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from store.db import Store
from store.feedback import classify_feedback, shorten
from store.records import Message, Trajectory
from store.taxonomy import MaskPolicy
from store.toolcalls import CallParseError, Problem, Toolbox, parse_openai_call

AutoTag = tuple[int | None, str, str | None]


@dataclass
class FlagResult:
    """What flagging one trajectory wrote: its auto tags and the auto weights of its assistant messages."""

    trajectory_id: str
    tags: list[AutoTag]
    weights: dict[int, int]

    @property
    def masked(self) -> list[int]:
        return sorted(i for i, w in self.weights.items() if w == 0)


@dataclass
class FlagSummary:
    trajectories: int = 0
    tagged: int = 0
    masked: int = 0
    by_code: Counter[str] = field(default_factory=Counter)

    def add(self, result: FlagResult) -> None:
        self.trajectories += 1
        self.tagged += len({i for i, _, _ in result.tags if i is not None})
        self.masked += len(result.masked)
        self.by_code.update(code for _, code, _ in result.tags)


def flag_trajectory(
    store: Store,
    trajectory_id: str,
    policy: MaskPolicy,
    toolboxes: dict[str | None, Toolbox | None] | None = None,
) -> FlagResult:
    """Re-flag one stored trajectory: replace its auto tags, then set its auto weights.

    An assistant message gets weight 0 when one of its *effective* tags (auto tags
    not un-tagged by a human, plus human tags) has a code ``policy`` masks. Human tags, un-tags and mask toggles are never
    touched: the store keeps them apart and ``set_auto_weights`` skips messages
    whose weight a human set. ``toolboxes`` caches each toolset's ``Toolbox``.
    """
    trajectory = store.trajectory(trajectory_id)
    if trajectory is None:
        raise KeyError(f"no trajectory {trajectory_id!r}")
    plan = _plan(store, trajectory, {} if toolboxes is None else toolboxes)
    with store.transaction():
        return _apply(store, plan, policy)


def flag_all(store: Store, policy: MaskPolicy, ids: Iterable[str] | None = None) -> FlagSummary:
    """Re-flag every trajectory in the store, or only those in ``ids``, in one transaction.

    All or nothing: a process killed half-way leaves every trajectory flagged as before, never
    a store half under the new policy. The calls are checked first, outside the write lock
    (that is most of the time); the lock is held only while the tags and weights are written,
    so a simulation writing meanwhile waits a moment instead of timing out.
    """
    toolboxes: dict[str | None, Toolbox | None] = {}
    wanted = None if ids is None else list(ids)
    trajectories = store.iter_trajectories() if wanted is None else store.iter_by_id(wanted)
    plans = [_plan(store, t, toolboxes) for t in trajectories]
    if wanted is not None and len(plans) < len(set(wanted)):
        missing = sorted(set(wanted) - {p.trajectory_id for p in plans})
        raise KeyError(f"no trajectory {missing[0]!r}")
    summary = FlagSummary()
    with store.transaction():
        for plan in plans:
            summary.add(_apply(store, plan, policy))
    return summary


@dataclass
class _Plan:
    """One trajectory's new auto tags, and the assistant messages whose weight flagging may set."""

    trajectory_id: str
    tags: list[AutoTag]
    auto_weighted: list[int]


def _plan(store: Store, trajectory: Trajectory, toolboxes: dict[str | None, Toolbox | None]) -> _Plan:
    tags = trajectory_tags(trajectory.messages, _toolbox(store, trajectory.toolset, toolboxes))
    return _Plan(trajectory.id, tags, auto_weighted(trajectory.messages))


def _apply(store: Store, plan: _Plan, policy: MaskPolicy) -> FlagResult:
    """Write a plan's auto tags, then the weights the effective tags (human ones included) give, in the
    caller's transaction."""
    store.replace_auto_tags(plan.trajectory_id, plan.tags)
    return FlagResult(plan.trajectory_id, plan.tags, apply_weights(store, plan.trajectory_id, plan.auto_weighted,
                                                                   policy))


def auto_weighted(messages: Sequence[Message]) -> list[int]:
    """The indexes of the assistant messages whose weight no human set: those the checks weigh."""
    return [m.index for m in messages if m.role == "assistant" and m.weight_source != "human" and m.index is not None]


def apply_weights(store: Store, trajectory_id: str, indexes: Iterable[int], policy: MaskPolicy) -> dict[int, int]:
    """Give each message of ``indexes`` weight 0 when one of its effective tags (any check's, or a human's) has a
    code ``policy`` masks, else 1, in the caller's transaction; every check that tags (the flagger, the semantic
    judge) weighs through here, so one mask policy decides."""
    masked = {t.message_index for t in store.effective_tags(trajectory_id) if policy.masks(t.code)}
    weights = {index: 0 if index in masked else 1 for index in indexes}
    store.set_auto_weights(trajectory_id, weights)
    return weights


def _toolbox(store: Store, name: str | None, cache: dict[str | None, Toolbox | None]) -> Toolbox | None:
    """The toolset's ``Toolbox``, or None when the trajectory has no stored toolset (no call check then)."""
    if name not in cache:
        toolset = store.toolset(name) if name else None
        cache[name] = Toolbox(toolset.openai_tools()) if toolset else None
    return cache[name]


def trajectory_tags(messages: Sequence[Message], box: Toolbox | None) -> list[AutoTag]:
    """``(message_index, code, note)`` for every problem of every assistant message, one per code."""
    notes: dict[tuple[int, str], list[str]] = {}
    for position, message in enumerate(messages):
        if message.role != "assistant":
            continue
        for problem in message_problems(message, _answers(messages, position), box):
            note = f"{problem.tool}: {problem.detail}" if problem.tool else problem.detail
            notes.setdefault((message.index, problem.code), []).append(note)
    return [(index, code, "; ".join(dict.fromkeys(n))) for (index, code), n in notes.items()]


def message_problems(message: Message, answers: Sequence[str | None], box: Toolbox | None) -> list[Problem]:
    """Problems of one assistant message: unparsed output, then each call's check and feedback.

    ``answers[k]`` is the feedback to the message's k-th tool call (None when unanswered).
    """
    problems = []
    if message.raw is not None:
        problems.append(Problem("parse_error", f"unparseable output: {shorten(message.raw, 80)}"))
    for entry, feedback in zip(message.tool_calls or [], answers):
        problems += call_problems(entry, feedback, box)
    return problems


def call_problems(entry: Mapping[str, Any], feedback: str | None, box: Toolbox | None) -> list[Problem]:
    """The call check's problems, plus those of the feedback that the check does not already explain."""
    try:
        call = parse_openai_call(entry if isinstance(entry, Mapping) else {})
    except CallParseError as exc:
        return [Problem("parse_error", str(exc))]
    checks = box.check(call) if box is not None else []
    heard = [p for p in classify_feedback(feedback) if not _explained(p, checks)]
    return checks + [Problem(p.code, p.detail, p.tool or call.name, p.param) for p in heard]


def _explained(problem: Problem, checks: Sequence[Problem]) -> bool:
    """Whether feedback about a call says nothing the call check has not said.

    When the check found problems, the tool's complaint is about them unless it
    names a parameter the check did not, or it is the tool's own failure.
    """
    if not checks or problem.code == "tool_instability":
        return False
    return problem.param is None or any(c.param == problem.param for c in checks)


def _answers(messages: Sequence[Message], position: int) -> list[str | None]:
    """The feedback to each tool call of ``messages[position]``.

    Tool messages that follow it are matched by ``tool_call_id``, and in order
    for calls without an id match (imported data often has no ids).
    """
    calls = messages[position].tool_calls or []
    replies = []
    for message in messages[position + 1:]:
        if message.role != "tool":
            break
        replies.append(message)
    ids = [c.get("id") if isinstance(c, Mapping) else None for c in calls]
    by_id = {m.tool_call_id: m.content for m in replies if m.tool_call_id and m.tool_call_id in ids}
    unmatched = iter(m.content for m in replies if m.tool_call_id not in by_id)
    return [by_id[i] if i in by_id else next(unmatched, None) for i in ids]
