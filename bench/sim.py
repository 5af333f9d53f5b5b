"""Simulation throughput and client CPU against a loopback OpenAI-compatible server with a fixed latency.

At each concurrency (default 32 and 256): max(256, 4 × concurrency) trajectories
on the openai backend, against the test server (tests/fake_openai.py, in its own
process) answering every request after 100 ms. Printed beside baselines measured
in the same run: the ideal (concurrency / latency) and the bare ``openai``
client firing the same number of requests at the same concurrency, once with
the SDK's defaults (the baseline of the goal) and once on the aiohttp transport
with a pool sized to the concurrency, as the simulation uses it (the share of
the transport in the difference). Each measurement runs ``--rounds`` times,
alternating, so all meet the same load from other work on the machine; the best
throughput and the least CPU of each are kept. CPU is this process's (all
threads: the simulation's store writes and flagging count).

Goal, at every concurrency: the simulation ≥ 0.95 of the bare client's
throughput and ≤ its client CPU per request, with every trajectory complete
(no error, none starved: the slowest trajectory's time is printed beside the
median). Two things the bare client does not pay: the simulation's first 100 ms
carry only the instruction writers' requests (nothing else can start before
there is a request to solve), and its store writes and flagging run in the same
process. The ideal is out of reach of any Python client on two shared cores at
concurrency 256: the bare client's own ratio says how far.

    python -m bench.sim [--concurrency 32,256] [--trajectories N] [--latency 0.1] [--rounds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import openai

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from curator.sim import Flagged, SimConfig, Simulation, TrajectoryFinished, TrajectoryStarted  # noqa: E402
from curator.sim.toolsets import SimToolset, demo_toolset  # noqa: E402
from store import Store  # noqa: E402
from store.taxonomy import MaskPolicy  # noqa: E402

BARE = "bare openai client (SDK defaults)"
BARE_AIOHTTP = "bare openai client, aiohttp transport"
SIMULATE = "curator simulate (openai backend)"


@dataclass
class Measured:
    requests: int
    seconds: float
    cpu: float  # this process's CPU seconds (all threads)
    writes: int = 0
    durations: list[float] = field(default_factory=list)  # each trajectory's, start to finish

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.requests * 1000


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, str(REPO / "tests" / "fake_openai.py"), "--latency", str(latency)],
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline() if process.stdout else ""
    if not line.startswith("listening "):
        process.kill()
        raise SystemExit(f"the test server did not start: {line!r}")
    return process, line.split()[1]


async def simulate(base_url: str, n: int, concurrency: int) -> Measured:
    with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "bench.db") as store:
        config = SimConfig(backend="openai", base_url=base_url, model="bench", toolset="weather", n=n,
                           concurrency=concurrency, instability_rate=0.0, max_retries=0)
        sim = Simulation(store, config, policy=MaskPolicy.of())
        flags = 0
        began: dict[str, float] = {}
        durations: list[float] = []
        started, cpu = time.perf_counter(), time.process_time()
        async for event in sim.events():
            if isinstance(event, TrajectoryStarted):
                began[event.trajectory_id] = time.perf_counter()
            elif isinstance(event, TrajectoryFinished):
                durations.append(time.perf_counter() - began.pop(event.trajectory_id))
            flags += isinstance(event, Flagged)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        summary = sim.summary
        if summary.complete != n or summary.error:
            raise SystemExit(f"the simulation did not complete: {summary.describe()}")
        # one write per message, per trajectory start and finish, per flagging
        writes = summary.messages + summary.started + summary.complete + summary.failed + flags
        return Measured(summary.requests, seconds, cpu, writes, durations)


async def bare(base_url: str, requests: int, concurrency: int, aiohttp: bool) -> Measured:
    """The same number of chat completions through the bare client's ``create()``, ``concurrency`` at a time."""
    tools = SimToolset(demo_toolset("weather")).openai_tools
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What will the weather be like in Oslo over the next 3 days?"}]
    pool = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    http = openai.DefaultAioHttpClient(limits=pool) if aiohttp else None
    client = openai.AsyncOpenAI(api_key="bench", base_url=base_url, max_retries=0, http_client=http)
    remaining = iter(range(requests))

    async def worker() -> None:
        for _ in remaining:
            await client.chat.completions.create(model="bench", messages=messages, tools=tools)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    await client.close()
    return Measured(requests, seconds, cpu)


def measure(base_url: str, trajectories: int, concurrency: int, rounds: int) -> dict[str, list[Measured]]:
    runs: dict[str, list[Measured]] = {SIMULATE: [], BARE: [], BARE_AIOHTTP: []}
    for _ in range(rounds):
        runs[SIMULATE].append(asyncio.run(simulate(base_url, trajectories, concurrency)))
        requests = runs[SIMULATE][-1].requests
        runs[BARE].append(asyncio.run(bare(base_url, requests, concurrency, aiohttp=False)))
        runs[BARE_AIOHTTP].append(asyncio.run(bare(base_url, requests, concurrency, aiohttp=True)))
    return runs


def report(concurrency: int, trajectories: int, latency: float, runs: dict[str, list[Measured]]) -> tuple[str, bool]:
    """The table rows of one concurrency, and whether the goal is met there."""
    requests = runs[SIMULATE][0].requests
    per_trajectory = requests / trajectories
    ideal = concurrency / latency
    best = {name: max(m.rate for m in ms) for name, ms in runs.items()}
    cpu = {name: min(m.cpu_ms for m in ms) for name, ms in runs.items()}
    rows = [f"| {concurrency} | ideal (concurrency / latency) | {ideal / per_trajectory:.1f} | 1.00 | | | |"]
    for name in (BARE, BARE_AIOHTTP, SIMULATE):
        rows.append(f"| {concurrency} | {name} | {best[name] / per_trajectory:.1f} | {best[name] / ideal:.2f} | "
                    f"{best[name] / best[BARE]:.2f} | {cpu[name]:.2f} | {cpu[name] / cpu[BARE]:.2f} |")
    fastest = max(runs[SIMULATE], key=lambda m: m.rate)
    median, slowest = statistics.median(fastest.durations), max(fastest.durations)
    ok = best[SIMULATE] / best[BARE] >= 0.95 and cpu[SIMULATE] <= cpu[BARE]
    print(f"concurrency {concurrency}: {trajectories} trajectories, {requests} requests ({per_trajectory:.2f} per "
          f"trajectory), every one complete; trajectory time median {median:.2f} s, slowest {slowest:.2f} s; "
          f"store writes {fastest.writes} = {fastest.writes / fastest.seconds:.0f}/s", flush=True)
    return "\n".join(rows), ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="32,256", help="comma-separated, e.g. 32,256")
    parser.add_argument("--trajectories", type=int, help="per concurrency (default max(256, 4 × concurrency))")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    server, base_url = start_server(args.latency)
    tables, goals = [], []
    try:
        for concurrency in levels:
            trajectories = args.trajectories or max(256, 4 * concurrency)
            runs = measure(base_url, trajectories, concurrency, args.rounds)
            table, ok = report(concurrency, trajectories, args.latency, runs)
            tables.append(table)
            goals.append(f"{concurrency}: {'met' if ok else 'NOT met'}")
    finally:
        server.terminate()
        server.wait()
    print(f"\n{args.latency * 1000:.0f} ms per request; best throughput and least CPU of {args.rounds} rounds\n")
    print("| concurrency | measure | trajectories/s | vs ideal | vs bare client | client CPU ms/request | CPU vs bare |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    print("\n".join(tables))
    print(f"\ngoal (≥ 0.95 of the bare client's throughput, ≤ its CPU per request) at concurrency {', '.join(goals)}")


if __name__ == "__main__":
    main()
