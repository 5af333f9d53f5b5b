"""`curator simulate` and `curator toolset`: make conversations, and the toolsets they use."""
from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from curator import settings
from curator.cli.opening import open_store
from curator.cli.options import shared_options
from store import Store, Toolset
from store.errors import CuratorError, InputError
from store.text import SIGN, inert, inert_console, visible

if TYPE_CHECKING:
    from curator.sim import SimConfig
    from store.coverage import ToolsetCoverage

BACKEND_CHOICE = click.Choice(["scripted", "openai"])


def _open(ctx: click.Context) -> Store:
    return open_store(ctx.obj["db"], create=True)


def _toolset_from_file(path: Path, name: str | None) -> Toolset:
    """An OpenAPI 3 document (it has ``paths``) or a list of function schemas."""
    from store.formats.files import read_json

    from curator.sim.toolsets import from_functions_file, from_openapi_file

    data = read_json(path)
    if isinstance(data, dict) and "paths" in data:
        return from_openapi_file(path, name)
    return from_functions_file(path, name)


@shared_options()
@click.command("simulate")
@click.option("--toolset", "toolset", default=None, help="Toolset in the store, or a demo (see `curator toolset list`).")
@click.option("--openapi", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Use (and store) the toolset of this OpenAPI 3 JSON file.")
@click.option("--functions", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Use (and store) a JSON list of function schemas.")
@click.option("-n", "--count", "n", type=click.IntRange(min=1), default=None, help="Trajectories to make.")
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Trajectories at once.")
@click.option("--backend", type=BACKEND_CHOICE, default=None, help="scripted (offline) or openai (any "
              "OpenAI-compatible server).")
@click.option("--base-url", default=None, help="Server of every role without its own, e.g. http://localhost:8000/v1.")
@click.option("--model", default=None, help="Assistant model (and of roles without their own).")
@click.option("--user-model", default=None, help="Model of the user agent.")
@click.option("--executor-model", default=None, help="Model of the tool executor.")
@click.option("--user-base-url", default=None)
@click.option("--executor-base-url", default=None)
@click.option("--api-key-env", default=None, help="Environment variable that holds the API key (never the key).")
@click.option("--seed", type=int, default=None)
@click.option("--max-steps", type=click.IntRange(min=1), default=None, help="Assistant turns before giving up.")
@click.option("--error-rate", type=click.FloatRange(0, 1), default=None,
              help="Scripted: chance of a planted mistake before each intended call.")
@click.option("--error-mix", default=None, metavar="KIND=WEIGHT,...",
              help="Scripted: relative weights of the planted mistakes, e.g. wrong_tool=3,parse_error=1 "
                   "(kinds not named get 0).")
@click.option("--instability-rate", type=click.FloatRange(0, 1), default=None,
              help="Share of well-formed calls answered with a timeout or 5xx.")
@click.option("--timeout", "request_timeout", type=click.FloatRange(min=0.1), default=None,
              help="Seconds before a model request times out (it is retried).")
@click.option("--gold", type=click.IntRange(min=0), default=0,
              help="Also store this many held-out single-step gold items (scripted writer).")
@click.option("--fill-gaps", is_flag=True,
              help="Aim the user agent at the tools and parameters `curator report` shows least covered (least "
                   "called tools, parameters never exercised); prints the coverage before and after.")
@click.pass_context
def simulate(ctx: click.Context, toolset: str | None, openapi: Path | None, functions: Path | None, gold: int,
             fill_gaps: bool, **options: Any) -> None:
    """Simulate tool-use conversations into the store.

    A user agent writes requests from the toolset's documentation, an assistant
    solves them with tool calls, a tool executor checks each call and answers it.
    Every message is stored as it happens; each trajectory ends complete or failed
    with a reason, and is auto-flagged. Ctrl-C or SIGTERM stops cleanly: finished trajectories
    are kept and the running ones are marked failed (cancelled). With --fill-gaps, three
    trajectories in four aim at the toolset's under-covered tools and parameters, in turn.
    """
    from curator.sim import Simulation
    from curator.sim.toolsets import resolve

    if sum(x is not None for x in (toolset, openapi, functions)) > 1:
        raise CuratorError("give one of --toolset, --openapi and --functions")
    config = settings.load(ctx.obj["config"])
    console = inert_console(stderr=True)
    with _open(ctx) as store:
        if openapi or functions:
            loaded = _toolset_from_file(openapi or functions, None)  # type: ignore[arg-type]
            store.add_toolset(loaded)
            toolset = loaded.name
        options["error_mix"] = _error_mix(options["error_mix"])
        sim_config = config.simulate.with_changes(toolset=toolset, **options)
        before = None
        if fill_gaps:
            before, sim_config = _aim_at_gaps(store, sim_config)
        sim = Simulation(store, sim_config, policy=config.flag.policy())
        backend = sim.backend
        note = " (offline: no model is called)" if backend.name == "scripted" else \
            f" at {sim_config.role_base_url('assistant') or 'api.openai.com'}"
        click.echo(visible(f"Simulating {sim_config.n} trajectories on toolset {sim.toolset.name} "
                           f"({len(sim.toolset.box.names)} tools) with the {backend.name} backend, "
                           f"model {backend.model('assistant')}{note}.", SIGN), err=True)
        summary = asyncio.run(_run(sim, console))
        if sim.store_error is not None:
            raise sim.store_error
        if gold:
            from curator.sim.gold import gold_items

            seen = [t.instruction for t in store.iter_trajectories() if t.toolset == sim.toolset.name]
            written = store.add_gold(gold_items(resolve(store, sim.toolset.name), gold, sim_config.seed, seen))
            console.print(inert(f"Stored {written} held-out gold items for {sim.toolset.name}."))
        if before is not None:
            from store.coverage import toolset_coverage

            change = _coverage_change(before, toolset_coverage(store, sim.toolset.name))
    click.echo(visible(summary.describe(), SIGN))
    if before is not None:
        inert_console().print(change)
    if summary.cancelled:
        click.echo(visible(f"Interrupted: kept {summary.complete} complete and {summary.failed} failed trajectories "
                           f"(running ones were marked failed: cancelled) in {ctx.obj['db']}.", SIGN), err=True)
        sys.exit(130)  # click's non-standalone mode would turn ctx.exit's code into a return value
    if summary.error and summary.complete == 0:
        raise CuratorError(summary.error)


def _aim_at_gaps(store: Store, sim_config: "SimConfig") -> tuple["ToolsetCoverage", "SimConfig"]:
    """The toolset's coverage now, and ``sim_config`` focused on its gaps (said on stderr)."""
    from store.coverage import toolset_coverage

    from curator.sim.toolsets import resolve

    name = resolve(store, sim_config.toolset).name
    before = toolset_coverage(store, name)
    gaps = before.gaps()
    if gaps:
        aims = "; ".join(f"{tool}" + (f" ({', '.join(params)})" if params else "") for tool, params in gaps.items())
        click.echo(visible(f"Filling the gaps of {name}: {len(gaps)} under-covered tool(s): {aims}", SIGN), err=True)
    else:
        click.echo(visible(f"No gaps in {name}: every tool is called and every parameter exercised; "
                           "simulating as usual.", SIGN), err=True)
    return before, sim_config.with_changes(focus=gaps)


def _coverage_change(before: "ToolsetCoverage", after: "ToolsetCoverage") -> Table:
    """The toolset's coverage before and after the run: parameters exercised, tools called, trajectories."""
    from curator.report_view import percent

    table = Table("toolset", "parameters exercised", "share", "tools called", "trajectories",
                  title="coverage before → after", title_justify="left")
    table.add_row(inert(after.toolset),
                  f"{before.parameters_exercised}/{before.parameters} → {after.parameters_exercised}/{after.parameters}",
                  f"{percent(before.parameter_share)} → {percent(after.parameter_share)}",
                  f"{before.tools_called}/{len(before.known_tools)} → {after.tools_called}/{len(after.known_tools)}",
                  f"{before.trajectories} → {after.trajectories}")
    return table


def _error_mix(text: str | None) -> dict[str, float] | None:
    if text is None:
        return None
    mix = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, weight = part.partition("=")
        try:
            mix[kind.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise InputError("--error-mix", f"weight of {kind.strip()!r} is not a number: {weight!r}") from None
    return mix


async def _run(sim: Any, console: Console) -> Any:
    """Follow the events with a progress bar; the first Ctrl-C (or SIGTERM) cancels the run, a second one aborts."""
    from curator.sim import SimulationDone, TrajectoryFinished

    loop = asyncio.get_running_loop()
    try:
        for signum in _STOP_SIGNALS:
            loop.add_signal_handler(signum, _interrupt, loop, sim)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
        pass
    complete = failed = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("simulating", total=sim.config.n)
        async for event in sim.events():
            if isinstance(event, TrajectoryFinished):
                complete += event.status == "complete"
                failed += event.status == "failed"
                progress.update(task, advance=1, description=f"{complete} complete, {failed} failed")
            elif isinstance(event, SimulationDone):
                return event.summary
    return sim.summary


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupt(loop: asyncio.AbstractEventLoop, sim: Any) -> None:
    for signum in _STOP_SIGNALS:
        loop.remove_signal_handler(signum)
    print("\nStopping: finishing the messages in flight (Ctrl-C again to abort)…", flush=True)
    sim.cancel()


@shared_options()
@click.group("toolset")
def toolset() -> None:
    """List, show, add and generate toolsets."""


@shared_options()
@toolset.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Toolsets in the store, and the demos that ship with curator."""
    from curator.sim.toolsets import demo_names

    with _open(ctx) as store:
        stored = {t.name: t for t in store.toolsets()}
    table = Table("toolset", "tools", "source", "description")
    for name, found in sorted(stored.items()):
        table.add_row(inert(name), str(len(found.tools)), inert(found.source), inert(found.description[:70]))
    for name in demo_names():
        if name not in stored:
            table.add_row(name, "", "demo (added on first use)", "")
    inert_console().print(table)


@shared_options()
@toolset.command("show")
@click.argument("name")
@click.pass_context
def show(ctx: click.Context, name: str) -> None:
    """A toolset's tools and parameters."""
    from curator.sim.toolsets import resolve

    with _open(ctx) as store:
        found = resolve(store, name)
    table = Table("tool", "parameters (* required)", "description", title=inert(f"{found.name}: {found.description}"))
    for tool in found.tools:
        required = set(tool.parameters.get("required") or [])
        params = ", ".join(f"{p}{'*' if p in required else ''}" for p in tool.parameters.get("properties") or {})
        table.add_row(inert(tool.name), inert(params), inert(tool.description))
    inert_console().print(table)


@shared_options()
@toolset.command("add")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="Toolset name (default: the file's name).")
@click.pass_context
def add(ctx: click.Context, file: Path, name: str | None) -> None:
    """Store the toolset of FILE: an OpenAPI 3 JSON document or a JSON list of function schemas."""
    loaded = _toolset_from_file(file, name)
    with _open(ctx) as store:
        store.add_toolset(loaded)
    click.echo(visible(f"Stored toolset {loaded.name} with {len(loaded.tools)} tools.", SIGN))


@shared_options()
@toolset.command("generate")
@click.argument("name", required=False)
@click.option("--description", default=None, help="What the API does.")
@click.option("--from", "from_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON list of {name, description} entries (like the public-apis list).")
@click.option("--backend", type=BACKEND_CHOICE, default=None)
@click.option("--base-url", default=None)
@click.option("--model", default=None)
@click.option("--attempts", type=click.IntRange(min=1), default=3, show_default=True,
              help="Specs asked for per API, each retry told why the last one was rejected.")
@click.option("--concurrency", type=click.IntRange(min=1), default=None)
@click.pass_context
def generate(ctx: click.Context, name: str | None, description: str | None, from_file: Path | None,
             attempts: int, **options: Any) -> None:
    """Generate toolsets from an API's name and description (ToolAlpaca's first step).

    The model writes the API's functions, then its OpenAPI 3 spec; the spec is
    validated and converted to function schemas, and a rejected one is sent back
    with the reason. The scripted backend designs a small plausible spec offline.
    """
    from store.formats.files import read_json

    from curator.sim.backends import make_backend
    from curator.sim.generate import generate_many, read_api_list

    if from_file:
        apis = read_api_list(read_json(from_file), str(from_file))
    elif name:
        apis = [(name, description or "")]
    else:
        raise CuratorError("give a NAME (with --description) or --from FILE")
    sim_config = settings.load(ctx.obj["config"]).simulate.with_changes(**options)
    backend = make_backend(sim_config)

    async def run() -> list[Any]:
        try:
            return await generate_many(backend, apis, sim_config.concurrency, attempts)
        finally:
            await backend.aclose()

    results = asyncio.run(run())
    stored = 0
    with _open(ctx) as store:
        for result in results:
            if result.toolset is not None:
                store.add_toolset(result.toolset)
                stored += 1
                click.echo(visible(f"{result.name}: {len(result.toolset.tools)} tools "
                                   f"({', '.join(t.name for t in result.toolset.tools)})", SIGN))
            else:
                click.echo(visible(f"{result.name}: not generated: {result.error}", SIGN), err=True)
    click.echo(f"Stored {stored} of {len(results)} toolsets ({sim_config.backend} backend).")
    if stored == 0:
        raise InputError("toolset generate", "no toolset could be generated")


COMMANDS = [simulate, toolset]
