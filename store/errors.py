"""Errors phrased for the user: one line that names the file, record or field."""
from __future__ import annotations


class CuratorError(Exception):
    """Anything the CLI reports as one line with a non-zero exit, never a traceback."""


class StoreError(CuratorError):
    """A problem with the store file itself."""


class Terminated(BaseException):
    """SIGTERM, raised where work must be undone before the process ends (an export's temporary file)."""


class InputError(CuratorError):
    """Bad input: the message names the file and the line, record or field, then the problem."""

    def __init__(self, source: str, problem: str, where: str | int | None = None):
        self.source, self.problem, self.where = source, problem, where
        location = f"{source}:{where}" if isinstance(where, int) else f"{source}: {where}" if where else source
        super().__init__(f"{location}: {problem}")
