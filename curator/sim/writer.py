"""The engine's store writes, on one thread with its own connection to the store file.

SQLite does its work with the GIL released, so writing on a thread takes the
commits (about a quarter of a millisecond each, several per trajectory) off the
event loop: the loop keeps serving model requests and, in the TUI, the screen,
and is never blocked while another process holds the write lock. One thread, so
writes happen in the order they were asked for. An in-memory store cannot be
shared between connections; it is written inline.

A write that fails in SQLite (``database or disk is full``, an I/O error) raises
``StoreWriteError``: the simulation cannot go on, and says so in one line.
"""
from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

from store import Store
from store.errors import StoreError

T = TypeVar("T")


class StoreWriteError(StoreError):
    """The store could not be written: the simulation stops."""


class StoreWriter:
    def __init__(self, store: Store):
        self._inline = store if store.path == ":memory:" else None
        self._path = store.path
        self._own: Store | None = None
        self._thread = None if self._inline else ThreadPoolExecutor(1, thread_name_prefix="curator-store")

    def _store(self) -> Store:
        if self._inline is not None:
            return self._inline
        if self._own is None:
            self._own = Store.open(self._path)
        return self._own

    async def __call__(self, write: Callable[[Store], T]) -> T:
        """Run ``write(store)``. Once asked for, a write always happens, even if the caller is cancelled
        while waiting (it is shielded), so a later write — marking the trajectory cancelled — follows it."""
        if self._thread is None:
            return self._run(write)
        future = asyncio.get_running_loop().run_in_executor(self._thread, self._run, write)
        # A write that fails after its caller was cancelled has no one to raise to; the next write fails alike.
        future.add_done_callback(_consume)
        return await asyncio.shield(future)

    def _run(self, write: Callable[[Store], T]) -> T:
        try:
            return write(self._store())
        except sqlite3.Error as exc:
            raise StoreWriteError(f"{self._path}: {exc}") from exc

    async def aclose(self) -> None:
        if self._thread is None:
            return
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)

    def _close(self) -> None:
        if self._own is not None:
            self._own.close()
            self._own = None


def _consume(future: "asyncio.Future[object]") -> None:
    """Mark a write's outcome as seen, so an error nobody awaited is not reported as never retrieved."""
    if not future.cancelled():
        future.exception()
