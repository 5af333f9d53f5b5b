"""Near-duplicate trajectories, for ``curator dedup``: alike instructions, and identical call sequences.

Synthetic tool-use data degrades as it grows (iTool): a generator repeats itself, asking the same thing with
other numbers or in another order. Two kinds of duplicate are found:

* ``instruction``: requests alike up to their numbers, the order of their clauses and a word or two, naming
  the same things. Each instruction becomes two sets of shingles (``shingle``: its wording, the things it
  names); MinHash LSH (datasketch) over the wording proposes the pairs that may be alike, a pair is kept when
  the exact Jaccard similarities of both its sets reach the threshold (``similarity``), and the kept pairs
  join clusters (union-find). MinHash rather than embeddings: no local embedding model is
  guaranteed, and MinHash is CPU-cheap at 100,000 trajectories (``python -m bench.dedup``).
* ``calls``: the same assistant tool calls with the same arguments in the same order, on the same toolset
  (exact: a hash of their canonical JSON).

Each cluster keeps one member (the earliest accepted, else the earliest not rejected) and the others get a
trajectory-level ``duplicate`` tag naming it. The tag masks nothing (``masks_by_default=False``): it is for the
review queue to filter or hide. Running trajectories are left for a later run.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

from .db import Store
from .feedback import shorten
from .taxonomy import DUPLICATE
from .toolcalls import CallParseError, parse_openai_call

ORIGIN = "dedup"
DEFAULT_THRESHOLD = 0.8
KINDS = ("instruction", "calls")
#: MinHash permutations. Every proposed pair is checked on the exact sets, so the sketch only has to find them.
NUM_PERM = 128
#: datasketch picks the LSH bands for the threshold by these weights of false positives and false negatives:
#: a false positive costs one exact Jaccard, a false negative a missed duplicate (a pair at the threshold is
#: proposed 95% of the time at 0.8, one at 0.5 6% of the time).
LSH_WEIGHTS = (0.05, 0.95)
#: The wording's shingles are character n-grams of this length.
GRAM = 4
#: How many shingles of its wording each entity also stands for (see ``shingle``).
ENTITY_WEIGHT = 4

_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")
#: Clauses end at punctuation or a connective, so clauses in another order give the same shingles.
_CLAUSE = re.compile(r"[.?!;:,]+|\b(?:and|then|also|plus|after that)\b")
_WORD = re.compile(r"[\w']+")
_ENTITY = re.compile(
    # a quoted title or value (a longer quotation is words, not a name)
    r"(?<![\w'‘“\"])(?:'([^'\n]{1,40})'|\"([^\"\n]{1,40})\"|‘([^’\n]{1,40})’|“([^”\n]{1,40})”)(?!\w)"
    r"|(?<=\s)(?<![.?!]\s)(?<![.?!][\"'’”)]\s)([A-Z][\w'-]*)"  # a capitalised word inside a sentence
    r"|\b([A-Z]{2,}|[\w-]*\d[\w@.:/-]*)\b"  # a code (USD) or an identifier or value (cob-4, 42)
)
_PRONOUNS = frozenset({"i", "i'm", "i'd", "i've", "i'll"})


@dataclass(frozen=True, slots=True)
class Shingles:
    """An instruction as dedup compares it: its wording, and the things it names.

    ``words``: the character ``GRAM``-grams of each clause, lowercased, every number made ``0``, and
    ``ENTITY_WEIGHT`` more per entity. ``entities``: the quoted titles and values, capitalised words inside a
    sentence, codes (USD) and identifiers (cob-0), and ``0`` once if it gives any number (a date given is not
    "that day", but how many numbers it gives does not water down its names). Both are multisets written as
    sets (a gram seen twice is two members), so a request whose second clause repeats the words of the first
    is not the first alone.
    """

    words: frozenset[str]
    entities: frozenset[str]


def shingle(text: str) -> Shingles:
    normal = _NUMBER.sub("0", text.lower())
    grams: Counter[str] = Counter()
    for clause in _CLAUSE.split(normal):
        joined = " ".join(_WORD.findall(clause))
        if joined:
            grams.update(joined[i:i + GRAM] for i in range(max(1, len(joined) - GRAM + 1)))
    entities = Counter(_entities(text))
    grams.update({f"\x1f{entity}\x1f{k}": count for entity, count in entities.items() for k in range(ENTITY_WEIGHT)})
    named = Counter({e: n for e, n in entities.items() if e != "0"})
    if "0" in entities:
        named["0"] = 1
    return Shingles(_members(grams), _members(named))


def _entities(text: str) -> Iterator[str]:
    """The things ``text`` names, in order, lowercased, numbers made ``0`` (``_ENTITY``; "I" is none)."""
    for match in _ENTITY.finditer(text.strip()):
        entity = next(g for g in match.groups() if g is not None).lower()
        if entity not in _PRONOUNS:
            yield _NUMBER.sub("0", entity)


def _members(counts: Counter[str]) -> frozenset[str]:
    return frozenset(f"{item}\x1e{n}" for item, count in counts.items() for n in range(count))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def similarity(a: Shingles, b: Shingles) -> float:
    """The lower of the two Jaccard similarities: near-duplicates are worded alike *and* name the same things
    (two requests about another city, or one giving a date the other leaves vague, are not duplicates)."""
    return min(jaccard(a.words, b.words), jaccard(a.entities, b.entities))


def similar_groups(items: Sequence[Shingles], threshold: float) -> list[list[int]]:
    """Indexes of ``items`` linked by a ``similarity`` ≥ ``threshold``, transitively: groups of two or more, each
    in index order, in the order of their first index. An instruction without words joins nothing.

    Equal items are joined before any sketch is made; each distinct one is then queried against those before it
    in an LSH index of the MinHash of its words (so a pair is proposed once), and a pair already in one group is
    not checked again.
    """
    from datasketch import MinHash, MinHashLSH  # numpy and scipy: loaded when there is work, not on import

    groups = _UnionFind(len(items))
    first: dict[Shingles, int] = {}
    distinct = []
    for index, item in enumerate(items):
        if item.words:
            seen = first.setdefault(item, index)
            if seen == index:
                distinct.append(index)
            else:
                groups.union(seen, index)
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM, weights=LSH_WEIGHTS)
    sketches = MinHash.generator(([w.encode() for w in items[i].words] for i in distinct), num_perm=NUM_PERM)
    for index, sketch in zip(distinct, sketches):
        for other in lsh.query(sketch):
            if groups.find(other) != groups.find(index) and similarity(items[index], items[other]) >= threshold:
                groups.union(other, index)
        lsh.insert(index, sketch, check_duplication=False)
    return groups.groups()


class _UnionFind:
    """Disjoint sets over ``0 … n-1`` (path halving, union by lower index: a group's root is its first member)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def groups(self) -> list[list[int]]:
        members: dict[int, list[int]] = defaultdict(list)
        for i in range(len(self.parent)):
            members[self.find(i)].append(i)
        return [m for m in members.values() if len(m) > 1]


# -- the store's trajectories ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Entry:
    """What dedup reads of one trajectory; ``calls`` is the hash of its call sequence (None: no calls)."""

    id: str
    instruction: str
    decision: str | None
    calls: str | None


#: Which member of a cluster is kept: accepted before undecided before rejected, then the earliest.
_DECISION_RANK = {"accept": 0, "reject": 2}


def read_entries(store: Store) -> list[Entry]:
    """Every trajectory that is not running, in store order, with the hash of its assistant calls."""
    sequences: dict[str, list[list[Any]]] = defaultdict(list)
    for trajectory_id, tool_calls in store.conn.execute(
        "SELECT m.trajectory_id, m.tool_calls FROM messages m WHERE m.role = 'assistant' "
        "AND m.tool_calls IS NOT NULL ORDER BY m.trajectory_id, m.idx"
    ):
        entries = json.loads(tool_calls)
        sequences[trajectory_id] += [_call(e) for e in entries] if isinstance(entries, list) else []
    rows = store.conn.execute(
        "SELECT t.id, t.instruction, t.toolset, s.decision FROM trajectories t "
        "LEFT JOIN review_state s ON s.trajectory_id = t.id WHERE t.status != 'running' ORDER BY t.rowid"
    )
    return [Entry(i, instruction, decision, _calls_hash(toolset, sequences[i]) if i in sequences else None)
            for i, instruction, toolset, decision in rows]


def _call(entry: Any) -> list[Any]:
    """``[name, arguments]`` of one OpenAI tool-call entry; the raw function object when it does not parse."""
    try:
        call = parse_openai_call(entry if isinstance(entry, dict) else {})
    except CallParseError:
        return [None, entry.get("function") if isinstance(entry, dict) else entry]
    return [call.name, call.arguments]


def _calls_hash(toolset: str | None, calls: list[list[Any]]) -> str | None:
    if not calls:
        return None
    canonical = json.dumps([toolset, calls], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha1(canonical.encode()).hexdigest()


# -- clusters -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cluster:
    kind: str
    kept: str
    #: Every member, the kept one included, in store order.
    members: tuple[str, ...]

    @property
    def duplicates(self) -> tuple[str, ...]:
        return tuple(m for m in self.members if m != self.kept)


def instruction_clusters(entries: Sequence[Entry], threshold: float = DEFAULT_THRESHOLD,
                         shingled: Sequence[Shingles] | None = None) -> list[Cluster]:
    """Clusters of alike instructions (``shingled``: the entries' shingles, when already made)."""
    items = shingled if shingled is not None else [shingle(e.instruction) for e in entries]
    return [_cluster("instruction", entries, g) for g in similar_groups(items, threshold)]


def call_clusters(entries: Sequence[Entry]) -> list[Cluster]:
    """Clusters of trajectories whose assistant calls are the same, arguments included."""
    by_hash: dict[str, list[int]] = defaultdict(list)
    for index, entry in enumerate(entries):
        if entry.calls is not None:
            by_hash[entry.calls].append(index)
    return [_cluster("calls", entries, g) for g in by_hash.values() if len(g) > 1]


def _cluster(kind: str, entries: Sequence[Entry], indexes: list[int]) -> Cluster:
    kept = min(indexes, key=lambda i: (_DECISION_RANK.get(entries[i].decision or "", 1), i))
    return Cluster(kind, entries[kept].id, tuple(entries[i].id for i in indexes))


def notes(clusters: Iterable[Cluster], instructions: dict[str, str]) -> dict[str, str]:
    """The ``duplicate`` tag's note for every member a cluster does not keep, naming the member kept:
    ``near-duplicate of <id>: <its instruction's first 60 characters>``."""
    kinds: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for cluster in clusters:
        for member in cluster.duplicates:
            kinds[member][cluster.kept].add(cluster.kind)
    return {member: "; ".join(f"near-duplicate of {kept}{_HOW[frozenset(k)]}: {shorten(instructions[kept], 60)}"
                              for kept, k in by_kept.items())
            for member, by_kept in kinds.items()}


_HOW = {frozenset({"instruction"}): "", frozenset({"calls"}): " (same calls)",
        frozenset(KINDS): " (and same calls)"}


# -- writing --------------------------------------------------------------------------------------
@dataclass
class DedupResult:
    read: int
    threshold: float
    clusters: list[Cluster]
    #: trajectory id -> its tag's note: every member a cluster does not keep.
    tagged: dict[str, str]
    instructions: dict[str, str] = field(repr=False)
    written: int = 0
    cleared: int = 0

    def by_kind(self) -> dict[str, tuple[int, int]]:
        """kind -> (clusters, members not kept)."""
        return {k: (sum(c.kind == k for c in self.clusters), sum(len(c.duplicates) for c in self.clusters
                                                                 if c.kind == k)) for k in KINDS}

    def to_json(self) -> dict[str, Any]:
        return {
            "trajectories": self.read, "threshold": self.threshold, "tagged": len(self.tagged),
            "written": self.written, "cleared": self.cleared,
            "by_kind": {k: {"clusters": c, "duplicates": d} for k, (c, d) in self.by_kind().items()},
            "clusters": [{"kind": c.kind, "kept": c.kept,
                          "members": [{"id": m, "instruction": self.instructions[m]} for m in c.members]}
                         for c in self.clusters],
        }


def find_duplicates(store: Store, threshold: float = DEFAULT_THRESHOLD) -> DedupResult:
    """Both kinds of cluster over the store, and the tag each duplicate would get; writes nothing."""
    check_threshold(threshold)
    entries = read_entries(store)
    clusters = instruction_clusters(entries, threshold) + call_clusters(entries)
    instructions = {e.id: e.instruction for e in entries}
    return DedupResult(len(entries), threshold, clusters, notes(clusters, instructions), instructions)


def write_tags(store: Store, result: DedupResult) -> DedupResult:
    """Make the store's dedup tags those of ``result``, in one transaction: a tag whose note changed is
    replaced, one no cluster asks for any more is removed, the others are left as they are (a re-run on an
    unchanged store writes nothing). A human un-tag still hides the tag (``effective_tags``)."""
    with store.transaction():
        current = dict(store.conn.execute(
            "SELECT trajectory_id, note FROM tags WHERE source = 'auto' AND origin = ? AND code = ?",
            (ORIGIN, DUPLICATE)).fetchall())
        changed = {i: note for i, note in result.tagged.items() if current.get(i) != note}
        gone = [i for i in current if i not in result.tagged]
        for trajectory_id, note in changed.items():
            store.replace_auto_tags(trajectory_id, [(None, DUPLICATE, note)], origin=ORIGIN)
        for trajectory_id in gone:
            store.replace_auto_tags(trajectory_id, [], origin=ORIGIN)
    result.written, result.cleared = len(changed), len(gone)
    return result


def check_threshold(threshold: float) -> float:
    """``threshold`` if it is a Jaccard similarity dedup can use, else ValueError naming it."""
    if not MIN_THRESHOLD <= threshold <= MAX_THRESHOLD:
        raise ValueError(f"must be between {MIN_THRESHOLD} and {MAX_THRESHOLD}, got {threshold:g}")
    return threshold


#: Below half the shingles in common two requests are not near-duplicates (and LSH would propose most pairs);
#: above 0.99 datasketch finds no LSH bands (it needs two) for ``NUM_PERM`` permutations.
MIN_THRESHOLD, MAX_THRESHOLD = 0.5, 0.99
