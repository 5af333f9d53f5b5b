"""Read curated trajectories and turn them into token ids, labels and loss weights.

Each trajectory is rendered once with the tokenizer's own chat template and
tokenized once with offsets. Where each assistant message starts and ends is
located on that render and verified (:mod:`training.spans`: perturbation
anchors, the generation prompt, the end of turn), and char spans are mapped to
tokens through the offset mapping, so no template's markers are ever parsed.
An example whose spans cannot be located exactly is refused with a reason.
"""
from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
from jinja2 import Template, TemplateError

from store.records import from_line
from store.toolcalls import function_of
from training.errors import TrainingError
from training.compiled import compiled
from training.spans import Locator, SpanError
from training.weights import apply_pkt, key_token_indices

IGNORE = -100
DB_SUFFIXES = {".db", ".sqlite", ".sqlite3"}


def load_records(data: str | None = None, db: str | None = None, review: str = "accepted") -> list[dict[str, Any]]:
    """Trajectories from a JSONL export (all of it), or a store's under a review filter (accepted by default)."""
    if data:
        path = Path(data)
        if not path.exists():
            raise TrainingError(f"dataset not found: {data}")
        if path.suffix in DB_SUFFIXES:
            return _store_records(str(path), review)
        return _jsonl_records(path)
    if db:
        if not Path(db).exists():
            raise TrainingError(f"store not found: {db}")
        return _store_records(db, review)
    raise TrainingError("no dataset: pass --data FILE or --db PATH")


def _jsonl_records(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open() as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(from_line(json.loads(line)))
            except json.JSONDecodeError as exc:
                raise TrainingError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
            except ValueError as exc:
                raise TrainingError(f"{path}:{number}: {exc}") from None
    return rows


def _store_records(path: str, review: str = "accepted") -> list[dict[str, Any]]:
    from store import Store, StoreError

    try:
        with Store.open(path, create=False) as store:
            return list(store.iter_records(status=review))
    except StoreError as exc:
        raise TrainingError(str(exc)) from None


def decision(record: Mapping[str, Any]) -> str | None:
    return (record.get("meta") or {}).get("decision")


def sft_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trajectories to learn from: everything but rejected or skipped ones."""
    return [r for r in records if decision(r) not in {"reject", "skip"}]


def template_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages as chat templates expect them: no None values, call arguments as dicts, ids every template takes."""
    out = []
    for message in messages:
        m = {k: v for k, v in message.items() if v is not None and k != "weight"}
        if m.get("tool_calls"):
            m["tool_calls"] = [_template_call(c) for c in m["tool_calls"]]
        if isinstance(m.get("tool_call_id"), str):
            m["tool_call_id"] = template_id(m["tool_call_id"])
        out.append(m)
    return out


def _template_call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function") or {})
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            function["arguments"] = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            pass  # rendered verbatim: a broken call is still what the model said
    out = {**call, "function": function}
    if isinstance(out.get("id"), str):
        out["id"] = template_id(out["id"])
    return out


_ID_ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 9


@lru_cache(maxsize=65536)
def template_id(raw: str) -> str:
    """The tool-call id as the template sees it: 9 alphanumeric characters, the same for the same id.

    Templates constrain ids (Mistral's raise unless an id is exactly 9
    alphanumeric characters), and every template accepts such an id, so ids are
    always adapted rather than retried on one template's error message (which
    would mean recognising that message). The mapping depends on the id alone,
    so a call and the tool answer that names it stay paired; ids that already
    fit are kept.
    """
    if len(raw) == ID_LENGTH and raw.isascii() and raw.isalnum():
        return raw
    number = int.from_bytes(hashlib.blake2b(raw.encode(), digest_size=8).digest(), "big")
    chars = []
    for _ in range(ID_LENGTH):
        number, digit = divmod(number, len(_ID_ALPHABET))
        chars.append(_ID_ALPHABET[digit])
    return "".join(chars)


def _with_empty_content(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool-call messages with ``content: ""`` where it was missing, for templates that read it unconditionally."""
    return [{**m, "content": ""} if m.get("tool_calls") and "content" not in m else m for m in messages]


def _with_string_arguments(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Call arguments back as JSON strings (the OpenAI shape), for templates that concatenate them as text."""
    def call(c: dict[str, Any]) -> dict[str, Any]:
        arguments = c["function"].get("arguments")
        if isinstance(arguments, str) or arguments is None:
            return c
        return {**c, "function": {**c["function"], "arguments": json.dumps(arguments, ensure_ascii=False)}}

    return [{**m, "tool_calls": [call(c) for c in m["tool_calls"]]} if m.get("tool_calls") else m for m in messages]


def _adaptations(messages: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """The messages, then the variants some templates need (missing content as "", arguments as text)."""
    yield messages
    empty = _with_empty_content(messages)
    if empty != messages:
        yield empty
    text = _with_string_arguments(messages)
    if text != messages:
        yield text
        if empty != messages:
            yield _with_string_arguments(empty)


# What a template's own code can raise while rendering one conversation.
RENDER_ERRORS = (TemplateError, TypeError, ValueError, KeyError, IndexError, AttributeError)


def template_tools(tools: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Tools in the wrapped OpenAI shape every template reads."""
    if not tools:
        return None
    return [{"type": "function", "function": dict(function_of(t))} for t in tools]


class Renderer:
    """A chat template compiled once (:mod:`training.compiled`) and rendered to strings."""

    def __init__(self, template: str, special_tokens: Mapping[str, Any] | None = None):
        self.template = template
        self._compiled = compiled(template)
        self._kwargs = dict(special_tokens or {})
        self.header = _header(self._compiled.prompt, self._kwargs)

    @classmethod
    def of(cls, tokenizer) -> "Renderer":
        """The tokenizer's own template, with its special tokens as template variables."""
        template = getattr(tokenizer, "chat_template", None)
        if isinstance(template, dict):
            template = template.get("tool_use") or template.get("default")
        if not template:
            name = getattr(tokenizer, "name_or_path", "") or "the tokenizer"
            raise TrainingError(f"{name} has no chat template; pass --chat-template chatml|llama3|plain|FILE")
        return cls(template, tokenizer.special_tokens_map)

    def forget(self) -> None:
        """Drop the memoised JSON; call before rendering a new conversation."""
        self._compiled.tojson.clear()

    @property
    def eos(self) -> str | None:
        return self._kwargs.get("eos_token")

    def render(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, add_generation_prompt: bool = False
    ) -> str:
        return self._compiled.template.render(
            messages=messages, tools=tools, add_generation_prompt=add_generation_prompt, **self._kwargs
        )

    def conversation(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> tuple[str, list[dict[str, Any]]]:
        """The whole conversation rendered, and the messages as rendered (adapted if the template needed it).

        Raises :class:`TemplateRefused` with the template's own message (its
        first complaint) when it refuses the conversation in every shape of
        :func:`_adaptations`.
        """
        self.forget()
        first: BaseException | None = None
        for variant in _adaptations(messages):
            try:
                return self.render(variant, tools), variant
            except RENDER_ERRORS as exc:
                first = first or exc
        raise TemplateRefused(_first_line(first)) from None

    def locator(self, text: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> Locator:
        """The span locator of one rendered conversation (:mod:`training.spans`)."""

        def render(part: list[dict[str, Any]], add_generation_prompt: bool) -> str:
            try:
                return self.render(part, tools, add_generation_prompt)
            except RENDER_ERRORS as exc:
                raise SpanError(f"the chat template refused part of it: {_first_line(exc)}") from None

        return Locator(text, messages, render, self.eos, self.header)

    def prompt(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None) -> str:
        """The text a model continues to produce the next assistant message."""
        self.forget()
        return self.render(template_messages(messages), template_tools(tools), add_generation_prompt=True)

    def completion(
        self,
        context: Sequence[Mapping[str, Any]],
        message: Mapping[str, Any],
        tools: Sequence[Mapping[str, Any]] | None,
    ) -> str:
        """The rendered text of one assistant message after its context (what follows :meth:`prompt`), to its end of turn.

        Located as training locates it; a :class:`TrainingError` with the
        reason when the template refuses it or its span cannot be located exactly.
        """
        wrapped = template_tools(tools)
        try:
            text, messages = self.conversation(template_messages([*context, message]), wrapped)
            span = self.locator(text, messages, wrapped).span(len(messages) - 1)
        except TemplateRefused as exc:
            raise TrainingError(f"chat template refused a step: {exc}") from None
        except SpanError as exc:
            raise TrainingError(f"a step's completion cannot be located exactly: {exc}") from None
        return text[span.start : span.end]


def _header(prompt: Template | None, variables: Mapping[str, Any]) -> str | None:
    """The constant generation prompt (:mod:`training.generation_prompt`) rendered; None when unproven or it raises."""
    if prompt is None:
        return None
    try:
        return prompt.render(**variables) or None
    except RENDER_ERRORS:
        return None


class TemplateRefused(Exception):
    """The chat template raised on a conversation; the message is the template's own."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class Example:
    """One tokenized trajectory: ``labels`` and ``weights`` are aligned with ``input_ids``.

    ``refused`` says why nothing of it is trained (its spans could not be
    located exactly, or the template refused it); ``text`` and ``offsets`` (the
    render and each token's characters) are what the preview shows.
    """

    input_ids: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    id: str = ""
    refused: str | None = None
    truncated: bool = False
    text: str = ""
    offsets: np.ndarray | None = None
    #: Trained (weight > 0) tokens cut off by ``max_length``.
    lost: int = 0

    @property
    def trainable(self) -> int:
        return int(np.count_nonzero(self.weights))

    def as_features(self) -> dict[str, list]:
        return {"input_ids": self.input_ids.tolist(), "labels": self.labels.tolist(), "weights": self.weights.tolist()}


@dataclass
class EncodeReport:
    """What :meth:`Encoder.encode_all` left out or cut: ``(id, reason)`` of each refusal, ids truncated, and how
    many trained tokens the truncation cut."""

    refused: list[tuple[str, str]] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    lost_tokens: int = 0

    @classmethod
    def of(cls, examples: Iterable[Example]) -> "EncodeReport":
        report = cls()
        for e in examples:
            if e.refused:
                report.refused.append((e.id, e.refused))
            if e.truncated:
                report.truncated.append(e.id)
                report.lost_tokens += e.lost
        return report

    def summary(self) -> str | None:
        """One line for the log, or None when nothing was refused or cut."""
        parts = []
        if self.refused:
            parts.append(f"{len(self.refused)} trajectory(ies) refused, e.g. {self.refused[0][1]}")
        if self.truncated:
            parts.append(f"{len(self.truncated)} truncated at max_length, losing {self.lost_tokens} trained tokens")
        return "; ".join(parts) or None


class Encoder:
    """Tokenizes trajectories with MAE and PKT weights.

    ``mae=False`` treats every assistant message as weight 1 (the plain-SFT
    ablation); ``w_max=1`` turns PKT off. After :meth:`encode_all`, ``report``
    lists the refused and truncated trajectories.
    """

    def __init__(self, tokenizer, max_length: int | None = None, w_max: float = 9.0, mae: bool = True):
        if not getattr(tokenizer, "is_fast", False):
            raise TrainingError("a fast tokenizer is needed (offset mappings)")
        self.tokenizer = tokenizer
        self._pieces = PieceTokenizer(tokenizer.backend_tokenizer)
        self.renderer = Renderer.of(tokenizer)
        self.max_length = max_length
        self.w_max = w_max
        self.mae = mae
        self.report = EncodeReport()

    def encode(self, record: Mapping[str, Any]) -> Example:
        rid = str(record.get("id", ""))
        tools = template_tools(record.get("tools"))
        try:
            text, messages = self.renderer.conversation(template_messages(record["messages"]), tools)
        except TemplateRefused as exc:
            empty = np.zeros(0, dtype=np.int64)
            return Example(empty, empty.copy(), np.zeros(0, dtype=np.float32), id=rid,
                           refused=f"chat template refused trajectory {rid}: {exc}")
        ids, offsets = self._pieces.encode(text)
        labels = np.full(len(ids), IGNORE, dtype=np.int64)
        weights = np.zeros(len(ids), dtype=np.float32)
        refused = None
        try:
            keys = self._weigh(record, text, messages, tools, ids, offsets, labels, weights)
        except SpanError as exc:
            refused = f"trajectory {rid}: {exc}"
            labels[:] = IGNORE
            weights[:] = 0
            keys = []
        apply_pkt(weights, keys, self.w_max)
        truncated = bool(self.max_length and len(ids) > self.max_length)
        lost = int(np.count_nonzero(weights[self.max_length:])) if truncated else 0
        if truncated:
            ids, labels, weights = ids[: self.max_length], labels[: self.max_length], weights[: self.max_length]
            offsets = offsets[: self.max_length]
        return Example(ids, labels, weights, id=rid, refused=refused, truncated=truncated, text=text, offsets=offsets,
                       lost=lost)

    def _weigh(
        self,
        record: Mapping[str, Any],
        text: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        ids: np.ndarray,
        offsets: np.ndarray,
        labels: np.ndarray,
        weights: np.ndarray,
    ) -> list[int]:
        """Label and weigh every assistant message's tokens in place; the PKT key tokens found on the way.

        A message whose span cannot be located exactly raises :class:`SpanError`
        unless its weight is 0 (then it only stays unlabelled).
        """
        starts, ends = offsets[:, 0], offsets[:, 1]
        names = [t["function"]["name"] for t in tools or []]
        locator = None
        keys: list[int] = []
        for index, message in enumerate(record["messages"]):
            if message.get("role") != "assistant":
                continue
            weight = 1.0 if not self.mae else float(message.get("weight", 1))
            try:
                locator = locator or self.renderer.locator(text, messages, tools)
                span = locator.span(index)
                first, last = token_range(starts, ends, span.start, span.end)
            except SpanError as exc:
                if weight > 0:
                    raise SpanError(f"assistant message {index} cannot be located exactly: {exc}") from None
                continue
            labels[first:last] = ids[first:last]
            weights[first:last] = weight
            if weight > 0 and names:
                keys.extend(self._name_keys(text, starts, message, span.start, span.end, names))
        return keys

    @staticmethod
    def _name_keys(
        text: str, starts: np.ndarray, message: Mapping[str, Any], begin: int, end: int, names: list[str]
    ) -> list[int]:
        """Key tokens of the tool names of one message, found in order inside its span.

        The message's own text is skipped first, so a name it mentions in
        prose is not taken for the call.
        """
        content = message.get("content")
        pos = begin
        if isinstance(content, str) and content:
            found = text.find(content, begin, end)
            if found != -1:
                pos = found + len(content)
        keys: list[int] = []
        for call in message.get("tool_calls") or []:
            name = (call.get("function") or {}).get("name")
            if not name:
                continue
            at = text.find(name, pos, end)
            if at == -1:
                continue
            keys.extend(key_token_indices(starts, at, name, names, len(text)))
            pos = at + len(name)
        return keys

    def encode_all(self, records: Sequence[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], list[Example]]:
        """The trajectories with at least one trainable token, and their examples; an error when none has any.

        Refused and truncated trajectories are listed in ``self.report``.
        """
        if not records:
            raise TrainingError("the dataset is empty")
        examples = [self.encode(r) for r in records]
        self.report = EncodeReport.of(examples)
        pairs = [(r, e) for r, e in zip(records, examples) if e.trainable]
        if not pairs:
            raise TrainingError(self._no_trainable_token(records))
        kept, trainable = zip(*pairs)
        return list(kept), list(trainable)

    def _no_trainable_token(self, records: Sequence[Mapping[str, Any]]) -> str:
        """Why nothing is trainable: all refused, all masked, or every answer starts past ``max_length``."""
        if len(self.report.refused) == len(records):
            return f"every trajectory was refused ({len(records)}); the first: {self.report.refused[0][1]}"
        limit, self.max_length = self.max_length, None
        try:
            lengths = [len(e.input_ids) for r in records if (e := self.encode(r)).trainable]
        finally:
            self.max_length = limit
        if lengths:
            return (f"no trainable token within --max-length {limit}: the tools and prompt fill it before the first "
                    f"assistant message (the shortest trainable trajectory has {min(lengths)} tokens); "
                    "raise --max-length")
        return "no trainable token: every assistant message is masked"


class PieceTokenizer:
    """The ids and offsets of ``tokenizer(text)``, tokenizing each piece between added tokens once.

    A tokenizer splits its input at its added tokens before anything else and
    encodes the text between them independently, so a piece seen before (the
    system prompt and tool schemas every trajectory of a toolset repeats) need
    not be encoded again. Each piece is encoded after the added token before it,
    then that token dropped, so pre-tokenizers that treat the start of the input
    specially (Metaspace "first") see it where it really is. Added tokens that
    strip whitespace or are normalized would move those splits: with any of
    them the whole text is encoded, as before.
    """

    LIMIT = 100_000

    def __init__(self, backend):
        self._backend = backend
        added = backend.get_added_tokens_decoder()
        self._ids = {t.content: i for i, t in added.items()}
        plain = all(not (t.lstrip or t.rstrip or t.single_word or t.normalized) for t in added.values())
        longest_first = sorted(self._ids, key=len, reverse=True)
        self._split = re.compile("|".join(map(re.escape, longest_first))) if plain and self._ids else None
        self._tokens = {
            content: (np.array([i], dtype=np.int64), np.array([[0, len(content)]], dtype=np.int64))
            for content, i in self._ids.items()
        }
        self._cache: dict[tuple[str | None, str], tuple[np.ndarray, np.ndarray]] = {}

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        if self._split is None:
            return self._whole(text)
        parts, starts, pos, before = [], [], 0, None
        for match in self._split.finditer(text):
            start, token = match.start(), match.group()
            if start > pos:
                parts.append(self._piece(text[pos:start], before))
                starts.append(pos)
            parts.append(self._tokens[token])
            starts.append(start)
            before, pos = token, match.end()
        if pos < len(text):
            parts.append(self._piece(text[pos:], before))
            starts.append(pos)
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 2), dtype=np.int64)
        # Each part's offsets are relative to where it starts: shift them all at once.
        shifts = np.repeat(np.asarray(starts, dtype=np.int64), [len(ids) for ids, _ in parts])
        return np.concatenate([ids for ids, _ in parts]), np.concatenate([o for _, o in parts]) + shifts[:, None]

    def _whole(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        enc = self._backend.encode(text, add_special_tokens=False)
        return np.asarray(enc.ids, dtype=np.int64), np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)

    def _piece(self, piece: str, before: str | None) -> tuple[np.ndarray, np.ndarray]:
        """The ids of ``piece`` after the added token ``before``, and their offsets from the piece's start."""
        key = (before, piece)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) >= self.LIMIT:
                self._cache.clear()
            piece_ids, piece_offsets = self._whole((before or "") + piece)
            if before is not None:
                if not len(piece_ids) or piece_ids[0] != self._ids[before]:
                    raise TrainingError(f"the tokenizer does not split at its added token {before!r}")
                piece_ids, piece_offsets = piece_ids[1:], piece_offsets[1:] - len(before)
            hit = self._cache[key] = (piece_ids, piece_offsets)
        return hit


def token_range(starts: np.ndarray, ends: np.ndarray, begin: int, end: int) -> tuple[int, int]:
    """The tokens lying inside characters ``[begin, end)``; a token across either edge is a :class:`SpanError`.

    Such a token would carry prompt text into the loss (or leave part of the
    message out), so it is never rounded either way.
    """
    first = int(np.searchsorted(starts, begin, side="left"))
    last = int(np.searchsorted(ends, end, side="right"))
    if first > 0 and ends[first - 1] > begin:
        raise SpanError(f"a token straddles where the message starts: {starts[first - 1]}..{ends[first - 1]}")
    if last < len(starts) and starts[last] < end:
        raise SpanError(f"a token straddles where the message ends: {starts[last]}..{ends[last]}")
    return first, last


def rendered_texts(records: Iterable[Mapping[str, Any]], renderer: Renderer, limit: int = 2000) -> Iterator[str]:
    """Whole rendered conversations, e.g. to train the tiny tokenizer on."""
    for index, record in enumerate(records):
        if index >= limit:
            return
        renderer.forget()
        yield renderer.render(template_messages(record["messages"]), template_tools(record.get("tools")))


def iter_steps(record: Mapping[str, Any]) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
    """Each trainable assistant tool-call step of a trajectory as ``(context, message)``."""
    messages = record["messages"]
    for index, message in enumerate(messages):
        if message.get("role") == "assistant" and message.get("tool_calls") and message.get("weight", 1):
            yield list(messages[:index]), dict(message)
