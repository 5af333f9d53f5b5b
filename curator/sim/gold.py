"""Held-out single-step gold items written by the scripted user, for evaluation (TS / PI / CF).

Each item is a conversation up to one intended call — the request, and the
earlier intended calls with their responses when the request needs several —
and that call as the gold answer. Requests in ``avoid`` (say, every instruction
already simulated for training) are never reused, so the items are held out.
"""
from __future__ import annotations

import dataclasses
import random
from typing import Iterable

from store import GoldItem, Message, Toolset
from store.toolcalls import ToolCall

from . import mistakes, prompts
from .backends.scripted import response_body, write_instruction
from .config import SimConfig
from .toolsets import SimToolset


def gold_items(toolset: Toolset, count: int, seed: int = 0, avoid: Iterable[str] = ()) -> list[GoldItem]:
    """``count`` items for ``toolset``, deterministic for ``seed``; no request in ``avoid`` is used."""
    sim = SimToolset(toolset)
    clean = dataclasses.replace(SimConfig(toolset=toolset.name, seed=seed), error_rate=0.0, clarify_rate=0.0)
    taken = set(avoid)
    items = []
    for i in range(count):
        rng = random.Random(f"gold:{seed}:{i}")
        instruction = write_instruction(sim, rng, clean, taken)
        taken.add(instruction.text)
        calls = [ToolCall(c["name"], c["arguments"]) for c in instruction.meta["plan"]["calls"]]
        step = rng.randrange(len(calls))
        messages = [Message("system", prompts.assistant_system(sim)), Message("user", instruction.text)]
        for j, earlier in enumerate(calls[:step]):
            call = mistakes.call_dict(f"call_{j + 1}", earlier.name, earlier.arguments)
            messages.append(Message("assistant", None, tool_calls=[call]))
            messages.append(Message("tool", response_body(sim, earlier, rng), tool_call_id=call["id"], name=earlier.name))
        items.append(GoldItem(
            id=f"sim-{toolset.name}-{seed}-{i}", toolset=toolset.name, tools=sim.openai_tools,
            messages=[m.to_openai() for m in messages], calls=[calls[step]], source="simulated",
        ))
    return items
