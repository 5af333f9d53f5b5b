"""Judging a store: trajectories read a page at a time, ``concurrency`` judged at once, each verdict written
as it comes.

Each trajectory's verdict is one transaction (``store.verdicts.record_verdict``: tags, weights, score), so
an interrupted run leaves every trajectory judged or as it was, never half. A reply that stays unreadable or
a model that fails for good after its retries leaves that trajectory as it was and is counted in the
summary; a fatal error (a bad key, an unknown model) stops the run with one line, keeping what was written.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from curator.sim.backends.base import FatalModelError, ModelError
from store import Store
from store.errors import CuratorError
from store.taxonomy import MaskPolicy
from store.verdicts import SCORE, Verdict, record_verdict

from .base import Judge
from .case import Case, build_case
from .reply import UnreadableReply

#: What a trajectory whose replies never came in the format is counted as.
UNREADABLE = "judge reply unreadable"


@dataclass
class JudgeSummary:
    model: str
    judged: int = 0
    calls: int = 0
    content_errors: int = 0
    answers: int = 0
    unsupported: int = 0
    #: Assistant messages a judge tag left at weight 0.
    masked: int = 0
    #: ``(trajectory_id, why)`` of the trajectories left as they were: unreadable replies, failed requests.
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    requests: int = 0
    retries: int = 0

    def add(self, verdict: Verdict, weights: dict[int, int]) -> None:
        self.judged += 1
        self.calls += len(verdict.calls)
        self.content_errors += len(verdict.content_errors)
        self.answers += verdict.answer is not None
        self.unsupported += verdict.answer is not None and not verdict.answer.supported
        self.masked += sum(weights.get(index) == 0 for index, _, _ in verdict.tags() if index is not None)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "judged": self.judged, "calls": self.calls, "content_errors": self.content_errors,
            "answers": self.answers, "answers_unsupported": self.unsupported, "masked": self.masked,
            UNREADABLE.replace(" ", "_"): [{"trajectory": t, "reason": r} for t, r in self.unreadable],
            "failed": [{"trajectory": t, "reason": r} for t, r in self.failed],
            "requests": self.requests, "retries": self.retries,
        }


def cases(store: Store, ids: Iterable[str], policy: MaskPolicy, limit: int | None = None) -> Iterator[Case]:
    """The cases of the finished trajectories of ``ids`` with something to ask about, at most ``limit``."""
    tools: dict[str | None, list[dict[str, Any]]] = {}
    count = 0
    wanted = list(ids)
    for trajectory in store.iter_by_id(wanted):
        if limit is not None and count >= limit:
            return
        if trajectory.status == "running":
            continue
        if trajectory.toolset not in tools:
            toolset = store.toolset(trajectory.toolset) if trajectory.toolset else None
            tools[trajectory.toolset] = toolset.openai_tools() if toolset else []
        case = build_case(trajectory, tools[trajectory.toolset], policy)
        if not case.empty:
            count += 1
            yield case


def unjudged(store: Store, ids: Iterable[str]) -> list[str]:
    """The ids of ``ids`` the judge has not scored yet."""
    scored = store.scores(SCORE)
    return [i for i in ids if i not in scored]


async def judge_cases(store: Store, judge: Judge, found: Iterable[Case], policy: MaskPolicy,
                      on_judged: Callable[[JudgeSummary], None] | None = None) -> JudgeSummary:
    """Ask ``judge`` about every case, ``judge.concurrency`` at once, writing each verdict as it comes."""
    summary = JudgeSummary(judge.model)
    queue: asyncio.Queue[Case | None] = asyncio.Queue(maxsize=2 * judge.concurrency)

    async def produce() -> None:
        for case in found:
            await queue.put(case)
        for _ in range(judge.concurrency):
            await queue.put(None)

    async def work() -> None:
        while (case := await queue.get()) is not None:
            try:
                verdict = await judge.verdict(case)
            except UnreadableReply as exc:
                summary.unreadable.append((case.trajectory.id, str(exc)))
            except FatalModelError:
                raise
            except ModelError as exc:
                summary.failed.append((case.trajectory.id, str(exc)))
            else:
                summary.add(verdict, record_verdict(store, verdict, policy))
            if on_judged is not None:
                on_judged(summary)

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(produce())
            for _ in range(judge.concurrency):
                group.create_task(work())
    except BaseExceptionGroup as errors:
        first = _first(errors)
        if isinstance(first, FatalModelError):
            raise CuratorError(str(first)) from None
        raise first from None
    finally:
        summary.requests, summary.retries = judge.requests, judge.retries
    return summary


def _first(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error
