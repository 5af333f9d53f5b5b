"""``store/formats/files.py``'s readers, decoding through :func:`store.safe_json.loads`: JSON nested too deeply or
holding a lone surrogate is one ``InputError`` naming the file and line, like any other bad JSON."""
from __future__ import annotations

import json
import os
from typing import Any, Iterator

from ..errors import InputError
from ..safe_json import loads
from .files import json_type, open_input


def parse_json(text: str, source: str, line_offset: int = 0) -> Any:
    """Decode JSON text, reporting an error as ``source:line: invalid JSON at column c: …``."""
    try:
        return loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(source, f"invalid JSON at column {exc.colno}: {exc.msg}", exc.lineno + line_offset) from None


def read_json(path: str | os.PathLike[str]) -> Any:
    """A whole JSON document; a syntax error names its line and column."""
    with open_input(path) as handle:
        text = handle.read()
    return parse_json(text, str(path))


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
