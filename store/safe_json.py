"""JSON from a file, a model or a tool, decoded only when it is safe to store, process and show.

Two things ``json.loads`` accepts break later steps with a traceback: nesting
deep enough to exhaust the stack (``[[[[…``: a ``RecursionError`` in the
decoder, or in any recursive step after it), and a lone surrogate escape
(``"\\ud800"``: text no UTF-8 encoder takes, so SQLite and the terminal refuse
it). :func:`loads` refuses both as a ``json.JSONDecodeError``, so every caller's
existing handler reports them as the one-line error of any bad JSON.

The file readers that decode through it are in ``store/formats/files.py``.
"""
from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

#: Deeper than any real tool schema, call or answer; shallow enough for every recursive step after decoding.
MAX_DEPTH = 100

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
#: A surrogate's escape (lone or half of a pair): only then can the decoded value hold a lone one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def loads(text: str) -> Any:
    """``json.loads(text)``, or ``json.JSONDecodeError`` when it nests deeper than :data:`MAX_DEPTH` or holds a
    lone surrogate."""
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", text, 0)
    try:
        value = json.loads(text)
    except RecursionError:  # unbalanced, so _depth could not see it (a deep prefix of a broken document)
        raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", text, 0) from None
    escape = _SURROGATE_ESCAPE.search(text)
    if escape is not None and _has_lone_surrogate(value):
        raise json.JSONDecodeError("a string holds a lone surrogate (\\ud800-\\udfff), which is not text",
                                   text, escape.start())
    return value


def _depth(text: str) -> int:
    """The deepest nesting of brackets outside strings (C-speed steps only: it runs on every large line)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


