"""Coverage report speed: ``curator report`` (``store.coverage.coverage``) on a store of N trajectories.

The store: ``--seed-n`` scripted simulations on the 25-tool ``everyday`` toolset (``tests/data_helpers.py``'s
``everyday_store``: auto-flagged, nine in ten accepted), copied under new ids up to N (the copies keep their
messages, effective tags and decisions), so the report reads realistic content at 100,000 trajectories.

Against, in the same process and on the same file:

- **floor**: plain ``sqlite3`` reading the assistant messages' ``tool_calls`` column and ``json.loads``-ing each
  one and each call's arguments — the least any report of calls and argument names must do;
- **naive**: the report's per-tool numbers (calls, trajectories, distinct arguments, parameters exercised,
  errors) counted by walking ``Store.iter_trajectories()`` in Python, as a script over the store's API would
  (and as ``tests/test_report.py`` counts independently), on the first ``--naive-n`` trajectories, scaled to N.

Run: ``python -m bench.report [--n 100000] [--repeat 3]``.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from itertools import islice
from pathlib import Path
from typing import Iterable

from bench.store import best_of
from store import Store, Trajectory, new_id
from store.coverage import coverage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from data_helpers import everyday_store  # noqa: E402  (tests/ holds the realistic store's recipe)


def build(path: Path, n: int, seed_n: int) -> int:
    """A store of ``n`` trajectories: ``seed_n`` simulated, the rest copies of them under new ids."""
    seed = everyday_store(path, seed_n)
    originals = list(seed.iter_trajectories())
    made = len(originals)
    while made < n:
        batch = [_copy(t) for t in islice(originals, min(len(originals), n - made))]
        seed.insert_trajectories(batch)
        made += len(batch)
    seed.close()
    return made


def _copy(trajectory: Trajectory) -> Trajectory:
    return Trajectory(
        id=new_id(), toolset=trajectory.toolset, instruction=trajectory.instruction, status=trajectory.status,
        source=trajectory.source, backend=trajectory.backend, model=trajectory.model, meta=trajectory.meta,
        messages=trajectory.messages, tags=trajectory.tags, decision=trajectory.decision,
    )


def report(path: Path) -> None:
    with Store.open(path, create=False) as store:
        coverage(store)


def floor(path: Path) -> None:
    conn = sqlite3.connect(path)
    names: Counter[str] = Counter()
    for (text,) in conn.execute("SELECT tool_calls FROM messages WHERE role = 'assistant' AND tool_calls IS NOT NULL"):
        for call in json.loads(text):
            try:
                arguments = json.loads(call["function"]["arguments"] or "{}")
            except ValueError:
                continue
            if isinstance(arguments, dict):
                names.update(arguments.keys())
    conn.close()


def naive(path: Path, limit: int) -> None:
    calls: Counter[str] = Counter()
    trajectories: dict[str, set[str]] = defaultdict(set)
    arguments: dict[str, set[str]] = defaultdict(set)
    exercised: dict[str, set[str]] = defaultdict(set)
    errors: Counter[tuple[str, str, str]] = Counter()
    with Store.open(path, create=False) as store:
        for trajectory in islice(store.iter_trajectories(), limit):
            tags = defaultdict(list)
            for tag in trajectory.tags:
                tags[tag.message_index].append(tag)
            for message in trajectory.messages:
                if message.role != "assistant" or not message.tool_calls:
                    continue
                called = set()
                for call in message.tool_calls:
                    name = call["function"]["name"]
                    try:
                        args = json.loads(call["function"]["arguments"] or "{}")
                    except ValueError:
                        args = None
                    calls[name] += 1
                    trajectories[name].add(trajectory.id)
                    called.add(name)
                    if isinstance(args, dict):
                        arguments[name].add(json.dumps(args, sort_keys=True))
                        exercised[name].update(args)
                for tag in tags[message.index]:
                    errors.update((name, tag.code, tag.source) for name in called)


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="trajectories in the store")
    parser.add_argument("--seed-n", type=int, default=2_000, help="of them simulated; the rest are copies")
    parser.add_argument("--naive-n", type=int, default=10_000, help="trajectories the naive count walks")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest counts")
    args = parser.parse_args(list(argv) if argv is not None else None)

    with tempfile.TemporaryDirectory(prefix="curator-bench-report-") as tmp:
        path = Path(tmp) / "report.db"
        start = time.perf_counter()
        n = build(path, args.n, min(args.seed_n, args.n))
        built = time.perf_counter() - start
        with Store.open(path, create=False) as store:
            shown = coverage(store).toolsets[0]
        naive_n = min(args.naive_n, n)
        t_floor, t_report = best_of(args.repeat, lambda i: floor(path), lambda i: report(path))
        [t_naive] = best_of(1, lambda i: naive(path, naive_n))
        t_naive_scaled = t_naive * n / naive_n

        print(f"{n:,} trajectories ({shown.calls:,} calls on {len(shown.tools)} tools; "
              f"built in {built:.0f} s), best of {args.repeat} alternating runs\n")
        print(f"{'':<58}{'seconds':>9}{'traj/s':>12}{'ratio':>8}")
        print(f"{'floor: sqlite3 + json.loads of every call':<58}{t_floor:>9.2f}{n / t_floor:>12,.0f}{'':>8}")
        print(f"{f'naive: iter_trajectories + Python ({naive_n:,}, scaled)':<58}{t_naive_scaled:>9.2f}"
              f"{n / t_naive_scaled:>12,.0f}{'':>8}")
        print(f"{'curator report (store.coverage.coverage)':<58}{t_report:>9.2f}{n / t_report:>12,.0f}"
              f"{t_floor / t_report:>8.2f}")
        print(f"\nratio = floor seconds / report seconds; the report is {t_naive_scaled / t_report:.1f}x faster "
              "than the naive walk")


if __name__ == "__main__":
    main()
