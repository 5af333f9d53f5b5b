"""The one exception the command line turns into a clear message and a failed run."""
from __future__ import annotations


class TrainingError(Exception):
    """Bad input or setup: shown as one line on stderr, the run marked failed, no traceback."""
