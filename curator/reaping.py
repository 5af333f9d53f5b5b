"""What a hard stop left behind, found and marked by the next command (no torch, no Textual).

A simulation killed with -9 leaves its trajectories ``running``, a training process killed
with -9 leaves its run ``running`` (or ``queued``). Every command that opens the store, and
the app when it starts, calls ``reap`` first: rows whose process is gone are marked failed,
each with one line saying what was interrupted; a live process's rows are never touched
(``store.leases`` tells them apart by pid *and* start time).
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Collection

from store import Run, Store, now
from store.runs import ACTIVE_RUN_STATUSES


def reap(store: Store) -> list[str]:
    """Mark failed what dead processes left running (trajectories, runs); one line for each dead writer."""
    lines = [found.describe() for found in store.reap_interrupted()]
    return lines + [describe_lost(run) for run in reap_lost_runs(store)]


def run_process_alive(store: Store, run: Run) -> bool:
    """True while ``run``'s own process runs: the one its lease names (same pid and start time).

    A run from before leases is recognised by its command line, which names the run; either
    way a pid the system gave to another process since is never taken for the run's.
    """
    alive = store.run_alive(run)
    if alive is None:
        return run.pid is not None and is_run_process(run.pid, run.id)
    return alive


def is_run_process(pid: int, run_id: str) -> bool:
    """True when ``pid`` is alive and is run ``run_id``'s process (its command line names the run)."""
    try:
        if Path("/proc/self").exists():
            args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        else:
            out = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, timeout=5)
            args = out.stdout.split()
    except (OSError, subprocess.SubprocessError):
        return False
    return run_id in args


def reap_lost_runs(store: Store, skip: Collection[str] = ()) -> list[Run]:
    """Mark failed the active runs whose process is gone without recording an end (killed, machine restarted).

    A process that ends normally records its end before it exits, so the row is read
    again after the process is found gone. A run row gets its pid in the transaction that
    creates it (``start_run``, ``training.recorder``), so one without a pid has no process to
    look for. Returns the runs marked, as they were.
    """
    lost = []
    for run in store.runs():
        if run.status not in ACTIVE_RUN_STATUSES or not run.pid or run.id in skip or run_process_alive(store, run):
            continue
        current = store.run(run.id)
        if current is not None and current.status in ACTIVE_RUN_STATUSES:
            store.update_run(run.id, status="failed", finished_at=now(),
                             error=f"its process (pid {run.pid}) ended without recording a result")
            lost.append(run)
    return lost


def describe_lost(run: Run) -> str:
    """One line for a run ``reap_lost_runs`` marked failed."""
    return f"run {run.id} ({run.kind} {run.algorithm}) was left {run.status} by its process (pid {run.pid}), " \
           "which ended without recording a result: marked failed"
