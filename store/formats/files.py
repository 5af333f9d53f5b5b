"""Reading input files and writing outputs, for every format.

Inputs: a missing file, a directory or undecodable text become ``InputError``
naming the file. Outputs are written to a temporary file beside the target and
renamed over it only when complete, so a failed or interrupted export never
leaves a half-written file (and never clobbers the previous one). The temporary
file is ``.OUT.<pid>-<random>.part``: SIGINT and SIGTERM remove it on the way out,
and a later export to the same OUT removes those whose writing process is gone
(kill -9). OUT must be a regular file or not exist yet: a directory, a device or
a FIFO is refused, never renamed over.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import stat
import threading
from pathlib import Path
from types import FrameType
from typing import IO, Any, Iterable, Iterator

from .. import processes
from ..errors import CuratorError, InputError, Terminated
from ..redaction import redact
from ..safe_json import loads

#: JSON type names for messages about what a value was instead.
_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type (``object``, ``array`` …)."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


@contextlib.contextmanager
def open_input(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """Open a UTF-8 text input; problems opening or decoding it name the file."""
    source = str(path)
    try:
        handle = open(path, encoding="utf-8-sig")  # a leading byte-order mark is not part of the JSON
    except FileNotFoundError:
        raise InputError(source, "no such file") from None
    except IsADirectoryError:
        raise InputError(source, "is a directory, not a file") from None
    except OSError as exc:
        raise InputError(source, f"cannot read: {exc.strerror or exc}") from None
    with handle:
        try:
            yield handle
        except UnicodeDecodeError as exc:
            raise InputError(source, f"not UTF-8 text (byte {exc.start})") from None


def read_json(path: str | os.PathLike[str]) -> Any:
    """A whole JSON document; a syntax error names its line and column."""
    with open_input(path) as handle:
        text = handle.read()
    return parse_json(text, str(path))


def parse_json(text: str, source: str, line_offset: int = 0) -> Any:
    """Decode JSON text, reporting an error as ``source:line: invalid JSON at column c: …``."""
    try:
        return loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(source, f"invalid JSON at column {exc.colno}: {exc.msg}", exc.lineno + line_offset) from None


def iter_json_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line of a JSONL file, read lazily."""
    source = str(path)
    with open_input(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            value = parse_json(line.rstrip("\r\n"), source, number - 1)
            if not isinstance(value, dict):
                raise InputError(source, f"expected a JSON object, got {json_type(value)}", number)
            yield number, value


def cannot_write(out: str | os.PathLike[str], exc: OSError) -> CuratorError:
    return CuratorError(f"{out}: cannot write: {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_output(out: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``out``; renamed to ``out`` when the block succeeds, removed when it fails
    or the process is told to stop (SIGINT, SIGTERM)."""
    target = Path(out)
    _check_target(target)
    remove_stale_parts(target)
    temp = target.with_name(f"{_part_prefix(target)}{os.getpid()}-{secrets.token_hex(4)}{_PART}")
    with _terminate_raises():
        try:
            # 0o666 through the umask, as open() would give the final file (mkstemp would make it 0600).
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as exc:
            raise cannot_write(out, exc) from None
        try:
            yield temp
            os.replace(temp, target)
        except OSError as exc:
            _remove(temp)
            raise cannot_write(out, exc) from None
        except BaseException:
            _remove(temp)
            raise


def write_lines(out: str | os.PathLike[str], lines: Iterable[str]) -> int:
    """Stream ``lines`` (each ending in a newline) to ``out`` atomically; returns how many were written.

    Each line is redacted (``store.redaction``): a key that reached the store before it was
    redacted there does not reach a file.
    """
    count = 0
    with atomic_output(out) as temp, open(temp, "w", encoding="utf-8", newline="\n") as handle:
        for line in lines:
            handle.write(redact(line))
            count += 1
    return count


_PART = ".part"
#: What ``os.stat`` says a path is, for refusing to export over it.
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def _check_target(target: Path) -> None:
    """Refuse an output path that exists and is not a regular file (following symlinks)."""
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise cannot_write(target, exc) from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise CuratorError(f"{target}: is {kind}, not a regular file; export to a file")


def _part_prefix(target: Path) -> str:
    return f".{target.name}."


def remove_stale_parts(target: Path) -> list[Path]:
    """Remove the temporary files of earlier writes to ``target`` whose writing process is gone; returns them.

    A part names its writer's pid; one whose pid runs (a concurrent export), or that names none,
    is left alone.
    """
    prefix, removed = _part_prefix(target), []
    try:
        names = [p.name for p in target.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(_PART)]
    except OSError:
        return removed
    for name in names:
        pid, dash, _ = name[len(prefix):-len(_PART)].partition("-")
        if dash and pid.isdigit() and processes.identify(int(pid)) is None:
            _remove(target.with_name(name))
            removed.append(target.with_name(name))
    return removed


@contextlib.contextmanager
def _terminate_raises() -> Iterator[None]:
    """Inside the block SIGTERM raises ``Terminated``, so the block's cleanup runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def _remove(path: Path) -> None:
    for leftover in (path, *(path.with_name(path.name + s) for s in ("-journal", "-wal", "-shm"))):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
