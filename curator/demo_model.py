"""What makes the demo show a gain: a demo base model that knows the chat and call format, the held-out gold
items, and the demo store's training recipe.

The demo base (``--base-model demo``, :mod:`training.demo_base`) is a tiny model trained from scratch,
once, on scripted simulations of the demo toolsets other than the demo's own; training cannot import the
simulator, so its corpus is written here (:func:`ensure_corpus`), into the cache directory both sides
name with :func:`training.config.demo_base_dir`. ``curator demo`` simulates the held-out toolset
(``weather``), stores gold items whose requests the simulation does not make, and marks the store so
that ``T`` there starts from the demo recipe (:data:`training.config.DEMO_TRAIN`), under whatever
``curator.toml [train]`` sets.
"""
from __future__ import annotations

import asyncio
import os
import random
import tempfile
from pathlib import Path
from typing import Any

from curator.sim import SimConfig, Simulation
from curator.sim.backends.scripted import write_instruction
from curator.sim.gold import gold_items
from curator.sim.toolsets import SimToolset, resolve
from store import Store
from store.formats import export_jsonl
from store.taxonomy import MaskPolicy
from training.config import DEMO_CORPUS_FILE, DEMO_TRAIN, DemoBase, demo_base_dir

#: The demo's toolset: not in the demo base's corpus, so what the model learns of it comes from the review.
DEMO_TOOLSET = "weather"
#: Held-out single-step gold items the demo's evaluations score (TS / PI / CF).
DEMO_GOLD = 60
#: The store setting that names the training preset of the store, and the demo's value.
PRESET_KEY = "train_preset"
DEMO_PRESET = "demo"
#: Earlier draws of each planned request the gold items also avoid: the simulator draws again when a
#: request was already taken, and its batches run concurrently, so a later draw may be the one it makes.
_DRAWS_AVOIDED = 3


def corpus_path() -> Path:
    return demo_base_dir() / DEMO_CORPUS_FILE


def ensure_corpus() -> Path:
    """The demo base's corpus, simulated first when missing (≈8 s): the recipe's toolsets, scripted, every
    trajectory kept (complete or failed: the executor's feedback and the MAE weights are part of the format),
    written to a temporary file and renamed, so a reader never sees half of it."""
    path = corpus_path()
    if path.is_file():
        return path
    recipe = DemoBase.current()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".corpus-") as work:
        with Store.open(Path(work) / "corpus.db") as store:
            for toolset in recipe.corpus_toolsets:
                config = SimConfig(toolset=toolset, n=recipe.corpus_per_toolset, seed=recipe.corpus_seed,
                                   backend="scripted", concurrency=16)
                asyncio.run(Simulation(store, config, policy=MaskPolicy.of()).run())
            partial = Path(work) / DEMO_CORPUS_FILE
            export_jsonl(store, partial, "all")
        os.replace(partial, path)
    return path


def prepare_store(store: Store, config: SimConfig, gold: int = DEMO_GOLD) -> int:
    """Mark ``store`` as the demo's and add ``gold`` held-out items for ``config``'s toolset, none of them a
    request the simulation ``config`` describes will make; the number of items stored."""
    toolset = resolve(store, config.toolset)
    avoid = planned_requests(SimToolset(toolset), config) | {t.instruction for t in store.iter_trajectories()}
    with store.transaction():
        store.set_setting(PRESET_KEY, DEMO_PRESET)
        return store.add_gold(gold_items(toolset, gold, config.seed, avoid))


def planned_requests(toolset: SimToolset, config: SimConfig) -> set[str]:
    """Every request the scripted user may write for ``config`` (each trajectory's first few draws)."""
    requests: set[str] = set()
    for index in range(config.n):
        rng, drawn = random.Random(f"{config.seed}:{index}:user"), set()
        for _ in range(_DRAWS_AVOIDED):
            drawn.add(write_instruction(toolset, rng, config, drawn).text)
        requests |= drawn
    return requests


def store_preset(store: Store) -> dict[str, Any]:
    """The training defaults ``store`` brings: the demo recipe on a demo store, else none."""
    return dict(DEMO_TRAIN) if store.setting(PRESET_KEY) == DEMO_PRESET else {}
