"""The store's records as small dataclasses.

Messages convert to and from the OpenAI chat shape, which is also the JSONL
export's shape, so the store, the exporters and the trainer speak one format.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

from . import safe_json
from .toolcalls import ToolCall, function_of, parse_openai_call

ROLES = ("system", "user", "assistant", "tool")
STATUSES = ("running", "complete", "failed", "imported")
DECISIONS = ("accept", "reject", "skip")
RUN_STATUSES = ("queued", "running", "completed", "failed", "cancelled")


@dataclass
class Tool:
    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    @classmethod
    def from_openai(cls, tool: dict[str, Any]) -> "Tool":
        fn = function_of(tool)
        return cls(
            name=fn["name"],
            description=fn.get("description") or "",
            parameters=fn.get("parameters") or {"type": "object", "properties": {}},
        )


@dataclass
class Toolset:
    name: str
    tools: list[Tool] = field(default_factory=list)
    description: str = ""
    source: str = ""
    spec: dict[str, Any] | None = None

    def openai_tools(self) -> list[dict[str, Any]]:
        return [t.to_openai() for t in self.tools]


@dataclass
class Message:
    role: str
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    raw: str | None = None
    weight: int | None = None
    weight_source: str = "auto"
    index: int | None = None

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI chat message, with ``weight`` on assistant messages."""
        return openai_message(self.role, self.content, self.tool_calls, self.tool_call_id, self.name, self.raw,
                              self.weight, self.weight_source)

    @classmethod
    def from_openai(cls, message: dict[str, Any]) -> "Message":
        role = message.get("role")
        if role not in ROLES:
            raise ValueError(f"message role must be one of {', '.join(ROLES)}, got {role!r}")
        weight = message.get("weight")
        if role == "assistant":
            weight = 1 if weight is None else weight
            if weight not in (0, 1):
                raise ValueError(f"assistant 'weight' must be 0 or 1, got {weight!r}")
        return cls(
            role=role,
            content=message.get("content"),
            tool_calls=message.get("tool_calls") or None,
            tool_call_id=message.get("tool_call_id"),
            name=message.get("name"),
            raw=message.get("raw"),
            weight=weight if role == "assistant" else None,
            weight_source="human" if message.get("weight_source") == "human" else "auto",
        )

    def calls(self) -> list[ToolCall]:
        """This message's tool calls, parsed; a call that does not parse raises CallParseError."""
        return [parse_openai_call(c) for c in self.tool_calls or []]


def openai_message(role: str, content: str | None, tool_calls: list[dict[str, Any]] | None = None,
                   tool_call_id: str | None = None, name: str | None = None, raw: str | None = None,
                   weight: int | None = None, weight_source: str = "auto", index: int | None = None
                   ) -> dict[str, Any]:
    """``Message.to_openai`` from the fields themselves (same order as ``Message``), so an export can
    build the dicts straight from rows without a ``Message`` in between; ``index`` is not part of it."""
    out: dict[str, Any] = {"role": role, "content": content}
    if tool_calls:
        out["tool_calls"] = tool_calls
    if tool_call_id is not None:
        out["tool_call_id"] = tool_call_id
    if name is not None:
        out["name"] = name
    if role == "assistant":
        out["weight"] = 1 if weight is None else weight
        if weight_source == "human":
            out["weight_source"] = "human"
    if raw is not None:
        out["raw"] = raw
    return out


#: The automatic checks that put auto tags; re-running one replaces only its own (``Store.replace_auto_tags``).
AUTO_ORIGINS = ("flagger", "judge", "dedup")


def auto_origin(tag: "Tag") -> str | None:
    """The check an auto tag came from (the flagger unless it says); None for a human's tag."""
    return (tag.origin or "flagger") if tag.source == "auto" else None


@dataclass
class Tag:
    code: str
    source: str = "human"
    message_index: int | None = None
    annotator: str | None = None
    note: str | None = None
    #: The automatic check that put an auto tag: one of ``AUTO_ORIGINS`` (None for a human's).
    origin: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message_index, "code": self.code, "source": self.source}
        if self.source == "auto" and self.origin not in (None, "flagger"):
            out["origin"] = self.origin
        if self.note:
            out["note"] = self.note
        return out


@dataclass
class Correction:
    trajectory_id: str
    message_index: int
    tool_calls: list[dict[str, Any]]
    annotator: str | None = None
    note: str | None = None
    created_at: str | None = None
    id: int | None = None

    def to_json(self, original: list[dict[str, Any]] | None) -> dict[str, Any]:
        """The record's ``meta.corrections`` entry; ``original``: the corrected message's calls as stored."""
        return {"message": self.message_index, "original": original, "tool_calls": self.tool_calls,
                "annotator": self.annotator, "note": self.note, "created_at": self.created_at}


@dataclass
class Note:
    """An annotator's free-text note on a trajectory, or on one of its messages (``message_index``)."""

    trajectory_id: str
    text: str
    message_index: int | None = None
    annotator: str | None = None
    created_at: str | None = None
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message_index, "text": self.text, "annotator": self.annotator,
                "created_at": self.created_at}


@dataclass
class Trajectory:
    id: str
    toolset: str | None
    instruction: str
    status: str = "running"
    source: str = "simulated"
    backend: str | None = None
    model: str | None = None
    difficulty: str | None = None
    reason: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    tags: list[Tag] = field(default_factory=list)
    decision: str | None = None
    #: The latest correction of each corrected message, by message index.
    corrections: list[Correction] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


@dataclass
class GoldItem:
    """One single-step evaluation item: a context and the acceptable calls."""

    id: str
    toolset: str | None
    tools: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    calls: list[ToolCall]
    source: str = "imported"


@dataclass
class Run:
    id: str
    kind: str
    algorithm: str
    base_model: str
    status: str = "queued"
    config: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] | None = None
    output_dir: str | None = None
    pid: int | None = None
    error: str | None = None
    summary: dict[str, Any] | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    #: The run this one is part of (an iTool loop's rounds name the loop).
    parent_id: str | None = None


#: A preference pair's review: ``None`` is pending; a rejected pair is not trained on.
PAIR_DECISIONS = ("accept", "reject")


@dataclass
class StepPair:
    """A step-level preference: after the shared ``prefix`` (the messages before the step), ``chosen`` over
    ``rejected`` (each one assistant message). ``source``: ``search`` (the policy's own alternatives, iTool's
    loop), ``correction`` or ``decision`` (made by annotators)."""

    tools: list[dict[str, Any]]
    prefix: list[dict[str, Any]]
    chosen: dict[str, Any]
    rejected: dict[str, Any]
    round: int = 0
    run_id: str | None = None
    trajectory_id: str | None = None
    chosen_reward: float | None = None
    rejected_reward: float | None = None
    #: The error kind of the rejected step by the judge (``store.toolcalls``), when it has one.
    rejected_error: str | None = None
    source: str = "search"
    decision: str | None = None
    annotator: str | None = None
    id: int | None = None

    @property
    def message_index(self) -> int:
        return len(self.prefix)


@dataclass(frozen=True)
class Score:
    """One number a model gave a trajectory (``kind``: ``perplexity``, ``judge``), with the model and run."""

    trajectory_id: str
    kind: str
    value: float
    model: str | None = None
    run_id: str | None = None
    created_at: str | None = None

def dumps(value: Any) -> str | None:
    """Compact JSON for a column; None stays NULL."""
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def check(value: Any, allowed: Sequence[Any], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(map(str, allowed))}, got {value!r}")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def to_record(trajectory: Trajectory, tools: list[dict[str, Any]],
              messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A trajectory as one JSONL export line (before serialisation); ``messages``: already in OpenAI shape.

    ``meta.corrections`` and ``meta.notes`` appear only when there are some, so other lines keep their
    bytes; a corrected message is never trained as it stands (weight 0): its fix trains instead, in the
    example ``correction_examples`` derives.
    """
    if messages is None:
        messages = [m.to_openai() for m in trajectory.messages]
    meta: dict[str, Any] = {
        "toolset": trajectory.toolset,
        "instruction": trajectory.instruction,
        "source": trajectory.source,
        "status": trajectory.status,
        "decision": trajectory.decision,
        "backend": trajectory.backend,
        "model": trajectory.model,
        "difficulty": trajectory.difficulty,
        "reason": trajectory.reason,
        "created_at": trajectory.created_at,
        "tags": [t.to_json() for t in trajectory.tags],
    }
    corrections = [c for c in trajectory.corrections
                   if 0 <= c.message_index < len(messages) and messages[c.message_index]["role"] == "assistant"]
    if corrections:
        messages = list(messages)
        meta["corrections"] = []
        for c in corrections:
            original = messages[c.message_index]
            meta["corrections"].append(c.to_json(original.get("tool_calls")))
            messages[c.message_index] = {**original, "weight": 0}
    if trajectory.notes:
        meta["notes"] = [n.to_json() for n in trajectory.notes]
    if trajectory.meta:
        meta["extra"] = trajectory.meta
    return {"id": trajectory.id, "messages": messages, "tools": tools, "meta": meta}


#: Fields a JSONL line holds as JSON text rather than as nested JSON. Arrow (``datasets``, Parquet, the
#: Hub's viewer) gives a column one type for the whole file, inferred from its first block: tools of
#: different shapes, tags present on some lines, a ``decision`` null until some line has one, would each
#: break it. As text the line's schema is the same for any mix (xLAM publishes its ``tools`` the same
#: way), and TRL's SFTTrainer decodes a ``tools`` string itself.
TEXT_FIELDS = ("tools", "meta")


def from_line(record: dict[str, Any]) -> dict[str, Any]:
    """A record read from a JSONL line, with its ``TEXT_FIELDS`` decoded (lines written as nested JSON, by
    other tools or earlier versions, pass as they are); ValueError names a field that is not JSON."""
    decoded = dict(record)
    for key in TEXT_FIELDS:
        if isinstance(record.get(key), str):
            try:
                decoded[key] = safe_json.loads(record[key])
            except json.JSONDecodeError as exc:
                raise ValueError(f"'{key}' is a string but not JSON (column {exc.colno}: {exc.msg})") from None
    return decoded


def is_derived(record: dict[str, Any]) -> bool:
    """True for an example ``correction_examples`` made (it is not a trajectory of its own)."""
    meta = record.get("meta")
    return isinstance(meta, dict) and meta.get("derived_from") is not None


def corrected_message(original: dict[str, Any], tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message as the annotator fixed it: its own content with the corrected calls, trained."""
    return {"role": "assistant", "content": original.get("content"), "tool_calls": tool_calls, "weight": 1}


def correction_examples(record: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One training example per correction of ``record``: the conversation up to the corrected message, then
    the fix at weight 1.

    Only the fix trains: the assistant messages before it are at weight 0, since they train in ``record``
    itself. The id is ``{id}#correction-{i}``; ``meta.derived_from`` names the record, so importers skip the
    line and preference builders do not take it for a trajectory, and ``meta.decision`` is the record's, so
    whatever filters trajectories by decision filters their examples alike.
    """
    meta = record["meta"]
    for correction in meta.get("corrections") or []:
        index = correction["message"]
        context = [_unweighted(m) for m in record["messages"][:index]]
        yield {
            "id": f"{record['id']}#correction-{index}",
            "messages": [*context, corrected_message(record["messages"][index], correction["tool_calls"])],
            "tools": record["tools"],
            "meta": {"derived_from": record["id"], "correction": index, "source": "correction",
                     "toolset": meta.get("toolset"), "instruction": meta.get("instruction"),
                     "decision": meta.get("decision"), "difficulty": meta.get("difficulty"),
                     "annotator": correction.get("annotator"), "note": correction.get("note")},
        }


def _unweighted(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` contributing no loss: an assistant message at weight 0 (who set its weight is moot here)."""
    if message["role"] != "assistant":
        return message
    return {k: v for k, v in message.items() if k != "weight_source"} | {"weight": 0}
