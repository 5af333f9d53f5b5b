"""Where each assistant message sits in a rendered conversation: located by perturbation, then verified.

No template is assumed prefix-stable and no template's markers are parsed. For a
conversation rendered once as ``F``:

1. **Anchors.** The conversation is rendered a second time with the text of every
   message perturbed: each ASCII letter and digit of a message's strings (content,
   tool names, string argument values) becomes a letter shifted by an amount that
   encodes the message's index; case, punctuation, whitespace, ids and roles are
   kept. Every template takes the same branches for both renders, so the two
   have the same length, and a character that differs is an *anchor*: text the
   message wrote, and the shift names the message. Nothing else can change it.
   A render whose length or shape changes under the perturbation is refused.
2. **Start** — what the generation prompt adds. The prompt the model is given for
   message ``i`` is ``G = render(messages[:i], add_generation_prompt=True)``. The
   message starts where ``G`` ends, found by aligning the end of ``G`` on ``F``
   through the last anchor before the message: ``G`` must end with that anchor's
   run of text followed by the start of the gap before the message, in exactly
   one way. Templates that render a turn differently when it is last (Hermes's
   tool turn under ``loop.last``) fail that alignment; then the header alone
   (``G`` minus the same context rendered without the prompt) must occur exactly
   once in the gap. When the template's code proves every prompt is the
   context's render plus one constant header (:mod:`training.generation_prompt`),
   no prompt is rendered: :func:`after_header` finds the same start from the
   header alone, or says it cannot be sure and the prompt is rendered.
3. **End** — what closing the turn adds. The end-of-turn is the tokenizer's eos
   token, the first one after the message's last anchor (generation stops there),
   or, when the template closes turns with something else (Gemma's
   ``<end_of_turn>``), the text the template appends after the message when it is
   the last one, as far as the conversation's render agrees with it, trailing
   whitespace aside.
4. **Verified.** A span holds no anchor of another message, its start and end are
   found exactly once, and (in :mod:`training.data`) no token straddles its
   edges. Anything else is a :class:`SpanError` with the reason, and the example
   is refused rather than trained with prompt tokens weighted.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

# Messages perturbed in one render: each gets its own letter shift 1..25.
CODES = 25
_LOWER = string.ascii_lowercase
_UNTOUCHED = {"role", "id", "tool_call_id", "type"}


class SpanError(Exception):
    """An assistant message whose tokens cannot be located exactly (the example is refused)."""


@dataclass(frozen=True)
class Span:
    """Characters ``[start, end)`` of the rendered text that one assistant message produced."""

    message: int
    start: int
    end: int


def _shift_table(code: int) -> dict[int, str]:
    """Letters shift by ``code + 1`` within their case; digit ``d`` becomes the letter ``d + code + 1``."""
    shift = code + 1
    table = {}
    for i, ch in enumerate(_LOWER):
        table[ord(ch)] = _LOWER[(i + shift) % 26]
        table[ord(ch.upper())] = _LOWER[(i + shift) % 26].upper()
    for d in range(10):
        table[ord(str(d))] = _LOWER[(d + shift) % 26]
    return table


_TABLES = [_shift_table(code) for code in range(CODES)]


def perturb(value: Any, table: dict[int, str]) -> Any:
    """``value`` with every string translated, except ids, roles and types (which templates constrain)."""
    if isinstance(value, str):
        return value.translate(table)
    if isinstance(value, dict):
        return {k: (v if k in _UNTOUCHED else perturb(v, table)) for k, v in value.items()}
    if isinstance(value, list):
        return [perturb(v, table) for v in value]
    return value


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def anchors(
    text: str, messages: Sequence[dict[str, Any]], render: Callable[[list[dict[str, Any]]], str]
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions of ``text`` that some message wrote, and which message wrote each.

    One extra render per 25 messages. Raises :class:`SpanError` when a perturbed
    render is not a character-for-character variant of ``text``.
    """
    original = _codepoints(text)
    positions, owners = [], []
    for first in range(0, len(messages), CODES):
        chunk = range(first, min(first + CODES, len(messages)))
        changed = [perturb(m, _TABLES[i - first]) if i in chunk else m for i, m in enumerate(messages)]
        other = _codepoints(render(changed))
        if len(other) != len(original):
            raise SpanError("the template renders differently when message text changes (its length changed)")
        at = np.flatnonzero(original != other)
        codes = codes_of(original[at], other[at])
        if (codes < 0).any():
            raise SpanError("the template renders differently when message text changes (not only text moved)")
        owner = codes + first
        if (owner >= len(messages)).any():
            raise SpanError("a changed character cannot be attributed to a message")
        positions.append(at)
        owners.append(owner)
    if len(positions) == 1:  # one render: already in order
        return positions[0].astype(np.int64), owners[0].astype(np.int64)
    pos = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)
    own = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
    order = np.argsort(pos, kind="stable")
    return pos[order].astype(np.int64), own[order].astype(np.int64)


def _blocks(positions: np.ndarray, owners: np.ndarray) -> list[tuple[int, int, int]]:
    """``(start, end, owner)`` of each run of consecutive anchors one message wrote, from its first to past its last."""
    if not len(owners):
        return []
    cut = np.flatnonzero(owners[1:] != owners[:-1]) + 1
    firsts, lasts = np.r_[0, cut], np.r_[cut, len(owners)] - 1
    return list(zip(positions[firsts].tolist(), (positions[lasts] + 1).tolist(), owners[firsts].tolist()))


def code_formula(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """The perturbation code that turns each ``before`` character into ``after``; -1 where none does."""
    low_before = before | 0x20
    low_after = (after | 0x20).astype(np.int64)
    letter_before = (low_before >= 97) & (low_before <= 122)
    digit_before = (before >= 48) & (before <= 57)
    letter_after = (low_after >= 97) & (low_after <= 122)
    base = np.where(letter_before, low_before.astype(np.int64) - 97, before.astype(np.int64) - 48)
    codes = (low_after - 97 - base - 1) % 26
    ok = letter_after & (letter_before | digit_before) & (codes < CODES)
    return np.where(ok, codes, -1)


# code_formula over every pair of ASCII characters; beyond ASCII there is no code, nor for DEL (127).
_ASCII = np.arange(128, dtype=np.uint32)
_CODE_TABLE = code_formula(np.repeat(_ASCII, 128), np.tile(_ASCII, 128)).reshape(128, 128)


def codes_of(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """:func:`code_formula` by table look-up (a third of the array operations): non-ASCII reads DEL's -1."""
    return _CODE_TABLE[np.minimum(before, 127), np.minimum(after, 127)]


class Locator:
    """Finds the span of each assistant message of one rendered conversation."""

    def __init__(
        self,
        text: str,
        messages: list[dict[str, Any]],
        render: Callable[[list[dict[str, Any]], bool], str],
        eos: str | None,
        header: str | None = None,
    ):
        """``header``: the constant text every generation prompt appends to its context's render, when proven."""
        self.text = text
        self.messages = messages
        self._render = render
        self.eos = eos or None
        self.header = header or None
        positions, owners = anchors(text, messages, lambda changed: render(changed, False))
        self._blocks = _blocks(positions, owners)
        self._blocks_of: dict[int, list[int]] = {}
        for b, (_, _, owner) in enumerate(self._blocks):
            self._blocks_of.setdefault(owner, []).append(b)

    def span(self, index: int) -> Span:
        """The span of assistant message ``index``; :class:`SpanError` says why it cannot be trusted."""
        blocks = self._blocks_of.get(index)
        if not blocks:
            raise SpanError("it renders no text of its own (nothing changes when its text does)")
        if len(blocks) > 1:
            raise SpanError(f"its text is interleaved with message {self._blocks[blocks[0] + 1][2]}'s")
        b = blocks[0]
        first, last, _ = self._blocks[b]
        run_start, gap_start, _ = self._blocks[b - 1] if b > 0 else (0, 0, None)
        gap_end = self._blocks[b + 1][0] if b + 1 < len(self._blocks) else len(self.text)
        start = self._start(index, run_start, gap_start, first)
        end = self._end(index, first, last, gap_end)
        return Span(index, start, end)

    def _start(self, index: int, run_start: int, gap_start: int, first: int) -> int:
        """After the generation prompt, in the gap between the text before (``run_start:gap_start``) and ``first``."""
        run, gap = self.text[run_start:gap_start], self.text[gap_start:first]
        if self.header and (cut := after_header(run, gap, self.header)) is not None:
            return gap_start + cut
        prompt = self._render(self.messages[:index], True)
        cut = prompt_cut(run, gap, prompt, lambda: self._render(self.messages[:index], False))
        if cut is None:
            raise SpanError("the generation prompt does not match how the template renders the turn in the conversation")
        return gap_start + cut

    def _end(self, index: int, first: int, last: int, gap_end: int) -> int:
        """After the end of turn, in the gap between the message's text ``first:last`` and ``gap_end``."""
        gap = self.text[last:gap_end]
        if self.eos and self.eos in gap:
            return last + gap.index(self.eos) + len(self.eos)
        closed = self._render(self.messages[: index + 1], False)
        own = self.text[first:last]
        at = closed.rfind(own)
        if at < 0:
            raise SpanError("the template renders it differently when it is the last message")
        closing = closed[at + len(own) :]
        agreed = next((n for n, (a, b) in enumerate(zip(closing, gap)) if a != b), min(len(closing), len(gap)))
        return last + len(gap[:agreed].rstrip())


def prompt_cut(run: str, gap: str, prompt: str, context: Callable[[], str]) -> int | None:
    """Where ``prompt`` ends in ``gap`` (step 2 of the module docstring); None when not in exactly one way.

    ``run`` is the text before the gap, ``context`` renders the same messages
    without the prompt (only needed when the alignment fails).
    """
    fits = [t for t in range(len(gap) + 1) if prompt.endswith(run + gap[:t])]
    if len(fits) == 1:
        return fits[0]
    rendered = context()
    header = prompt[len(rendered) :] if prompt.startswith(rendered) else ""
    if header and gap.count(header) == 1:
        return gap.index(header) + len(header)
    return None


def after_header(run: str, gap: str, header: str) -> int | None:
    """The cut :func:`prompt_cut` finds when the prompt is ``context + header``, whatever the context; None if unsure.

    Its candidates are the cuts ``t`` where ``run + gap[:t]`` ends
    the prompt. A cut ``t >= len(header)`` puts the whole header inside the gap,
    ending at ``t``: with the header occurring once there, only one such cut
    exists, and if the alignment rejects it the header fallback picks the same
    one. A shorter cut needs ``run + gap[:t]`` to end with the header (which
    then reaches into the run) or the header to end with it (a run shorter
    than the header); when either can happen, the prompt is rendered after all.
    """
    at = gap.find(header)
    if at < 0 or gap.find(header, at + 1) >= 0:
        return None
    n = len(header)
    if header in run[-n:] + gap[: n - 1]:  # would end inside run + gap[:t] for some t < n
        return None
    if len(run) <= n and any(header.endswith(run + gap[:t]) for t in range(min(n - len(run), n - 1, len(gap)) + 1)):
        return None
    return at + n
