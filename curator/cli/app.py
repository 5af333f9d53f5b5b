"""`curator review`, `curator watch`, `curator demo`, and the app that `curator` alone opens."""
from __future__ import annotations

import asyncio
from functools import partial
from typing import Any, Callable

import click

from curator.cli.opening import DEMO_DB, command_config, open_store
from curator.cli.options import given, shared_options
from curator.demo_model import DEMO_TOOLSET, prepare_store
from curator.sim import Simulation
from curator.sim.backends.base import Episode, Reply
from curator.sim.backends.scripted import ScriptedBackend
from store import Store
from store.queue import ORDERS, QueueFilter
from store.toolcalls import ToolCall

DEMO_SIZE = 24
DEMO_CONCURRENCY = 4
#: Seconds the demo's scripted agents take per step, so trajectories visibly grow on the watch screen.
DEMO_PACE = 0.25


def open_app(obj: dict[str, Any], screen: str, *, db: str | None = None,
             simulate: Callable[[Store], Simulation] | None = None, review_filter: QueueFilter | None = None) -> None:
    """Run the app on the store named by ``--db`` (or ``db``) until the user quits."""
    from curator.app import CuratorApp

    with open_store(db or obj["db"], create=True) as store:
        CuratorApp(store, command_config(), screen=screen, annotator=obj.get("annotator"), simulate=simulate,
                   review_filter=review_filter).run()


@shared_options()
@click.command()
@click.option("--order", type=click.Choice(list(ORDERS)), default="queue", show_default=True,
              help="queue: oldest first; hardest: by the latest model's perplexity (curator train itool, or "
                   "python -m training score), highest first; judge: least confident judge verdict first.")
@click.option("--hide-duplicates", is_flag=True,
              help="Leave out the trajectories `curator dedup` tagged duplicate (/ in the app toggles it).")
@click.pass_obj
def review(obj: dict[str, Any], order: str, hide_duplicates: bool) -> None:
    """Open the app on the review queue (pending trajectories, oldest first unless --order says)."""
    open_app(obj, "review", review_filter=QueueFilter(order=order, hide_duplicates=hide_duplicates))


@shared_options()
@click.command()
@click.pass_obj
def watch(obj: dict[str, Any]) -> None:
    """Open the app on the watch screen: simulations arriving live, from here or another terminal."""
    open_app(obj, "watch")


@shared_options()
@click.command()
@click.option("-n", "count", default=DEMO_SIZE, show_default=True, help="Trajectories to simulate on a new store.")
@click.option("--toolset", default=DEMO_TOOLSET, show_default=True, help="A demo toolset.")
@click.pass_context
def demo(ctx: click.Context, count: int, toolset: str) -> None:
    """The offline demo: a scripted simulation (no key, no GPU, no network) into ./curator-demo.db, live.

    On a new store the app opens on the watch screen with the simulation running;
    on a store that already holds trajectories it opens on the review queue.
    The store also gets held-out gold items, and `T` there trains the demo model
    (a tiny model pretrained once on other toolsets) on the accepted trajectories.
    """
    obj = ctx.obj
    db = obj["db"] if given(ctx, "db") else DEMO_DB
    settings = command_config()
    config = settings.simulate.with_changes(toolset=toolset, n=count, backend="scripted", concurrency=DEMO_CONCURRENCY)
    with open_store(db, create=True) as store:
        fresh = store.is_empty()
        if fresh:
            prepare_store(store, config)
    if not fresh:
        open_app(obj, "review", db=db)
        return
    open_app(obj, "watch", db=db, simulate=partial(Simulation, config=config, backend=PacedScripted(config),
                                                   policy=settings.flag.policy()))


class PacedScripted(ScriptedBackend):
    """The scripted backend taking ``DEMO_PACE`` seconds per assistant step and tool answer, for the demo."""

    async def act(self, episode: Episode) -> Reply:
        await asyncio.sleep(DEMO_PACE)
        return await super().act(episode)

    async def respond(self, episode: Episode, call: ToolCall) -> str:
        await asyncio.sleep(DEMO_PACE)
        return await super().respond(episode, call)


COMMANDS = [review, watch, demo]
