"""Which process is which: a pid with its start time, so a pid the system has since given to another
process is never taken for the one that wrote a row (no SQL here; ``store.leases`` keeps the rows).

On Linux the start time is the kernel's (clock ticks since boot, with the boot's id, from ``/proc``);
elsewhere it is what ``ps -o lstart=`` says. A zombie (ended, not yet waited for) counts as gone.
"""
from __future__ import annotations

import functools
import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
#: The start time of a process this system would not describe.
UNKNOWN = "unknown"


@dataclass(frozen=True)
class ProcessId:
    """One process, for as long as it lives: its host, pid and start time."""

    host: str
    pid: int
    started: str

    @property
    def key(self) -> str:
        return f"{self.host}:{self.pid}:{self.started}"


@functools.cache
def host() -> str:
    return socket.gethostname()


def identify(pid: int) -> ProcessId | None:
    """The live process ``pid`` on this host, or None when there is none (or only its zombie)."""
    started = _linux_start(pid) if (_PROC / "self" / "stat").exists() else _ps_start(pid)
    return ProcessId(host(), pid, started) if started else None


def current() -> ProcessId:
    """This process."""
    return _current(os.getpid())


@functools.cache
def _current(pid: int) -> ProcessId:
    """Cached by pid: a process's identity never changes, a forked child's is its own."""
    return identify(pid) or ProcessId(host(), pid, UNKNOWN)


def is_alive(process: ProcessId) -> bool | None:
    """Whether ``process`` still runs: None when it ran on another host, where this one cannot look."""
    if process.host != host():
        return None
    if process.started == UNKNOWN:  # this system would not say when it started: the pid alone decides
        return _exists(process.pid)
    return identify(process.pid) == process


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _linux_start(pid: int) -> str | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()  # the command name in parentheses may hold spaces
    if not fields or fields[0] in ("Z", "X"):
        return None
    return f"{_boot_id()}+{fields[19]}"


@functools.cache
def _boot_id() -> str:
    try:
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return "boot"


def _ps_start(pid: int) -> str | None:
    try:
        out = subprocess.run(["ps", "-o", "stat=,lstart=", "-p", str(pid)], capture_output=True, text=True,
                             timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    state, _, started = out.partition(" ")
    return started.strip() if out and not state.startswith("Z") else None
