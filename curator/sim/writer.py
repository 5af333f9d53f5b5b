"""The engine's store writes, on one thread with its own connection to the store file, batched.

SQLite does its work with the GIL released, so writing on a thread takes the
commits off the event loop: the loop keeps serving model requests and, in the
TUI, the screen, and is never blocked while another process holds the write
lock. One thread, so writes happen in the order they were asked for.

The writes asked for while the thread was busy are made together, in one
transaction, and their callers are woken together: at concurrency 256 a commit
and a thread hand-off per message cost more CPU than the message. Each write is
one ``Store`` method with its own ``transaction()``, which inside the batch is a
savepoint: a write that fails is undone alone and raises to its caller, the
others stand. A batch is at most one write per running trajectory (each awaits
its write before asking for the next), so the write lock is held for
milliseconds. A write's caller hears of it only once its batch is committed: a
message whose event was emitted is in the store.

A write that fails in SQLite (``database or disk is full``, an I/O error) raises
``StoreWriteError``, and so does every write of a batch whose commit failed: the
simulation cannot go on, and says so in one line. An in-memory store cannot be
shared between connections; it is written inline, one transaction per write.
"""
from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from typing import Any, Callable, TypeVar

from store import Store
from store.errors import StoreError

T = TypeVar("T")
Write = Callable[[Store], Any]
#: A write and the future its caller awaits; ``None`` as the write asks the thread to close the store and stop.
_Item = tuple[Write | None, "asyncio.Future[Any]"]
#: A write's future and what it came to: (future, result, error).
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


class StoreWriteError(StoreError):
    """The store could not be written: the simulation stops."""


class StoreWriter:
    def __init__(self, store: Store):
        self._inline = store if store.path == ":memory:" else None
        self._path = store.path
        self._own: Store | None = None
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def __call__(self, write: Callable[[Store], T]) -> T:
        """Run ``write(store)``. Once asked for, a write always happens, even if the caller is cancelled
        while waiting (it is shielded), so a later write — marking the trajectory cancelled — follows it."""
        if self._inline is not None:
            try:
                return write(self._inline)
            except sqlite3.Error as exc:
                raise self._failed(exc) from exc
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        # A write that fails after its caller was cancelled has no one to raise to; the next write fails alike.
        future.add_done_callback(_consume)
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="curator-store", daemon=True)
            self._thread.start()
        self._queue.put((write, future))
        return await asyncio.shield(future)

    async def aclose(self) -> None:
        """Make the writes asked for so far, then close the thread's connection and stop it."""
        if self._thread is None:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put((None, done))
        await done
        self._thread.join()
        self._thread = None

    # -- on the writer thread ---------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self._queue.get_nowait())
            writes = [item for item in batch if item[0] is not None]
            outcomes = self._write(writes) if writes else []
            closing = [(future, None, None) for write, future in batch if write is None]
            if closing and self._own is not None:
                self._own.close()
                self._own = None
            _settle_soon(outcomes + closing)
            if closing:
                return

    def _write(self, batch: list[_Item]) -> list[_Outcome]:
        """Make the writes of ``batch`` in one transaction (a lone write in its own)."""
        outcomes: list[_Outcome] = []
        try:
            store = self._store()
            with store.transaction() if len(batch) > 1 else contextlib.nullcontext():
                for write, future in batch:
                    try:
                        outcomes.append((future, write(store), None))  # type: ignore[misc]
                    except sqlite3.Error as exc:
                        outcomes.append((future, None, self._failed(exc)))
                    except Exception as exc:  # raised to the write's caller, as if it had made the write itself
                        outcomes.append((future, None, exc))
        except Exception as exc:  # the store did not open, or the batch's BEGIN or COMMIT failed: none of it is written
            # A write's own SQLite error (a full disk) says more than the COMMIT's after it (no transaction left).
            first = next((e for _, _, e in outcomes if isinstance(e, StoreWriteError)), None)
            error = first or (self._failed(exc) if isinstance(exc, sqlite3.Error) else exc)
            own = {id(future): e for future, _, e in outcomes if e is not None}
            return [(future, None, own.get(id(future), error)) for _, future in batch]
        return outcomes

    def _store(self) -> Store:
        if self._own is None:
            self._own = Store.open(self._path)
        return self._own

    def _failed(self, exc: sqlite3.Error) -> StoreWriteError:
        return StoreWriteError(f"{self._path}: {exc}")


def _settle_soon(outcomes: list[_Outcome]) -> None:
    """Hand the outcomes to their event loop in one call (one wake-up of the loop per batch)."""
    if not outcomes:
        return
    try:
        outcomes[0][0].get_loop().call_soon_threadsafe(_settle, outcomes)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


def _settle(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.done():
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


def _consume(future: "asyncio.Future[object]") -> None:
    """Mark a write's outcome as seen, so an error nobody awaited is not reported as never retrieved."""
    if not future.cancelled():
        future.exception()
