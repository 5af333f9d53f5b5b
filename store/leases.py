"""Leases: which process is writing which unfinished rows, so the rows of a process that died are found.

A process holds one lease (its pid, host and start time: ``store.processes``) and refreshes its
heartbeat now and then; each ``running`` trajectory and each active run names the lease of the
process writing it. A lease is alive while that very process runs (same pid *and* start time, so
a reused pid does not count), or, for a process on another host, while its heartbeat is fresh.
``reap_interrupted`` marks the running trajectories of dead leases failed (reason
``interrupted``) in one transaction; a live simulation's rows are never touched.
"""
from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from . import processes
from .processes import ProcessId
from .records import now

#: Seconds between heartbeats of a process that holds a lease (a simulation refreshes it on a timer).
HEARTBEAT_S = 30.0
#: A lease on another host whose heartbeat is older than this is taken for dead (this host looks at the pid).
STALE_S = 600.0
#: The reason an orphaned trajectory is failed with; what follows the colon says whose it was.
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Interrupted:
    """Trajectories one dead writer left running, now marked failed."""

    trajectories: int
    pid: int | None
    host: str | None

    def describe(self) -> str:
        noun = "trajectory" if self.trajectories == 1 else "trajectories"
        if self.pid is None:
            return f"{self.trajectories} {noun} left running with no simulation writing them marked failed"
        where = "" if self.host == processes.host() else f" on {self.host}"
        return f"{self.trajectories} {noun} left running by an interrupted simulation (pid {self.pid}{where}) " \
               "marked failed"


class LeaseBookkeeping:
    """The ``leases`` table, for a class with ``conn``, ``_rows`` and ``transaction``."""

    conn: sqlite3.Connection
    _lease_id: str | None = None
    _heartbeat_at: float = 0.0

    def lease(self, process: ProcessId | None = None) -> str:
        """The id of ``process``'s lease (default: this process's), created on first use."""
        process = process or processes.current()
        if process.key != self._lease_id:
            self._upsert_lease(process)
            if process == processes.current():
                self._lease_id, self._heartbeat_at = process.key, time.time()
        return process.key

    def heartbeat(self) -> None:
        """Refresh this process's lease, at most once per ``HEARTBEAT_S`` (callers may call it often)."""
        if self._lease_id is not None and time.time() - self._heartbeat_at >= HEARTBEAT_S:
            self._upsert_lease(processes.current())
            self._heartbeat_at = time.time()

    def _upsert_lease(self, process: ProcessId) -> None:
        with self.transaction():
            self.conn.execute(
                "INSERT INTO leases (id, pid, host, started, created_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                (process.key, process.pid, process.host, process.started, now(), time.time()),
            )

    def lease_alive(self, lease_id: str | None) -> bool | None:
        """Whether the process holding ``lease_id`` still runs; None when ``lease_id`` is None."""
        if lease_id is None:
            return None
        rows = self._rows("SELECT * FROM leases WHERE id = ?", (lease_id,))
        return bool(rows) and _alive(rows[0])

    def reap_interrupted(self) -> list[Interrupted]:
        """Mark failed the running trajectories whose writer is gone; one entry per dead writer.

        Also forgets dead leases that no running trajectory or active run names any more,
        so the table holds about one row per live writer.
        """
        groups = self._rows(
            "SELECT t.lease_id, l.pid, l.host, l.started, l.heartbeat_at, count(*) AS n FROM trajectories t "
            "LEFT JOIN leases l ON l.id = t.lease_id WHERE t.status = 'running' GROUP BY t.lease_id")
        dead = [g for g in groups if g["pid"] is None or not _alive(g)]
        unused = [r["id"] for r in self._rows(
            "SELECT * FROM leases WHERE id NOT IN (SELECT lease_id FROM trajectories "
            "WHERE status = 'running' AND lease_id IS NOT NULL) AND id NOT IN (SELECT lease_id FROM runs "
            "WHERE status IN ('queued', 'running') AND lease_id IS NOT NULL)") if not _alive(r)]
        if not dead and not unused:
            return []
        reaped = []
        with self.transaction():
            for group in dead:
                cursor = self.conn.execute(
                    "UPDATE trajectories SET status = 'failed', reason = ?, updated_at = ? "
                    "WHERE status = 'running' AND lease_id IS ?",
                    (interrupted_reason(group["pid"], group["host"]), now(), group["lease_id"]))
                if cursor.rowcount:
                    reaped.append(Interrupted(cursor.rowcount, group["pid"], group["host"]))
            self._forget([g["lease_id"] for g in dead if g["lease_id"] is not None] + unused)
        return reaped

    def _forget(self, lease_ids: Iterable[str]) -> None:
        self.conn.executemany("DELETE FROM leases WHERE id = ?", [(i,) for i in lease_ids])


def interrupted_reason(pid: int | None, host: str | None) -> str:
    if pid is None:
        return f"{INTERRUPTED}: no simulation was writing it"
    return f"{INTERRUPTED}: its simulation (pid {pid} on {host}) ended while it was running"


def _alive(row: Mapping[str, Any]) -> bool:
    """A lease row's process runs: this host looks at the process, another host's heartbeat must be fresh."""
    alive = processes.is_alive(ProcessId(row["host"], row["pid"], row["started"]))
    if alive is None:
        return time.time() - row["heartbeat_at"] < STALE_S
    return alive
