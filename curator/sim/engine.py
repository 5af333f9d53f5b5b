"""The simulation engine: asyncio, bounded concurrency, every message stored as it happens.

``Simulation(store, config, policy=…)`` runs in the caller's event loop. ``events()``
runs it and yields what happens; ``run()`` runs it and returns the summary;
``cancel()`` stops it cleanly. Each store write is one transaction, made on the
engine's writer thread (``writer.py``) and awaited before its event is emitted;
a write once asked for always completes, so a message is whole or absent, and
a trajectory's ``cancelled`` status is written after its last message.

A trajectory goes ``running`` → ``complete``, or ``failed`` with a reason: the
step limit, a model that failed for good after the backend's retries, or
``cancelled``. When one finishes, and as soon as a tool answers with an error,
``store.flagging`` tags it and sets its MAE weights (a ``Flagged`` event).

A store that cannot be written (a full disk) stops the simulation: the trajectories
still running are marked failed in one last write when the store takes it, else left
to the next command's reaper (their lease names this process, which will be gone),
and ``store_error`` says what happened. The writer's lease is refreshed every
``HEARTBEAT_S`` by a timer, never per message.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import AsyncIterator, Callable

from store import Message, Store, new_id
from store.errors import StoreError
from store.flagging import flag_trajectory
from store.leases import HEARTBEAT_S
from store.taxonomy import MaskPolicy
from store.toolcalls import Toolbox

from . import prompts
from .agents import AssistantAgent, ToolExecutor, UserAgent, is_question
from .backends import make_backend
from .backends.base import Backend, Episode, FatalModelError, Instruction, ModelError, Written
from .config import SimConfig
from .events import (Event, Flagged, MessageAdded, SimulationDone, Summary, TrajectoryFinished,
                     TrajectoryStarted)
from .focus import check_focus
from .toolsets import SimToolset, resolve
from .writer import StoreWriter, StoreWriteError

log = logging.getLogger(__name__)
Emit = Callable[[Event], None]


class Simulation:
    def __init__(self, store: Store, config: SimConfig, backend: Backend | None = None, *, policy: MaskPolicy):
        self.store = store
        self.policy = policy
        self.config = config.checked()
        self.toolset = SimToolset(resolve(store, self.config.toolset))
        check_focus(self.config.focus, self.toolset)
        self.backend = backend or make_backend(self.config)
        self._owns_backend = backend is None
        self.summary = Summary(self.backend.name, self.backend.model("assistant"), self.config.toolset,
                               self.config.n)
        self._running: dict[str, Episode] = {}
        #: Started and not yet recorded as finished in the store (``_running`` loses an id before its last write).
        self._unfinished: set[str] = set()
        #: Why the store could not be written, when that stopped the simulation.
        self.store_error: StoreError | None = None
        self._task: asyncio.Task[None] | None = None
        self._cancelled = False
        self._toolboxes: dict[str | None, Toolbox | None] = {}  # flag_trajectory's cache, used on the writer thread
        self._write = StoreWriter(store)

    # -- public ------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[Event]:
        """Run the simulation, yielding its events; the last one is ``SimulationDone``.

        Closing the iterator early (``break`` inside ``contextlib.aclosing(sim.events())``) or
        cancelling the consumer cancels the run, which marks the trajectories still running as
        failed with reason ``cancelled``.
        """
        if self._task is not None:
            raise RuntimeError("a Simulation runs once; make a new one to run again")
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._task = task = asyncio.ensure_future(self._run(queue.put_nowait))
        task.add_done_callback(lambda _: queue.put_nowait(None))  # wakes us if the run dies of an error
        try:
            while (event := await queue.get()) is not None:
                yield event
                if isinstance(event, SimulationDone):
                    break
        finally:
            if not task.done():
                self.cancel()
                await asyncio.gather(task, return_exceptions=True)
        task.result()

    async def run(self) -> Summary:
        """Run the simulation to the end (or until ``cancel()``) and return its summary."""
        async for _ in self.events():
            pass
        return self.summary

    @property
    def running(self) -> list[str]:
        """Ids of the trajectories in progress right now."""
        return list(self._running)

    def cancel(self) -> None:
        """Stop: no new trajectories, running ones end ``failed`` / ``cancelled``, ``SimulationDone`` follows."""
        self._cancelled = True
        if self._task is not None and not self._task.done():
            self._task.cancel()

    # -- the run -------------------------------------------------------------------------------
    async def _run(self, emit: Emit) -> None:
        started = time.monotonic()
        beat = asyncio.ensure_future(self._heartbeat())
        try:
            if self._cancelled:  # cancel() before the run began
                raise asyncio.CancelledError
            user = UserAgent(self.backend, self.toolset)
            assistant = AssistantAgent(self.backend)
            executor = ToolExecutor(self.backend, self.toolset, self.config.instability_rate)
            queue: asyncio.Queue[tuple[int, Instruction] | None] = asyncio.Queue(maxsize=self.config.concurrency * 2)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._produce(user, queue))
                    for _ in range(self.config.concurrency):
                        group.create_task(self._work(queue, user, assistant, executor, emit))
            except* FatalModelError as errors:
                self.summary.error = str(_first(errors))
            except* StoreError as errors:
                self.store_error = _first(errors)  # type: ignore[assignment]
        except asyncio.CancelledError:
            self.summary.cancelled = True
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
        finally:
            beat.cancel()
            if self.store_error is None:
                await self._abandon(emit)
            else:
                await self._fail_unfinished()
            await self._write.aclose()
            if self._owns_backend:
                await _quietly(self.backend.aclose())
        self._done(started, emit)

    def _done(self, started: float, emit: Emit) -> None:
        self.summary.elapsed = time.monotonic() - started
        self.summary.requests = self.backend.requests
        self.summary.retries = self.backend.retries
        emit(SimulationDone(self.summary))

    async def _produce(self, user: UserAgent, queue: asyncio.Queue[tuple[int, Instruction] | None]) -> None:
        """Instructions in batches, several batches in flight so the workers never wait on one."""
        n, size = self.config.n, self.config.instruction_batch
        starts = iter(range(0, n, size))
        written = Written()  # shared by the writers: each avoids what the others wrote too

        async def writer() -> None:
            for start in starts:
                got: list[Instruction] = []
                count = min(size, n - start)
                try:
                    while len(got) < count:
                        more = await user.instructions(start + len(got), count - len(got), written)
                        if not more:
                            raise ModelError("user", "wrote no usable instructions")
                        taken = more[: count - len(got)]
                        got += taken
                        for instruction in taken:
                            written.add(instruction.text)
                except FatalModelError:
                    raise
                except ModelError as exc:  # already retried: stop writing, finish what was started
                    self.summary.error = f"could not write instructions: {exc}"
                    for _ in starts:
                        pass
                    return
                for offset, instruction in enumerate(got):
                    await queue.put((start + offset, instruction))

        async with asyncio.TaskGroup() as group:
            for _ in range(-(-self.config.concurrency // size)):  # enough to start every worker at once
                group.create_task(writer())
        for _ in range(self.config.concurrency):
            await queue.put(None)  # one "no more work" per worker

    async def _work(self, queue: asyncio.Queue[tuple[int, Instruction] | None], user: UserAgent,
                    assistant: AssistantAgent, executor: ToolExecutor, emit: Emit) -> None:
        while (item := await queue.get()) is not None:
            index, instruction = item
            episode = Episode(index, self.toolset, instruction, random.Random(f"{self.config.seed}:{index}:episode"))
            trajectory_id = new_id()
            try:
                await self._start(trajectory_id, episode, emit)
                status, reason = await self._converse(trajectory_id, episode, user, assistant, executor, emit)
            except FatalModelError as exc:
                await self._finish(trajectory_id, "failed", str(exc), emit)
                raise
            except ModelError as exc:
                status, reason = "failed", str(exc)
            except asyncio.CancelledError:
                await self._finish(trajectory_id, "failed", "cancelled", emit)
                raise
            except StoreError:
                raise
            except Exception as exc:  # a bug must not take the other trajectories down
                log.exception("trajectory %s", trajectory_id)
                status, reason = "failed", f"internal error: {type(exc).__name__}: {exc}"
            await self._finish(trajectory_id, status, reason, emit)

    async def _start(self, trajectory_id: str, episode: Episode, emit: Emit) -> None:
        meta = {"index": episode.index, "seed": self.config.seed,
                "user_model": self.backend.model("user"), "executor_model": self.backend.model("executor"),
                **episode.instruction.meta}
        self._running[trajectory_id] = episode
        self._unfinished.add(trajectory_id)
        self.summary.started += 1
        await self._write(lambda store: store.new_trajectory(
            episode.toolset.name, episode.instruction.text, backend=self.backend.name,
            model=self.backend.model("assistant"), meta=meta, id=trajectory_id))
        emit(TrajectoryStarted(trajectory_id, episode.instruction.text))
        await self._add(trajectory_id, episode, Message("system", prompts.assistant_system(episode.toolset)), emit)
        await self._add(trajectory_id, episode, Message("user", episode.instruction.text), emit)

    async def _converse(self, trajectory_id: str, episode: Episode, user: UserAgent, assistant: AssistantAgent,
                        executor: ToolExecutor, emit: Emit) -> tuple[str, str | None]:
        questions, acted = 0, False
        for _ in range(self.config.max_steps):
            await asyncio.sleep(0)  # an instant backend must not starve the loop (the TUI shares it)
            message = await self._add(trajectory_id, episode, await assistant.turn(episode), emit)
            if message.tool_calls:
                acted = True
                failed = False
                for call in message.tool_calls:
                    content, code = await executor.run(episode, call)
                    name = call["function"]["name"] or None
                    reply = await self._add(trajectory_id, episode,
                                            Message("tool", content, tool_call_id=call["id"], name=name), emit)
                    if code:
                        episode.errors[reply.index] = code  # type: ignore[index]
                        failed = True
                if failed:
                    await self._flag(trajectory_id, emit)
                continue
            if message.raw is not None:
                continue  # an unparseable reply: the step is kept (and masked), the model tries again
            if is_question(message) and not acted and questions < self.config.max_questions:
                questions += 1
                answer = await user.answer(episode, message.content or "")
                await self._add(trajectory_id, episode, Message("user", answer), emit)
                continue
            return "complete", None
        return "failed", f"no final answer within {self.config.max_steps} assistant steps"

    # -- bookkeeping: each write is one transaction, awaited before its event ---------------------
    async def _add(self, trajectory_id: str, episode: Episode, message: Message, emit: Emit) -> Message:
        await self._write(lambda store: store.append_message(trajectory_id, message))
        episode.messages.append(message)
        self.summary.messages += 1
        emit(MessageAdded(trajectory_id, message))
        return message

    async def _finish(self, trajectory_id: str, status: str, reason: str | None, emit: Emit) -> None:
        if self._running.pop(trajectory_id, None) is None:
            return
        if status == "complete":
            self.summary.complete += 1
        else:
            self.summary.failed += 1
            key = (reason or "unknown").split(":")[0]
            self.summary.reasons[key] = self.summary.reasons.get(key, 0) + 1
        await self._write(lambda store: store.set_status(trajectory_id, status, reason))
        self._unfinished.discard(trajectory_id)
        emit(TrajectoryFinished(trajectory_id, status, reason))
        if await self._flag(trajectory_id, emit):
            self.summary.flagged += 1

    async def _flag(self, trajectory_id: str, emit: Emit) -> list[str]:
        if not self.config.flag:
            return []
        result = await self._write(lambda store: flag_trajectory(store, trajectory_id, self.policy, self._toolboxes))
        codes = sorted({code for _, code, _ in result.tags})
        emit(Flagged(trajectory_id, codes))
        return codes

    async def _heartbeat(self) -> None:
        """Refresh this process's lease now and then, so another host can tell a live simulation from a dead one."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self._write(lambda store: store.heartbeat())
            except StoreError:
                return  # the next trajectory write fails too, and stops the simulation

    async def _fail_unfinished(self) -> None:
        """After a failed store write: mark the unfinished trajectories failed in one write, if the store takes it."""
        error = self.store_error
        ids = sorted(self._unfinished)
        reason = f"store write failed: {error}"
        try:
            if ids:
                await self._write(lambda store: store.fail_running(ids, reason))
            outcome = f"{len(ids)} running trajectories marked failed" if ids else ""
            self.summary.failed += len(self._running)  # the others were counted as they finished
        except StoreError:
            outcome = f"{len(ids)} running trajectories left for the next curator command to mark failed"
        self._running.clear()
        self._unfinished.clear()
        self.store_error = StoreWriteError(f"{error}; {outcome}" if outcome else str(error))
        self.summary.error = str(self.store_error)

    async def _abandon(self, emit: Emit) -> None:
        """Mark every trajectory still running as failed / cancelled."""
        for trajectory_id in list(self._running):
            await self._finish(trajectory_id, "failed", "cancelled", emit)


def _first(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def _quietly(awaitable: object) -> None:
    try:
        await awaitable  # type: ignore[misc]
    except Exception:  # closing connections must not mask how the run ended
        log.debug("closing the backend failed", exc_info=True)
