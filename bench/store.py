"""Store throughput: bulk import and JSONL export against plain ``sqlite3`` doing the same work.

Import: ``Store.insert_trajectories`` of N synthetic trajectories of 10 messages
(with a tag on one in five and a decision on half) into a new store, against
plain ``sqlite3`` ``executemany`` of the same rows into tables of the same
columns and keys (no full-text index, no views). Both start from the same
in-memory trajectories and build their rows from them, so the difference is
what the store adds (FTS5 triggers, indexes, the transaction helper).

Export: ``curator export --format jsonl --status all`` (``export_jsonl``: paged
``iter_records`` with effective tags, current decisions, corrections and notes, ``json.dumps``,
atomic write), against plain ``sqlite3`` reading the same trajectories and
messages in one ordered join and ``json.dumps``-ing them a line per trajectory.

``--memory`` also builds a store of 100,000 trajectories and reports the peak
resident memory of a separate process exporting it (goal: at most 300 MB).

Run: ``python bench/store.py [--n 20000] [--memory] [--memory-n 100000]``.
"""
from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator

from store import Message, Store, Tag, Tool, Toolset, Trajectory
from store.formats.files import write_lines
from store.formats.jsonl import export_jsonl, import_jsonl
from store.records import dumps

TOOLSET = Toolset("bench", [
    Tool("searchFlights", "Search flights between two airports on a date.", {
        "type": "object",
        "properties": {"from": {"type": "string"}, "to": {"type": "string"}, "date": {"type": "string"}},
        "required": ["from", "to"],
    }),
    Tool("bookFlight", "Book a flight by id.", {"type": "object", "properties": {"flightId": {"type": "string"}}}),
])
GOAL_RATIO = 0.5
GOAL_PEAK_MB = 300


def synthetic(n: int) -> Iterator[Trajectory]:
    """N trajectories of 10 messages: system, user, three call/answer pairs, an answer, a follow-up, a reply."""
    for i in range(n):
        messages = [
            Message("system", "You are a travel assistant with the tools of the bench API. Use them when needed."),
            Message("user", f"Find me a flight from LHR to JFK on 2025-06-{i % 28 + 1:02d} and book the cheapest."),
        ]
        for step in range(3):
            call_id = f"call_{step}"
            arguments = json.dumps({"from": "LHR", "to": "JFK", "date": f"2025-06-{i % 28 + 1:02d}", "page": step})
            messages.append(Message("assistant", f"Step {step}: I will search page {step} of the flights.",
                                    tool_calls=[{"id": call_id, "type": "function",
                                                 "function": {"name": "searchFlights", "arguments": arguments}}],
                                    weight=0 if step == 0 and i % 5 == 0 else 1))
            messages.append(Message("tool", json.dumps({"flights": [{"id": f"F{i}-{step}-{k}", "price": 300 + k * 17,
                                                                    "departs": "09:40"} for k in range(3)]}),
                                    tool_call_id=call_id, name="searchFlights"))
        messages += [
            Message("assistant", f"The cheapest flight is F{i}-0-0 at 300 USD, departing 09:40. Shall I book it?"),
            Message("user", "Yes please, book it."),
            Message("assistant", "Done: your flight is booked."),
        ]
        yield Trajectory(
            id=f"t{i:07d}", toolset="bench", instruction=messages[1].content or "", status="complete",
            source="simulated", backend="scripted", model="bench", messages=messages,
            tags=[Tag("param_hallucination", "auto", 2)] if i % 5 == 0 else [],
            decision="accept" if i % 2 == 0 else None,
        )


# -- import ----------------------------------------------------------------------------------------
def store_import(path: Path, trajectories: list[Trajectory]) -> None:
    with Store.open(path) as store:
        store.add_toolset(TOOLSET)
        store.insert_trajectories(trajectories)


_BASELINE_SCHEMA = """
CREATE TABLE trajectories (id TEXT PRIMARY KEY, toolset TEXT, instruction TEXT NOT NULL, status TEXT NOT NULL,
    source TEXT NOT NULL, backend TEXT, model TEXT, difficulty TEXT, reason TEXT, meta TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE messages (trajectory_id TEXT NOT NULL, idx INTEGER NOT NULL, role TEXT NOT NULL, content TEXT,
    tool_calls TEXT, tool_call_id TEXT, name TEXT, raw TEXT, weight INTEGER, weight_source TEXT NOT NULL,
    created_at TEXT NOT NULL, UNIQUE (trajectory_id, idx));
CREATE TABLE tags (id INTEGER PRIMARY KEY, trajectory_id TEXT NOT NULL, message_index INTEGER, code TEXT NOT NULL,
    source TEXT NOT NULL, annotator TEXT, note TEXT, created_at TEXT NOT NULL);
CREATE TABLE reviews (id INTEGER PRIMARY KEY, trajectory_id TEXT NOT NULL, decision TEXT NOT NULL,
    created_at TEXT NOT NULL);
"""


def baseline_import(path: Path, trajectories: list[Trajectory]) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.executescript(_BASELINE_SCHEMA)
    stamp = "2025-01-01T00:00:00.000Z"
    with conn:
        conn.executemany(
            "INSERT INTO trajectories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(t.id, t.toolset, t.instruction, t.status, t.source, t.backend, t.model, t.difficulty, t.reason,
              dumps(t.meta or None), stamp, stamp) for t in trajectories],
        )
        conn.executemany(
            "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(t.id, i, m.role, m.content, dumps(m.tool_calls), m.tool_call_id, m.name, m.raw, m.weight,
              m.weight_source, stamp) for t in trajectories for i, m in enumerate(t.messages)],
        )
        conn.executemany(
            "INSERT INTO tags (trajectory_id, message_index, code, source, annotator, note, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(t.id, g.message_index, g.code, g.source, g.annotator, g.note, stamp) for t in trajectories for g in t.tags],
        )
        conn.executemany(
            "INSERT INTO reviews (trajectory_id, decision, created_at) VALUES (?, ?, ?)",
            [(t.id, t.decision, stamp) for t in trajectories if t.decision],
        )
    conn.close()


def import_jsonl_file(path: Path, db: Path) -> None:
    with Store.open(db) as store:
        import_jsonl(store, path)


# -- export ----------------------------------------------------------------------------------------
def store_export(path: Path, out: Path) -> None:
    with Store.open(path, create=False) as store:
        export_jsonl(store, out, "all")


def baseline_export(path: Path, out: Path) -> None:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    rows = conn.execute(
        "SELECT t.id, m.role, m.content, m.tool_calls, m.tool_call_id, m.name, m.weight FROM trajectories t "
        "JOIN messages m ON m.trajectory_id = t.id ORDER BY t.rowid, m.idx"
    )

    def lines() -> Iterator[str]:
        current, messages = None, []
        for row in rows:
            if row["id"] != current and current is not None:
                yield json.dumps({"id": current, "messages": messages}, ensure_ascii=False) + "\n"
                messages = []
            current = row["id"]
            messages.append({k: row[k] for k in row.keys() if k != "id"})
        if current is not None:
            yield json.dumps({"id": current, "messages": messages}, ensure_ascii=False) + "\n"

    write_lines(out, lines())
    conn.close()


# -- running ---------------------------------------------------------------------------------------
def best_of(repeat: int, *fns: Callable[[int], object]) -> list[float]:
    """The fastest of ``repeat`` runs of each ``fn(run number)``, run in turns so that both sides of a
    comparison meet the same load from the machine's other work (which only ever adds time)."""
    best = [float("inf")] * len(fns)
    for attempt in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn(attempt)
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux keeps ``ru_maxrss`` across fork and exec, so a child of
    a big parent would report the parent's size: read the child's own high-water mark when there is one."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_export_memory(n: int, workdir: Path) -> tuple[float, float, float]:
    """Build a store of ``n`` trajectories, then (seconds, peak RSS MB, peak RSS MB before the export began)
    of a fresh process exporting it; the difference is what the export itself needed."""
    path = workdir / f"memory-{n}.db"
    with Store.open(path) as store:
        store.add_toolset(TOOLSET)
        trajectories = synthetic(n)
        while batch := list(islice(trajectories, 5000)):
            store.insert_trajectories(batch)
    code = (
        "import sys, time\n"
        "from bench.store import peak_rss_mb, store_export\n"
        "from pathlib import Path\n"
        "before = peak_rss_mb()\n"
        "start = time.perf_counter()\n"
        "store_export(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "print(time.perf_counter() - start, peak_rss_mb(), before)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(path), str(workdir / "memory.jsonl")],
                            capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    seconds, peak, before = map(float, result.stdout.split())
    return seconds, peak, before


def row(name: str, count: int, seconds: float, baseline: float | None, unit: str = "traj/s") -> str:
    ratio = f"{baseline / seconds:>7.2f}" if baseline else f"{'':>7}"
    return f"{name:<44}{seconds:>9.2f}{count / seconds:>12,.0f} {unit:<7}{ratio}"


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="trajectories for the throughput runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest counts")
    parser.add_argument("--memory", action="store_true", help="also measure export peak memory at --memory-n")
    parser.add_argument("--memory-n", type=int, default=100_000)
    args = parser.parse_args(list(argv) if argv is not None else None)

    trajectories = list(synthetic(args.n))
    with tempfile.TemporaryDirectory(prefix="curator-bench-") as tmp:
        work = Path(tmp)
        t_base_import, t_import = best_of(
            args.repeat,
            lambda i: baseline_import(work / f"baseline{i}.db", trajectories),
            lambda i: store_import(work / f"store{i}.db", trajectories),
        )
        t_base_export, t_export = best_of(
            args.repeat,
            lambda i: baseline_export(work / "baseline0.db", work / "baseline.jsonl"),
            lambda i: store_export(work / "store0.db", work / "store.jsonl"),
        )
        exported_mb = (work / "store.jsonl").stat().st_size / 1e6
        [t_jsonl] = best_of(1, lambda i: import_jsonl_file(work / "store.jsonl", work / "reimport.db"))

        print(f"{args.n:,} trajectories x 10 messages, best of {args.repeat} alternating runs; "
              f"JSONL export {exported_mb:.1f} MB\n")
        print(f"{'':<44}{'seconds':>9}{'throughput':>12} {'':<7}{'ratio':>7}")
        print(row("import: plain sqlite3 executemany", args.n, t_base_import, None))
        print(row("import: Store.insert_trajectories", args.n, t_import, t_base_import))
        print(row("export: plain sqlite3 + json.dumps", args.n, t_base_export, None))
        print(row("export: curator export --format jsonl", args.n, t_export, t_base_export))
        print(row("import: curator import --format jsonl (file)", args.n, t_jsonl, None))
        print(f"\nratio = baseline seconds / store seconds (goal >= {GOAL_RATIO})")
        if args.memory:
            seconds, peak, before = peak_export_memory(args.memory_n, work)
            verdict = "ok" if peak <= GOAL_PEAK_MB else "OVER"
            print(f"export of {args.memory_n:,} trajectories: {seconds:.1f} s, peak RSS {peak:.0f} MB "
                  f"(goal <= {GOAL_PEAK_MB} MB: {verdict}); {before:.0f} MB of it before the export began "
                  f"(interpreter and imports; sqlite_utils imports pandas when it is installed)")
        else:
            print("(peak memory at 100,000 trajectories: run with --memory)")


if __name__ == "__main__":
    main()
