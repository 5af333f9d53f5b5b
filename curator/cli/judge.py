"""`curator judge`: the semantic judge over the store (does each call do what was asked, is the answer backed)."""
from __future__ import annotations

import asyncio
import json

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from curator.cli.opening import command_config, open_store
from curator.cli.options import shared_options
from curator.judging import make_judge
from curator.judging.config import SCRIPTED
from curator.judging.run import UNREADABLE, JudgeSummary, cases, judge_cases, unjudged
from store import REVIEW_FILTERS
from store.errors import CuratorError
from store.text import BREAK, inert_console, visible


@shared_options()
@click.command("judge")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Judge at most N trajectories.")
@click.option("--review", type=click.Choice(REVIEW_FILTERS), default="all", show_default=True,
              help="Which trajectories, by review decision.")
@click.option("--again", is_flag=True, help="Also re-judge trajectories the judge has judged before.")
@click.option("--judge", "kind", type=click.Choice(["openai", SCRIPTED]), default=None,
              help="scripted: the offline judge (model 'scripted'); openai: the model of --model / [judge] model.")
@click.option("--model", default=None, help="The judge model (default: [judge] model).")
@click.option("--base-url", default=None, help="Its OpenAI-compatible server, e.g. http://localhost:8000/v1.")
@click.option("--api-key-env", default=None, help="Environment variable that holds the API key (never the key).")
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Requests at once.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_context
def judge(ctx: click.Context, limit: int | None, review: str, again: bool, kind: str | None, as_json: bool,
          **options: str | int | None) -> None:
    """Ask a judge model about every finished trajectory: does each call match the user's request (tool and
    argument values), and is the final answer supported by the tool results?

    A call that does not becomes a content_error tag on its message, an unsupported answer an
    answer_unsupported tag, each with the judge's reason as its note; the mask policy then masks them.
    Calls the flagger or a human already masked are not asked about. Human tags and un-tags win; re-judging
    replaces only the judge's own tags. Trajectories judged before are skipped unless --again.
    """
    if kind == SCRIPTED:
        options["model"] = SCRIPTED
    settings = command_config()
    config = settings.judge.with_changes(**options)  # a bad setting is refused before the store is opened
    if kind == "openai" and config.scripted:
        raise CuratorError("--judge openai needs a model: give --model or set [judge] model")
    policy = settings.flag.policy()
    with open_store(ctx.obj["db"]) as store:
        ids = store.trajectory_ids(review=review)
        if not again:
            ids = unjudged(store, ids)
        expected = min(len(ids), limit or len(ids))
        chosen = make_judge(config)
        found = cases(store, ids, policy, limit)
        console = inert_console(stderr=True)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())

        async def run() -> JudgeSummary:
            try:
                with Progress(*columns, console=console, transient=True,
                              disable=not console.is_terminal) as progress:
                    task = progress.add_task("judging", total=expected)
                    return await judge_cases(store, chosen, found, policy,
                                             on_judged=lambda s: progress.update(task, advance=1))
            finally:
                await chosen.aclose()

        summary = asyncio.run(run())
    if as_json:
        click.echo(json.dumps(summary.to_json()))  # ASCII: nothing a server sent reaches the terminal raw
    else:
        click.echo(visible(render_summary(summary), BREAK))
    if summary.judged == 0 and (summary.unreadable or summary.failed):
        ctx.exit(1)


def render_summary(summary: JudgeSummary) -> str:
    lines = [f"{summary.judged} trajectories judged by {summary.model}: {summary.content_errors} of "
             f"{summary.calls} calls content_error, {summary.unsupported} of {summary.answers} answers unsupported, "
             f"{summary.masked} messages masked"]
    if summary.requests:
        lines.append(f"  {summary.requests} requests, {summary.retries} retries")
    for label, rows in ((UNREADABLE, summary.unreadable), ("judge request failed", summary.failed)):
        if rows:
            lines.append(f"  {len(rows)} trajectories left as they were: {label}")
            lines += [f"    {trajectory}: {reason}" for trajectory, reason in rows[:10]]
            if len(rows) > 10:
                lines.append(f"    … and {len(rows) - 10} more (--json lists every one)")
    return "\n".join(lines)


COMMANDS = [judge]
