"""Near-duplicate trajectories, for ``curator dedup``: alike instructions, and identical call sequences.

Synthetic tool-use data degrades as it grows (iTool): a generator repeats itself, asking the same thing with
other numbers or in another order. Two kinds of duplicate are found:

* ``instruction``: requests alike up to their numbers, the order of their clauses and a word or two, naming
  the same things. Each instruction becomes two sets of shingles (``shingle``: its wording, the things it
  names); MinHash LSH (datasketch) over the wording proposes the pairs that may be alike, a pair is kept when
  the exact Jaccard similarities of both its sets reach the threshold (``similar``), and the kept pairs
  join clusters (union-find). MinHash rather than embeddings: no local embedding model is
  guaranteed, and MinHash is CPU-cheap at 100,000 trajectories (``python -m bench.dedup``).
* ``calls``: the same assistant tool calls with the same arguments in the same order, on the same toolset
  (exact: a hash of their canonical JSON).

Each cluster keeps one member (the earliest accepted, else the earliest not rejected) and the others get a
trajectory-level ``duplicate`` tag naming it. The tag masks nothing (``masks_by_default=False``): it is for the
review queue to filter or hide. Running trajectories are left for a later run.
"""
from __future__ import annotations

import contextlib
import gc
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
NUM_PERM = 64
#: datasketch picks the LSH bands for the threshold by these weights of false positives and false negatives:
#: a false positive costs one exact Jaccard, a false negative a missed duplicate (at 0.8: 10 bands of 6, a pair
#: at the threshold proposed 95% of the time, one at 0.5 15% of the time).
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
    normal = _NUMBER.sub("0", text)
    grams = [joined[i:i + GRAM] for clause in _CLAUSE.split(normal.lower())
             if (joined := " ".join(_WORD.findall(clause))) for i in range(max(1, len(joined) - GRAM + 1))]
    entities = list(_entities(normal))
    grams += [f"\x1f{entity}\x1f{k}" for entity in entities for k in range(ENTITY_WEIGHT)]
    named = [e for e in entities if e != "0"] + (["0"] if "0" in entities else [])
    return Shingles(_members(grams), _members(named))


def shingle_all(texts: Iterable[str]) -> list[Shingles]:
    """``shingle`` of each text, made once for texts that are equal once their numbers are ``0`` (the same
    request with other numbers: the same object, so ``similar_groups`` joins them without a sketch)."""
    made: dict[str, Shingles] = {}
    out = []
    for text in texts:
        normal = _NUMBER.sub("0", text)
        found = made.get(normal)
        if found is None:
            found = made[normal] = shingle(normal)
        out.append(found)
    return out


def _entities(normal: str) -> Iterator[str]:
    """The things a text with its numbers made ``0`` names, in order, lowercased (``_ENTITY``; "I" is none)."""
    for match in _ENTITY.finditer(normal.strip()):
        entity = next(g for g in match.groups() if g is not None).lower()
        if entity not in _PRONOUNS:
            yield entity


def _members(items: list[str]) -> frozenset[str]:
    """A multiset as a set: an item seen n times is the item and n - 1 numbered copies."""
    members = set(items)
    if len(members) < len(items):
        for item, count in Counter(items).items():
            if count > 1:
                members.update(f"{item}\x1e{n}" for n in range(1, count))
    return frozenset(members)


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    common = len(a & b)
    return common / (len(a) + len(b) - common) if a or b else 1.0


def similar(a: Shingles, b: Shingles, threshold: float) -> bool:
    """Whether both Jaccard similarities reach ``threshold``: near-duplicates are worded alike *and* name the
    same things (two requests about another city, or one giving a date the other leaves vague, are not).

    Cheapest first: the sizes of the wordings (their Jaccard is at most the smaller over the larger), the
    entities (a few), then the wordings.
    """
    small, large = sorted((len(a.words), len(b.words)))
    return (small >= threshold * large and jaccard(a.entities, b.entities) >= threshold
            and jaccard(a.words, b.words) >= threshold)


def similar_groups(items: Sequence[Shingles], threshold: float) -> list[list[int]]:
    """Indexes of ``items`` linked by ``similar`` at ``threshold``, transitively: groups of two or more, each
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
    sketches = MinHash.generator((items[i].words for i in distinct), num_perm=NUM_PERM,
                                 hashfunc=_GramHashes().__getitem__)
    for index, sketch in zip(distinct, sketches):
        for other in lsh.query(sketch):
            if groups.find(other) != groups.find(index) and similar(items[index], items[other], threshold):
                groups.union(other, index)
        lsh.insert(index, sketch, check_duplication=False)
    return groups.groups()


class _GramHashes(dict[str, int]):
    """datasketch's 32-bit SHA-1 of each gram, computed once: the same grams recur across a store's requests."""

    def __missing__(self, gram: str) -> int:
        from datasketch.hashfunc import sha1_hash32

        value = self[gram] = sha1_hash32(gram.encode())
        return value


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
    items = shingled if shingled is not None else shingle_all(e.instruction for e in entries)
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
    shown: dict[str, str] = {}
    for cluster in clusters:
        shown.setdefault(cluster.kept, shorten(instructions[cluster.kept], 60))
        for member in cluster.duplicates:
            kinds[member][cluster.kept].add(cluster.kind)
    return {member: "; ".join(f"near-duplicate of {kept}{_HOW[frozenset(k)]}: {shown[kept]}"
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
    with collector_paused():
        entries = read_entries(store)
        clusters = instruction_clusters(entries, threshold) + call_clusters(entries)
        instructions = {e.id: e.instruction for e in entries}
        return DedupResult(len(entries), threshold, clusters, notes(clusters, instructions), instructions)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while dedup runs: it makes millions of sets and strings, none in
    a cycle, and the collector's passes over them cost a fifth of the time. Back on (as it was) after."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


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
