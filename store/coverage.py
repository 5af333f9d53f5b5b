"""The coverage report: what the data exercises of each toolset, and what it leaves out.

Per toolset and per tool: trajectories, calls, distinct argument combinations (canonical JSON of the
arguments), the schema's parameters no call ever passed, and the error codes on the calls (the effective
tags of the assistant message that made the call, auto and human apart); per toolset also the current
decisions, the instructions' length and vocabulary spread, and how many trajectories carry an effective
``duplicate`` tag (``curator dedup``).

One pass over the assistant messages that hold tool calls (their JSON decoded in Python), one over the
trajectories (toolset, instruction, decision) and one over the effective tags: a few seconds at 100,000
trajectories, about three times what merely decoding every call takes (``python -m bench.report``).
"""
from __future__ import annotations

import json
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping

from .taxonomy import DUPLICATE
from .db import Store
from .errors import InputError

#: The current decisions a report counts, ``pending`` being none yet.
DECISIONS = ("accept", "reject", "skip", "disputed", "pending")
SOURCES = ("auto", "human")
#: A word of an instruction (lower-cased first): what lengths in words and the vocabulary count.
WORD = re.compile(r"\w+")
#: A tool is under-covered when it has fewer calls than this share of the median tool's (or a parameter no
#: call passed): what ``curator simulate --fill-gaps`` aims at.
UNDER_CALLED = 0.5
#: The name the calls to tools a toolset's schema lacks are reported under.
NOT_IN_SCHEMA = "(not in schema)"


@dataclass
class ToolCoverage:
    """One tool of a toolset (``known``: in its schema; a name the data calls that the schema lacks is not)."""

    tool: str
    known: bool
    parameters: tuple[str, ...] = ()
    trajectories: int = 0
    calls: int = 0
    distinct_arguments: int = 0
    exercised: tuple[str, ...] = ()
    #: Calls whose arguments are not a JSON object (no argument combination, no parameter seen).
    unreadable_arguments: int = 0
    #: code → {"auto": n, "human": n}: the calling messages that carry the code.
    errors: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Of the calls to names not in the schema (``ToolsetCoverage.not_in_schema``): each name and its calls.
    called_as: dict[str, int] = field(default_factory=dict)

    @property
    def never_exercised(self) -> tuple[str, ...]:
        """The schema's parameters no call passed, in schema order."""
        return tuple(p for p in self.parameters if p not in self.exercised)

    def to_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "known": self.known, "trajectories": self.trajectories, "calls": self.calls,
                "distinct_arguments": self.distinct_arguments, "unreadable_arguments": self.unreadable_arguments,
                "parameters": list(self.parameters),
                "exercised": list(self.exercised), "never_exercised": list(self.never_exercised),
                "errors": self.errors, **({"called_as": self.called_as} if self.called_as else {})}


@dataclass(frozen=True)
class Spread:
    """Minimum, median, 90th percentile (inclusive method, as ``statistics.quantiles``) and maximum."""

    min: float
    median: float
    p90: float
    max: float

    @classmethod
    def of(cls, values: list[int]) -> "Spread | None":
        if not values:
            return None
        p90 = values[0] if len(values) == 1 else statistics.quantiles(values, n=10, method="inclusive")[-1]
        return cls(min(values), statistics.median(values), p90, max(values))


@dataclass(frozen=True)
class InstructionStats:
    """The instructions' length in characters and in words, and how varied their words are: distinct words,
    type-token ratio (distinct / all words) and distinct-2 (distinct / all pairs of neighbouring words)."""

    count: int
    chars: Spread | None
    words: Spread | None
    distinct_words: int
    type_token_ratio: float | None
    distinct_2: float | None

    def to_dict(self) -> dict[str, Any]:
        spread = {k: (vars(v) if v else None) for k, v in (("chars", self.chars), ("words", self.words))}
        return {"count": self.count, **spread, "distinct_words": self.distinct_words,
                "type_token_ratio": self.type_token_ratio, "distinct_2": self.distinct_2}


@dataclass
class ToolsetCoverage:
    """One toolset's part of the report (``toolset`` None: trajectories that name no toolset)."""

    toolset: str | None
    trajectories: int
    tools: list[ToolCoverage]
    decisions: dict[str, int]
    instructions: InstructionStats
    #: The calls to names the toolset's stored schema does not have, together (None: there were none).
    not_in_schema: ToolCoverage | None = None
    #: Calls without a tool name (counted in ``calls``, under no tool).
    unnamed_calls: int = 0
    #: Trajectories with an effective ``duplicate`` tag.
    duplicates: int = 0

    @property
    def known_tools(self) -> list[ToolCoverage]:
        return [t for t in self.tools if t.known]

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.all_tools) + self.unnamed_calls

    @property
    def all_tools(self) -> list[ToolCoverage]:
        """The tools, then the calls to names not in the schema."""
        return self.tools + ([self.not_in_schema] if self.not_in_schema else [])

    @property
    def tools_called(self) -> int:
        return sum(1 for t in self.known_tools if t.calls)

    @property
    def parameters(self) -> int:
        return sum(len(t.parameters) for t in self.known_tools)

    @property
    def parameters_exercised(self) -> int:
        return sum(len(t.exercised) for t in self.known_tools)

    @property
    def parameter_share(self) -> float | None:
        """The share of the schema's parameters some call passed (None: the schema has none)."""
        return self.parameters_exercised / self.parameters if self.parameters else None

    def gaps(self) -> dict[str, list[str]]:
        """The under-covered tools, least called first, each with its parameters never exercised: a tool with
        such a parameter, or with fewer calls than ``UNDER_CALLED`` of the median tool's."""
        tools = self.known_tools
        if not tools:
            return {}
        floor = UNDER_CALLED * statistics.median(t.calls for t in tools)
        under = [t for t in tools if t.never_exercised or t.calls < floor or not t.calls]
        return {t.tool: list(t.never_exercised) for t in sorted(under, key=lambda t: t.calls)}

    def to_dict(self) -> dict[str, Any]:
        out = {"toolset": self.toolset, "trajectories": self.trajectories, "calls": self.calls,
               "unnamed_calls": self.unnamed_calls, "tools_called": self.tools_called,
               "tools_in_schema": len(self.known_tools), "parameters": self.parameters,
               "parameters_exercised": self.parameters_exercised, "parameter_share": self.parameter_share,
               "decisions": self.decisions, "instructions": self.instructions.to_dict(),
               "tools": [t.to_dict() for t in self.tools],
               "not_in_schema": self.not_in_schema.to_dict() if self.not_in_schema else None,
               "duplicates": self.duplicates}
        return out


@dataclass
class CoverageReport:
    toolsets: list[ToolsetCoverage]

    def toolset(self, name: str | None) -> ToolsetCoverage | None:
        return next((t for t in self.toolsets if t.toolset == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"toolsets": [t.to_dict() for t in self.toolsets]}


def coverage(store: Store, toolset: str | None = None) -> CoverageReport:
    """The report over every toolset of the store (stored ones without trajectories too, and the trajectories
    that name none), or over ``toolset`` alone; an unknown name is an ``InputError`` naming the known ones."""
    owners, decisions, texts = _trajectories(store, toolset)
    counts = Counter(owners.values())
    if toolset is not None:
        if toolset not in counts and store.toolset(toolset) is None:
            known = ", ".join(sorted(set(store.toolset_names()) | {n for n in counts if n is not None}))
            raise InputError("toolset", f"no toolset named {toolset!r} (known: {known or 'none'})")
        names = [toolset]
    else:
        names = sorted(set(store.toolset_names()) | set(counts), key=lambda n: (n is None, n or ""))
    calls = {name: _Calls.of(store, name) for name in names}
    _scan_calls(store, owners, calls, _tags_by_message(store, toolset))
    duplicates = _duplicates(store, toolset)
    report = []
    for name in names:
        found = calls[name]
        report.append(ToolsetCoverage(
            toolset=name, trajectories=counts.get(name, 0), tools=[t.finish() for t in found.tools.values()],
            decisions={d: decisions[name][d] for d in DECISIONS}, instructions=_instruction_stats(texts[name]),
            not_in_schema=found.other.finish() if found.other else None, unnamed_calls=found.unnamed,
            duplicates=duplicates.get(name, 0),
        ))
    return CoverageReport(report)


def toolset_coverage(store: Store, toolset: str) -> ToolsetCoverage:
    """``coverage(store, toolset)``'s one toolset."""
    return coverage(store, toolset).toolsets[0]


# -- the pass over the calls ------------------------------------------------------------------------------
class _Tally:
    """What the pass gathers for one tool, made into a ``ToolCoverage`` by ``finish``."""

    def __init__(self, tool: str, parameters: tuple[str, ...] | None):
        self.tool, self.parameters = tool, parameters
        self.trajectories: set[str] = set()
        self.calls = 0
        self.arguments: set[str] = set()
        self.unreadable = 0
        self.seen: set[str] = set()
        self.called_as: Counter[str] = Counter()
        self.errors: dict[str, dict[str, int]] = {}

    def finish(self) -> ToolCoverage:
        parameters = self.parameters or ()
        exercised = tuple(p for p in parameters if p in self.seen)
        errors = {code: {s: n.get(s, 0) for s in SOURCES} for code, n in sorted(self.errors.items())}
        return ToolCoverage(self.tool, self.parameters is not None, parameters, len(self.trajectories), self.calls,
                            len(self.arguments), exercised, self.unreadable, errors,
                            dict(self.called_as.most_common()))


class _Calls:
    """One toolset's tallies: a tool of its schema each; calls to other names in one ``other`` tally when the
    toolset has a stored schema, else a tally per name; and the calls without a name."""

    def __init__(self, tools: dict[str, _Tally], schema: bool):
        self.tools, self.schema = tools, schema
        self.other: _Tally | None = None
        self.unnamed = 0

    @classmethod
    def of(cls, store: Store, name: str | None) -> "_Calls":
        found = store.toolset(name) if name is not None else None
        if found is None:
            return cls({}, schema=False)
        return cls({t.name: _Tally(t.name, tuple((t.parameters or {}).get("properties") or {}))
                    for t in found.tools}, schema=True)

    def tally(self, tool: str) -> _Tally:
        found = self.tools.get(tool)
        if found is not None:
            return found
        if not self.schema:
            found = self.tools[tool] = _Tally(tool, None)
            return found
        if self.other is None:
            self.other = _Tally(NOT_IN_SCHEMA, None)
        self.other.called_as[tool] += 1
        return self.other


def _where(toolset: str | None) -> tuple[str, tuple[Any, ...]]:
    """The condition on the joined ``trajectories t`` that narrows a query to ``toolset`` (None: every one)."""
    return ("t.toolset = ?", (toolset,)) if toolset is not None else ("1", ())


def _scan_calls(store: Store, owners: Mapping[str, str | None], calls: dict[str | None, _Calls],
                tags: Mapping[tuple[str, int], list[tuple[str, str]]]) -> None:
    """Tally every call of the assistant messages of ``owners``' trajectories (id → toolset) into ``calls``.

    The hot loop of the report: a plain JSON decoder (stored JSON went through ``store.safe_json`` on its way
    in; a call's arguments string did not, so its decoding also stops at ``RecursionError``), ``type(…) is``
    checks and one reused canonical encoder.
    """
    rows = store.conn.execute(
        "SELECT trajectory_id, idx, tool_calls FROM messages WHERE tool_calls IS NOT NULL AND role = 'assistant'")
    for trajectory_id, index, text in rows:
        if trajectory_id not in owners:
            continue
        toolset = calls[owners[trajectory_id]]
        called: set[_Tally] = set()
        for call in _decoded(text, list) or ():
            function = call.get("function", call) if type(call) is dict else None
            tool = function.get("name") if type(function) is dict else None
            if type(tool) is not str or not tool.strip():
                toolset.unnamed += 1
                continue
            tally = toolset.tally(tool.strip())
            tally.calls += 1
            tally.trajectories.add(trajectory_id)
            called.add(tally)
            arguments = _arguments(function.get("arguments"))
            if arguments is None:
                tally.unreadable += 1
                continue
            tally.arguments.add(_canonical(arguments))
            tally.seen.update(arguments)
        for code, source in tags.get((trajectory_id, index), ()):
            for tally in called:
                by_source = tally.errors.setdefault(code, {})
                by_source[source] = by_source.get(source, 0) + 1


#: Canonical JSON: keys sorted, no spaces, text as it is; and its decoder (each made once: ``json.dumps`` and
#: ``json.loads`` with options build theirs per call).
_canonical = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode
_decode = json.JSONDecoder().decode


def _decoded(text: Any, kind: type) -> Any:
    """``text`` decoded when it is JSON of ``kind``, else None."""
    if type(text) is not str:
        return None
    try:
        value = _decode(text)
    except (ValueError, RecursionError):
        return None
    return value if type(value) is kind else None


def _arguments(arguments: Any) -> dict[str, Any] | None:
    """A call's arguments as an object (a JSON string of one, or one already decoded; none given is ``{}``),
    else None."""
    if arguments is None or arguments == "":
        return {}
    return arguments if type(arguments) is dict else _decoded(arguments, dict)


def _tags_by_message(store: Store, toolset: str | None) -> dict[tuple[str, int], list[tuple[str, str]]]:
    """(trajectory, message index) → its effective tags' (code, source), for the messages that carry any."""
    where, params = _where(toolset)
    out: dict[tuple[str, int], list[tuple[str, str]]] = defaultdict(list)
    for trajectory_id, index, code, source in store.conn.execute(
            "SELECT e.trajectory_id, e.message_index, e.code, e.source FROM effective_tags e "
            f"JOIN trajectories t ON t.id = e.trajectory_id WHERE e.message_index IS NOT NULL AND {where}", params):
        out[(trajectory_id, index)].append((code, source))
    return out


# -- the grouped counts -----------------------------------------------------------------------------------
def _trajectories(store: Store, toolset: str | None
                  ) -> tuple[dict[str, str | None], dict[str | None, Counter[str]], dict[str | None, list[str]]]:
    """One pass over the trajectories: id → toolset, and per toolset the current decisions (``pending``: none
    yet) and the instructions."""
    where, params = _where(toolset)
    owners: dict[str, str | None] = {}
    decisions: dict[str | None, Counter[str]] = defaultdict(Counter)
    texts: dict[str | None, list[str]] = defaultdict(list)
    for trajectory_id, name, text, decision in store.conn.execute(
            "SELECT t.id, t.toolset, t.instruction, coalesce(r.decision, 'pending') FROM trajectories t "
            f"LEFT JOIN review_state r ON r.trajectory_id = t.id WHERE {where}", params):
        owners[trajectory_id] = name
        decisions[name][decision] += 1
        texts[name].append(text)
    return owners, decisions, texts


def _duplicates(store: Store, toolset: str | None) -> dict[str | None, int]:
    where, params = _where(toolset)
    return dict(store.conn.execute(
        "SELECT t.toolset, count(DISTINCT e.trajectory_id) FROM effective_tags e "
        f"JOIN trajectories t ON t.id = e.trajectory_id WHERE e.code = ? AND {where} GROUP BY t.toolset",
        (DUPLICATE, *params)).fetchall())


def _instruction_stats(texts: list[str]) -> InstructionStats:
    chars, lengths = [], []
    vocabulary: set[str] = set()
    pairs: set[tuple[str, str]] = set()
    total_pairs = 0
    for text in texts:
        tokens = words(text)
        chars.append(len(text))
        lengths.append(len(tokens))
        vocabulary.update(tokens)
        pairs.update(zip(tokens, tokens[1:]))
        total_pairs += max(len(tokens) - 1, 0)
    total_words = sum(lengths)
    return InstructionStats(
        count=len(texts), chars=Spread.of(chars), words=Spread.of(lengths), distinct_words=len(vocabulary),
        type_token_ratio=len(vocabulary) / total_words if total_words else None,
        distinct_2=len(pairs) / total_pairs if total_pairs else None,
    )


def words(text: str) -> list[str]:
    """The words of ``text`` as the report counts them (lower-cased runs of letters, digits and ``_``)."""
    return WORD.findall(text.casefold())
