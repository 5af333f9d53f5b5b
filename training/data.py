"""Read curated trajectories and turn them into token ids, labels and loss weights.

Each trajectory is rendered once with the tokenizer's own chat template and
tokenized once with offsets. Where each assistant message starts and ends is
found by rendering message prefixes as strings (cheap next to tokenizing), and
char spans are mapped to tokens through the offset mapping, so no template's
markers are ever parsed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from store.toolcalls import function_of
from training.errors import TrainingError
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
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise TrainingError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
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
    """Messages as chat templates expect them: no None values, call arguments as dicts."""
    out = []
    for message in messages:
        m = {k: v for k, v in message.items() if v is not None and k != "weight"}
        if m.get("tool_calls"):
            m["tool_calls"] = [_template_call(c) for c in m["tool_calls"]]
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
    return {**call, "function": function}


def template_tools(tools: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Tools in the wrapped OpenAI shape every template reads."""
    if not tools:
        return None
    return [{"type": "function", "function": dict(function_of(t))} for t in tools]


class Renderer:
    """A chat template compiled once and rendered to strings."""

    def __init__(self, template: str, special_tokens: Mapping[str, Any] | None = None):
        from transformers.utils.chat_template_utils import _compile_jinja_template

        # The template's own environment (same sandbox, filters and globals) with a
        # memoised ``tojson``: every prefix render re-serialises the same tool
        # schemas, which would otherwise dominate the cost of preparing data.
        environment = _compile_jinja_template(template).environment.overlay()
        environment.filters = dict(environment.filters)
        self._tojson = _MemoJson(environment.filters["tojson"])
        environment.filters["tojson"] = self._tojson
        self.template = template
        self._compiled = environment.from_string(template)
        self._kwargs = dict(special_tokens or {})

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
        self._tojson.clear()

    def render(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, add_generation_prompt: bool = False
    ) -> str:
        return self._compiled.render(
            messages=messages, tools=tools, add_generation_prompt=add_generation_prompt, **self._kwargs
        )

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
        """The rendered text of one assistant message after its context (what follows :meth:`prompt`)."""
        prompt = self.prompt(context, tools)
        full = self.render(template_messages([*context, message]), template_tools(tools))
        return full[_shared_prefix(prompt, full) :]


class _MemoJson:
    """``tojson`` that serialises each object once while a conversation is rendered.

    Entries keep their object alive, so an ``id`` cannot be reused while its
    entry exists; templates run in an immutable sandbox, so objects do not change.
    """

    def __init__(self, dumps: Callable[..., str]):
        self._dumps = dumps
        self._cache: dict[tuple, tuple[Any, str]] = {}

    def __call__(self, value: Any, *args: Any, **kwargs: Any) -> str:
        key = (id(value), args, tuple(sorted(kwargs.items())))
        hit = self._cache.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
        text = self._dumps(value, *args, **kwargs)
        self._cache[key] = (value, text)
        return text

    def clear(self) -> None:
        self._cache.clear()


def _shared_prefix(prefix: str, text: str) -> int:
    """Length of the common prefix; the whole prefix for templates that render incrementally."""
    if text.startswith(prefix):
        return len(prefix)
    lo, hi = 0, min(len(prefix), len(text))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text[:mid] == prefix[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass
class Example:
    """One tokenized trajectory: ``labels`` and ``weights`` are aligned with ``input_ids``."""

    input_ids: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    id: str = ""

    @property
    def trainable(self) -> int:
        return int(np.count_nonzero(self.weights))

    def as_features(self) -> dict[str, list]:
        return {"input_ids": self.input_ids.tolist(), "labels": self.labels.tolist(), "weights": self.weights.tolist()}


class Encoder:
    """Tokenizes trajectories with MAE and PKT weights.

    ``mae=False`` treats every assistant message as weight 1 (the plain-SFT
    ablation); ``w_max=1`` turns PKT off.
    """

    def __init__(self, tokenizer, max_length: int | None = None, w_max: float = 9.0, mae: bool = True):
        if not getattr(tokenizer, "is_fast", False):
            raise TrainingError("a fast tokenizer is needed (offset mappings)")
        self.tokenizer = tokenizer
        # The Rust tokenizer itself: the same ids as ``tokenizer(text)``, without the Python wrapping.
        self._backend = tokenizer.backend_tokenizer
        self.renderer = Renderer.of(tokenizer)
        self.max_length = max_length
        self.w_max = w_max
        self.mae = mae

    def encode(self, record: Mapping[str, Any]) -> Example:
        self.renderer.forget()
        messages = template_messages(record["messages"])
        tools = template_tools(record.get("tools"))
        names = [t["function"]["name"] for t in tools or []]
        text = self.renderer.render(messages, tools)
        enc = self._backend.encode(text, add_special_tokens=False)
        ids = np.asarray(enc.ids, dtype=np.int64)
        offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        starts, ends = offsets[:, 0], offsets[:, 1]
        labels = np.full(len(ids), IGNORE, dtype=np.int64)
        weights = np.zeros(len(ids), dtype=np.float32)
        keys: list[int] = []
        for index, message in enumerate(record["messages"]):
            if message.get("role") != "assistant":
                continue
            begin = _shared_prefix(self.renderer.render(messages[:index], tools, add_generation_prompt=True), text)
            end = _shared_prefix(self.renderer.render(messages[: index + 1], tools), text)
            # from the token holding the first character (it may straddle the prompt) to the last starting inside
            first = max(int(np.searchsorted(starts, begin, side="right")) - 1, 0)
            if ends[first] <= begin:
                first += 1
            last = int(np.searchsorted(starts, end, side="left"))
            if first >= last:
                continue
            labels[first:last] = ids[first:last]
            weight = 1.0 if not self.mae else float(message.get("weight", 1))
            weights[first:last] = weight
            if weight > 0 and names:
                keys.extend(self._name_keys(text, starts, message, begin, end, names))
        apply_pkt(weights, keys, self.w_max)
        if self.max_length and len(ids) > self.max_length:
            ids, labels, weights = ids[: self.max_length], labels[: self.max_length], weights[: self.max_length]
        return Example(ids, labels, weights, id=str(record.get("id", "")))

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
        """The trajectories with at least one trainable token, and their examples; an error when none has any."""
        if not records:
            raise TrainingError("the dataset is empty")
        pairs = [(r, e) for r in records if (e := self.encode(r)).trainable]
        if not pairs:
            raise TrainingError(self._no_trainable_token(records))
        kept, examples = zip(*pairs)
        return list(kept), list(examples)

    def _no_trainable_token(self, records: Sequence[Mapping[str, Any]]) -> str:
        """Why nothing is trainable: all masked, or every trajectory's answers start past ``max_length``."""
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
