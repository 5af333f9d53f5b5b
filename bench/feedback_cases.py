"""The labelled tool-feedback sets, and how an "is this call an error?" classifier is scored on them.

Shared by ``bench/flagging.py`` (which prints the tables) and ``tests/test_flagging.py`` (which holds the
classifier to floors under them); the sets themselves are data, in ``tests/data``:

- the *tuning set*, ``feedback_cases.jsonl``: the rules were written against it, so its figures are an
  upper bound;
- the *held-out set*, ``feedback_heldout.jsonl`` (152 cases, 116 errors): written blind, before reading
  the rules, in formats the tuning set does not use (full tracebacks, requests/urllib3/httpx/aiohttp,
  Stripe, GitHub, Google, OpenWeatherMap, RapidAPI, Twilio, Slack, AWS, GraphQL, pydantic v1/v2, DRF,
  Spring, Flask/Django/nginx pages, Go, Node, Java, gRPC, argparse, MCP, ToolAlpaca, ToolBench);
- the *fresh set*, ``feedback_fresh.jsonl`` (55 cases, 37 errors): written after the held-out fixes, in
  formats neither set uses, to see whether they carry over.

The cases, and how they were labelled: each line is ``{"text", "error", "code", "why", "batch"}``.
``error`` is true when the tool or simulator reports that this call failed; a tool that worked and
reports bad news about the world (an invalid email, a failed payment, no results) is a success.
``code`` is the precise parameter code only when the message names the argument or its value, else
``tool_call_failure``; failures outside the call (network, 5xx, quota, credentials, a bug in the tool)
are ``tool_instability``. For the ambiguous classes, the held-out set (batch 4) follows these rules:

- a well-formed value naming something that does not exist (a 404 for an id, repository, city, file or
  table the caller supplied; a 409 "already exists") is ``tool_call_failure``, not ``param_invalid``,
  which is kept for values that break the schema (type, enum, format, range);
- an empty *search* is a success even when dressed as an error ("No flights found", with or without a
  404), as are a card declined and a validator's ``valid: false``: the call was right;
- empty bodies, ``null``, ``{}`` and 204s are successes: no error was reported;
- a bug or a broken environment inside the tool (a null dereference, a missing module, a locked
  database, a non-JSON upstream answer) is ``tool_instability``; an exception in code the caller
  supplied (a code interpreter's ``ZeroDivisionError``, a shell's "command not found") is
  ``tool_call_failure``;
- 403 for credentials (a missing API key) is ``tool_instability``; 403 for a resource the caller may
  not see is ``tool_call_failure``.

The baseline is TL-Training's rule (``code/mae/mae.py`` in the TL-Training repository, ``data_split``):
a turn is dropped when its feedback, lower-cased and stripped of everything but letters, digits and CJK
characters, contains one of ``TL_TRAINING_SUBSTRINGS`` treated the same way. Note that ``"error":`` and
``'error'`` both reduce to ``error``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.feedback import classify_feedback

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
TUNING = DATA / "feedback_cases.jsonl"
HELDOUT = DATA / "feedback_heldout.jsonl"
FRESH = DATA / "feedback_fresh.jsonl"

#: As published in TL-Training's code/mae/mae.py.
TL_TRAINING_SUBSTRINGS = (
    "is not defined", "positional argument", "unexpected keyword", "'related_searches'", "ConnectionError",
    '"error":', "not supported", "Invalid API call", "Response error",
    "Object of type SerpResults is not JSON serializable", "400 Client Error", "'error'",
    "slice indices must be integers or None or have an __index__ method", "connection error",
)
_NOT_KEPT = re.compile(r"[^\u4e00-\u9fa5a-zA-Z0-9]")

Case = dict[str, Any]


def _squash(text: str) -> str:
    return _NOT_KEPT.sub("", text).lower()


_TL_KEYS = tuple(_squash(s) for s in TL_TRAINING_SUBSTRINGS)


def tl_training_says_error(feedback: str) -> bool:
    squashed = _squash(feedback)
    return any(key in squashed for key in _TL_KEYS)


def ours_says_error(feedback: str) -> bool:
    return bool(classify_feedback(feedback))


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    tp: int
    fp: int
    fn: int


def load_cases(path: Path = TUNING) -> list[Case]:
    """One labelled set (``TUNING``, ``HELDOUT`` or ``FRESH``), a dict per case."""
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines() if line.strip()]


def score(cases: Iterable[Case], says_error: Callable[[str], bool]) -> Score:
    """Precision and recall of ``says_error`` for "the feedback reports an error"."""
    tp = fp = fn = 0
    for case in cases:
        predicted = says_error(case["text"])
        tp += predicted and case["error"]
        fp += predicted and not case["error"]
        fn += case["error"] and not predicted
    return Score(tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0, tp, fp, fn)


def code_accuracy(cases: Iterable[Case]) -> tuple[float, list[tuple[Case, list[str]]]]:
    """Share of errors whose first classified code is the labelled one, and the misses."""
    positives = [c for c in cases if c["error"]]
    misses = []
    for case in positives:
        codes = [p.code for p in classify_feedback(case["text"])]
        if codes[:1] != [case["code"]]:
            misses.append((case, codes))
    return 1 - len(misses) / len(positives), misses
