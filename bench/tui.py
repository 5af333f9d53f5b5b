"""Review TUI on a big store against a small one (issue 5's benchmark).

    python bench/tui.py [--big 100000] [--small 100] [--presses 30]

Builds two stores of synthetic trajectories (cached under /tmp by size), then
for each: time to first paint of the review screen, and the median time from
the `a` key's action to the first refresh after the next trajectory is on
screen, measured inside the app. Pilot's own round trip for a key press on a
one-widget app is printed beside them as the instrument's floor. Prints a
table with the big/small ratios (each figure the median over alternating
rounds); goals: ratios ≤ 1.25, in-app median ≤ 30 ms,
first paint ≤ 1 s.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from textual.app import App, ComposeResult
from textual.widgets import Static

from curator.app import CuratorApp
from curator.settings import Config
from curator.screens.review import ReviewScreen
from store import Message, Store, Tag, Tool, Toolset, Trajectory

TOOLSET = Toolset("bench", [
    Tool("getWeatherForecast", "Forecast for a city.",
         {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
          "required": ["city"]}),
    Tool("getWeatherHistory", "Past weather for a city.",
         {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
])
CITIES = ("Paris", "Lima", "Oslo", "Accra", "Hanoi", "Quito", "Perth", "Turin")


def synthetic(i: int, rng: random.Random) -> Trajectory:
    """One plausible trajectory: a request, a failed call, its recovery, an answer."""
    city = rng.choice(CITIES)
    bad = json.dumps({"town": city})
    good = json.dumps({"city": city, "days": rng.randint(1, 7)})
    messages = [
        Message("user", f"What will the weather be in {city} over the next days? (#{i})"),
        Message("assistant", "I'll look up the forecast.", tool_calls=[_call("c1", "getWeatherForecast", bad)],
                weight=0),
        Message("tool", '{"error": "missing 1 required positional argument: \'city\'"}', tool_call_id="c1"),
        Message("assistant", "Retrying with the city.", tool_calls=[_call("c2", "getWeatherForecast", good)]),
        Message("tool", json.dumps({"city": city, "forecast": ["sun", "rain"]}), tool_call_id="c2"),
        Message("assistant", f"Sun, then rain in {city}."),
    ]
    return Trajectory(id=f"t{i:06d}", toolset="bench", instruction=messages[0].content or "", status="complete",
                      messages=messages, tags=[Tag("param_missing", "auto", 1)],
                      decision="accept" if rng.random() < 0.3 else None)


def _call(call_id: str, name: str, arguments: str) -> dict[str, object]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def build(n: int) -> Path:
    """A store of ``n`` synthetic trajectories, built once and reused from the temp directory."""
    path = Path(tempfile.gettempdir()) / f"curator-bench-tui-{n}.db"
    if path.exists():
        return path
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    rng = random.Random(n)
    with Store.open(partial) as store:
        store.add_toolset(TOOLSET)
        store.insert_trajectories(synthetic(i, rng) for i in range(n))
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    partial.replace(path)
    return path


class Probe:
    """Timestamps taken inside the app: first paint, and each `a` from its action to the next refresh."""

    def __init__(self) -> None:
        self.opened = 0.0
        self.first_paint: float | None = None
        self.presses: list[float] = []

    def install(self) -> None:
        probe = self
        on_mount, decide = ReviewScreen.on_mount, ReviewScreen.action_decide

        def timed_mount(screen: ReviewScreen) -> None:
            on_mount(screen)
            screen.call_after_refresh(lambda: setattr(probe, "first_paint", time.perf_counter() - probe.opened))

        def timed_decide(screen: ReviewScreen, decision: str) -> None:
            started = time.perf_counter()
            decide(screen, decision)
            screen.call_after_refresh(lambda: probe.presses.append(time.perf_counter() - started))

        ReviewScreen.on_mount = timed_mount  # type: ignore[method-assign]
        ReviewScreen.action_decide = timed_decide  # type: ignore[method-assign]


PROBE = Probe()


async def measure(path: Path, presses: int) -> dict[str, float]:
    """Open a copy of the store on the review screen, then accept ``presses`` trajectories."""
    copy = Path(tempfile.mkdtemp()) / path.name
    shutil.copyfile(path, copy)
    PROBE.first_paint, PROBE.presses = None, []
    probe = PROBE
    probe.opened = time.perf_counter()
    store = Store.open(copy)
    app = CuratorApp(store, Config(), screen="review", annotator="bench")
    pilot_times = []
    async with app.run_test(size=(140, 44)) as pilot:
        while probe.first_paint is None:
            await pilot.pause(0.01)
        await app.workers.wait_for_complete()
        for _ in range(presses):
            started = time.perf_counter()
            await pilot.press("a")
            pilot_times.append(time.perf_counter() - started)
            await pilot.pause()
        await app.workers.wait_for_complete()
        reviewed = store.conn.execute("SELECT count(*) FROM reviews WHERE annotator = 'bench'").fetchone()[0]
    store.close()
    shutil.rmtree(copy.parent)
    assert reviewed == presses, f"{reviewed} of {presses} presses reached the store"
    return {
        "first paint (ms)": 1000 * probe.first_paint,
        "a → next shown, in app, median (ms)": 1000 * statistics.median(probe.presses),
        "a → next shown, in app, p90 (ms)": 1000 * sorted(probe.presses)[int(0.9 * len(probe.presses))],
        "a through Pilot, median (ms)": 1000 * statistics.median(pilot_times),
    }


class Trivial(App[None]):
    BINDINGS = [("a", "bump", "Bump")]

    def compose(self) -> ComposeResult:
        yield Static("0")

    def action_bump(self) -> None:
        widget = self.query_one(Static)
        widget.update(str(int(str(widget.render())) + 1))


async def pilot_floor(presses: int) -> float:
    """Pilot's own round trip for one key on a one-widget app: the floor under any Pilot figure."""
    times = []
    async with Trivial().run_test() as pilot:
        for _ in range(presses):
            started = time.perf_counter()
            await pilot.press("a")
            times.append(time.perf_counter() - started)
            await pilot.pause()
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--presses", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="small and big alternate this many times")
    args = parser.parse_args()
    if args.presses > 0.6 * args.small:
        sys.exit("--presses must leave pending trajectories in the small store (about 70% are pending)")
    print(f"building stores of {args.small} and {args.big} trajectories (cached in {tempfile.gettempdir()})…",
          flush=True)
    small, big = build(args.small), build(args.big)
    PROBE.install()
    runs: dict[int, list[dict[str, float]]] = {args.small: [], args.big: []}
    for _ in range(args.rounds):  # alternate, so a busy moment on a shared machine hits both alike
        for n, path in ((args.small, small), (args.big, big)):
            runs[n].append(asyncio.run(measure(path, args.presses)))
    results = {n: {name: statistics.median(r[name] for r in rs) for name in rs[0]} for n, rs in runs.items()}
    floor = statistics.median(asyncio.run(pilot_floor(args.presses)) for _ in range(args.rounds))
    goals = {"first paint (ms)": "≤ 1000 ms, ratio ≤ 1.25",
             "a → next shown, in app, median (ms)": "≤ 30 ms, ratio ≤ 1.25"}
    rows = [(name, results[args.small][name], results[args.big][name]) for name in results[args.small]]
    width = max(len(r[0]) for r in rows) + 2
    print(f"\n{'':<{width}}{args.small:>10,}{args.big:>12,}{'ratio':>8}   goal")
    for name, a, b in rows:
        print(f"{name:<{width}}{a:>10.1f}{b:>12.1f}{b / a:>7.2f}x   {goals.get(name, '')}")
    print(f"{'Pilot floor: one key on a one-widget app (ms)':<{width}}{floor:>10.1f}")


if __name__ == "__main__":
    main()
