"""The simulation at scale: concurrency 256 on the real ``openai`` client, batched store writes, long runs."""
from __future__ import annotations

import asyncio
import re
import sqlite3
import threading

import pytest

from curator.sim import SimConfig, Simulation
from curator.sim.backends.openai import OpenAIBackend
from curator.sim.writer import StoreWriter, StoreWriteError
from fake_openai import FakeOpenAI
from store import Message, Store
from store.taxonomy import MaskPolicy


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "sim.db") as opened:
        yield opened


def peak_in_flight(arrivals: list[float], latency: float) -> int:
    """The most requests that arrived within one ``latency`` of each other: all of them were in flight at
    once, since the server answers none before ``latency`` (a lower bound of the real peak, never above it)."""
    arrivals = sorted(arrivals)
    first, peak = 0, 0
    for last, at in enumerate(arrivals):
        while at - arrivals[first] >= latency:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


@pytest.mark.slow
async def test_300_trajectories_at_concurrency_256_all_complete_with_256_requests_in_flight(store):
    latency = 0.5
    with FakeOpenAI(latency=latency) as server:
        config = SimConfig(backend="openai", base_url=server.base_url, model="m", n=300, concurrency=256,
                           instability_rate=0.0, max_retries=0).checked()
        backend = OpenAIBackend(config)
        try:
            summary = await Simulation(store, config, backend=backend, policy=MaskPolicy.of()).run()
        finally:
            await backend.aclose()
        arrivals = [r.at for r in server.requests]
    assert summary.error is None and summary.failed == 0 and summary.retries == 0
    assert summary.complete == 300 == len(store.trajectory_ids(status="complete"))
    assert len({t.instruction for t in store.iter_trajectories()}) == 300
    # the concurrency is real (well above the SDK's default pool of 100 keep-alive connections), never exceeded
    assert 128 < peak_in_flight(arrivals, latency) <= 256


async def test_the_writer_is_shown_the_latest_requests_and_nothing_is_written_twice(store):
    with FakeOpenAI() as server:
        config = SimConfig(backend="openai", base_url=server.base_url, model="m", n=40, concurrency=1,
                           instruction_batch=5, instability_rate=0.0).checked()
        backend = OpenAIBackend(config)
        try:
            await Simulation(store, config, backend=backend, policy=MaskPolicy.of()).run()
        finally:
            await backend.aclose()
        prompts = [r.body["messages"][1]["content"] for r in server.requests if r.role == "writer"]
    written = [t.instruction for t in sorted(store.iter_trajectories(), key=lambda t: t.meta["index"])]
    assert len(set(written)) == 40 and len(prompts) == 8
    shown = re.findall(r"^- (Request \d+: .*)$", prompts[-1], re.MULTILINE)
    assert shown == written[15:35]  # the 20 latest before the last batch, oldest first


async def test_writes_asked_for_together_share_a_transaction_and_stay_in_order(store):
    trajectory = store.new_trajectory("weather", "hi")
    writer = StoreWriter(store)
    release = threading.Event()
    blocked = asyncio.ensure_future(writer(lambda s: release.wait(5)))  # holds the thread: the rest queue up
    await asyncio.sleep(0.05)
    writes = [writer(lambda s, i=i: (s.conn.in_transaction, s.append_message(trajectory, Message("user", f"m{i}"))))
              for i in range(30)]
    gathered = asyncio.gather(*writes)
    await asyncio.sleep(0.05)
    release.set()
    await blocked
    results = await gathered
    await writer.aclose()
    assert all(in_transaction for in_transaction, _ in results)  # one batch, one commit
    assert [index for _, index in results] == list(range(30))
    assert [m.content for m in store.messages(trajectory)] == [f"m{i}" for i in range(30)]


async def test_a_failed_write_in_a_batch_raises_to_its_caller_alone(store):
    trajectory = store.new_trajectory("weather", "hi")
    writer = StoreWriter(store)
    release = threading.Event()
    blocked = asyncio.ensure_future(writer(lambda s: release.wait(5)))
    await asyncio.sleep(0.05)

    def full(s: Store) -> None:
        s.append_message(trajectory, Message("user", "lost"))
        raise sqlite3.OperationalError("database or disk is full")

    def failing(s: Store) -> None:
        with s.transaction():  # as every Store method does
            full(s)

    first = writer(lambda s: s.append_message(trajectory, Message("user", "before")))
    broken = writer(failing)
    last = writer(lambda s: s.append_message(trajectory, Message("user", "after")))
    gathered = asyncio.gather(first, broken, last, return_exceptions=True)
    await asyncio.sleep(0.05)
    release.set()
    await blocked
    before, error, after = await gathered
    await writer.aclose()
    assert isinstance(error, StoreWriteError) and str(error) == f"{store.path}: database or disk is full"
    assert (before, after) == (0, 1)
    assert [m.content for m in store.messages(trajectory)] == ["before", "after"]
