"""`curator dedup` at scale: 100,000 trajectories deduplicated, phase by phase, against exact-hash dedup.

The store: requests the everyday simulation's scripted user writes (``write_instruction``, the generator
``curator simulate`` uses; it repeats itself at this size, as real generators do), each with the planned
calls and their answers, plus one in ten a planted paraphrase of an earlier one (other numbers and a
synonym, or clauses in another order) with the same calls. Built with ``Store.insert_trajectories``
(``bench/store.py``'s way); its building is not timed.

Phases: read (``read_entries``: instructions, decisions, call hashes), import datasketch (numpy, scipy:
once a process), shingle, cluster the instructions (MinHash LSH, exact Jaccard, union-find), cluster the
call sequences, notes, write the tags (one transaction), and a re-run's write (nothing changed). The
baseline, in the same process: exact-hash dedup of the instructions (read them, group by a hash of the
text). Goal: the whole dedup under a minute.

Run: ``python -m bench.dedup [--n 100000]``. ``tests/test_dedup.py`` plants its paraphrases with the
helpers here.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import random
import re
import tempfile
import time
from collections import defaultdict
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from store import Message, Store, Trajectory
from store.dedup import (DedupResult, call_clusters, collector_paused, instruction_clusters, notes, read_entries,
                         shingle_all, write_tags)
from store.records import dumps

GOAL_SECONDS = 60
PARAPHRASE_SHARE = 0.1
T = TypeVar("T")

# -- paraphrases: other numbers, clauses in another order, one word changed -------------------------------
SYNONYMS = {"show": "display", "find": "locate", "tell": "inform", "please": "kindly", "list": "show",
            "want": "need", "can": "could", "get": "fetch", "check": "verify", "give": "show", "search": "look",
            "help": "assist", "what's": "what is", "book": "reserve", "i'm": "i am", "also": "plus"}


def renumber(text: str, rng: random.Random) -> str:
    """Every number replaced by another of as many digits."""
    def other(match: re.Match[str]) -> str:
        digits = match.group()
        return f"{(int(digits) + rng.randint(1, 9)) % 10 ** len(digits):0{len(digits)}d}"

    return re.sub(r"\d+", other, text)


def reorder(text: str) -> str:
    """The first sentence moved to the end; one sentence is turned around its first comma or "and"."""
    sentences = re.split(r"(?<=[.?!])\s+", text.strip())
    if len(sentences) > 1:
        return " ".join(sentences[1:] + sentences[:1])
    for joint in (", ", " and "):
        if joint in text:
            first, rest = text.rstrip(".?!").split(joint, 1)
            return f"{rest[:1].upper()}{rest[1:]}{joint}{first[:1].lower()}{first[1:]}{text[-1]}"
    return text


def reword(text: str, rng: random.Random) -> str:
    """One word replaced by a synonym (the text as it was when it has none of ``SYNONYMS``)."""
    words = [m for m in re.finditer(r"[A-Za-z']+", text) if m.group().lower() in SYNONYMS]
    if not words:
        return text
    word = rng.choice(words)
    new = SYNONYMS[word.group().lower()]
    new = new[:1].upper() + new[1:] if word.group()[0].isupper() else new
    return text[:word.start()] + new + text[word.end():]


def paraphrases(text: str, rng: random.Random) -> list[str]:
    """Two paraphrases: other numbers and a synonym; other numbers and the clauses in another order."""
    return [reword(renumber(text, rng), rng), renumber(reorder(text), rng)]


# -- the store --------------------------------------------------------------------------------------------
def requests(n: int, seed: int = 0) -> Iterator[tuple[str, list[dict[str, Any]], int | None]]:
    """``n`` (instruction, planned calls, index of the request it paraphrases or None)."""
    from curator.sim.backends.scripted import write_instruction
    from curator.sim.config import SimConfig
    from curator.sim.toolsets import SimToolset, demo_toolset

    toolset, config = SimToolset(demo_toolset("everyday")), SimConfig(toolset="everyday")
    rng = random.Random(seed)
    drawn: list[tuple[str, list[dict[str, Any]]]] = []
    for index in range(n):
        if drawn and rng.random() < PARAPHRASE_SHARE:
            source = rng.randrange(len(drawn))
            text, calls = drawn[source]
            yield rng.choice(paraphrases(text, rng)), calls, source
            drawn.append((text, calls))  # one entry per trajectory; a later paraphrase of it paraphrases its source
            continue
        instruction = write_instruction(toolset, random.Random(seed * 1_000_003 + index), config, set())
        calls = instruction.meta["plan"]["calls"]
        drawn.append((instruction.text, calls))
        yield instruction.text, calls, None


def trajectory(index: int, text: str, calls: list[dict[str, Any]]) -> Trajectory:
    messages = [Message("user", text)]
    for k, planned in enumerate(calls):
        call = {"id": f"c{k}", "type": "function",
                "function": {"name": planned["name"], "arguments": dumps(planned["arguments"])}}
        messages += [Message("assistant", None, tool_calls=[call]),
                     Message("tool", '{"ok": true}', tool_call_id=f"c{k}", name=planned["name"])]
    messages.append(Message("assistant", "Done."))
    return Trajectory(f"t{index:07d}", "everyday", text, "complete", backend="scripted", model="bench",
                      messages=messages, decision="accept" if index % 3 == 0 else None)


def build(path: Path, n: int) -> dict[str, str]:
    """The bench store; returns planted paraphrase id -> the id of the request it paraphrases."""
    planted: dict[str, str] = {}

    def rows() -> Iterator[Trajectory]:
        for index, (text, calls, source) in enumerate(requests(n)):
            if source is not None:
                planted[f"t{index:07d}"] = f"t{source:07d}"
            yield trajectory(index, text, calls)

    with Store.open(path) as store:
        made = rows()
        while batch := list(islice(made, 5000)):
            store.insert_trajectories(batch)
    return planted


# -- running ----------------------------------------------------------------------------------------------
def timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """``fn()``, its wall-clock seconds and this process's CPU seconds (the machine is shared: wall >= CPU)."""
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - start, time.process_time() - cpu


def exact_hash_dedup(store: Store) -> int:
    """The baseline: read every instruction, group by a hash of its text; the number of groups of two or more."""
    groups: dict[str, list[str]] = defaultdict(list)
    for trajectory_id, text in store.conn.execute("SELECT id, instruction FROM trajectories ORDER BY rowid"):
        groups[hashlib.sha1(text.encode()).hexdigest()].append(trajectory_id)
    return sum(len(g) > 1 for g in groups.values())


def planted_found(result: DedupResult, planted: dict[str, str]) -> float:
    """The share of planted (paraphrase, source) pairs that one instruction cluster holds."""
    cluster_of = {m: i for i, c in enumerate(result.clusters) if c.kind == "instruction" for m in c.members}
    found = sum(p in cluster_of and cluster_of.get(p) == cluster_of.get(s) for p, s in planted.items())
    return found / len(planted)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="trajectories")
    parser.add_argument("--threshold", type=float, default=0.8)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="curator-bench-") as tmp:
        path = Path(tmp) / "dedup.db"
        planted, built, _ = timed(lambda: build(path, args.n))
        with Store.open(path) as store:
            groups, baseline, baseline_cpu = timed(lambda: exact_hash_dedup(store))
            phases: list[tuple[str, float, float]] = []

            def phase(name: str, fn: Callable[[], T]) -> T:
                value, seconds, cpu = timed(fn)
                phases.append((name, seconds, cpu))
                return value

            with collector_paused():  # as find_duplicates does
                entries = phase("read (instructions, decisions, call hashes)", lambda: read_entries(store))
                phase("import datasketch (numpy, scipy; once)", lambda: importlib.import_module("datasketch"))
                shingled = phase("shingle the instructions", lambda: shingle_all(e.instruction for e in entries))
                alike = phase("cluster instructions (MinHash LSH, Jaccard)",
                              lambda: instruction_clusters(entries, args.threshold, shingled))
                same_calls = phase("cluster call sequences (exact hash)", lambda: call_clusters(entries))
                clusters = alike + same_calls
                instructions = {e.id: e.instruction for e in entries}
                tagged = phase("notes", lambda: notes(clusters, instructions))
            result = DedupResult(len(entries), args.threshold, clusters, tagged, instructions)
            phase("write the tags (one transaction)", lambda: write_tags(store, result))
            written = result.written
            _, rerun, rerun_cpu = timed(lambda: write_tags(store, result))
    total, total_cpu = sum(p[1] for p in phases), sum(p[2] for p in phases)

    print(f"{args.n:,} trajectories (built in {built:.0f} s, {len(planted):,} planted paraphrases), "
          f"threshold {args.threshold:g}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
    print(f"{'phase':<46}{'seconds':>9}{'cpu s':>8}{'x baseline':>12}")
    rows = [*phases, ("curator dedup, all phases", total, total_cpu),
            ("baseline: exact-hash dedup of the instructions", baseline, baseline_cpu),
            ("re-run write (nothing changed)", rerun, rerun_cpu)]
    for name, seconds, cpu in rows:
        print(f"{name:<46}{seconds:>9.2f}{cpu:>8.2f}{seconds / baseline:>12.1f}")
    kinds = result.by_kind()
    print(f"\nfound: {kinds['instruction'][0]:,} instruction clusters ({kinds['instruction'][1]:,} not kept), "
          f"{kinds['calls'][0]:,} call clusters ({kinds['calls'][1]:,} not kept); {written:,} tags written; "
          f"exact hashing finds {groups:,} groups")
    print(f"planted paraphrases in their request's cluster: {planted_found(result, planted):.1%}")
    verdict = "ok" if total < GOAL_SECONDS else "OVER"
    print(f"goal: all phases under {GOAL_SECONDS} s (wall clock): {verdict}")


if __name__ == "__main__":
    main()
