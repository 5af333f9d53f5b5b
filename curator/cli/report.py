"""`curator report`: the coverage report (``store.coverage``) on the terminal, as JSON, or as an HTML file."""
from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from curator.cli.opening import open_store
from curator.cli.options import shared_options
from curator.report_view import Section, charts, sections
from store.coverage import coverage
from store.text import SIGN, inert, inert_console, json_text, visible


@shared_options()
@click.command("report")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Also write the report as one self-contained HTML file (inline CSS and charts, no script).")
@click.option("--toolset", default=None, metavar="NAME", help="Report on this toolset only.")
@click.pass_context
def report(ctx: click.Context, as_json: bool, html_file: Path | None, toolset: str | None) -> None:
    """Coverage of the data: per toolset and tool, the calls, argument combinations and parameters never
    exercised, error codes (auto and human), decisions, and the instructions' length and vocabulary."""
    db = ctx.obj["db"]
    with open_store(db) as store:
        found = coverage(store, toolset)
    shown = sections(found)
    if html_file is not None:
        from curator.report_html import page
        from store.formats.files import write_lines

        scope = f"toolset {toolset}" if toolset else f"{len(found.toolsets)} toolset(s)"
        write_lines(html_file, [page("curator coverage report", f"{db} · {scope}", shown, charts(found))])
        click.echo(visible(f"wrote the coverage report of {db} to {html_file}", SIGN), err=True)
    if as_json:
        click.echo(json_text(json.dumps(found.to_dict(), indent=2, ensure_ascii=False)))
        return
    if html_file is not None:
        return
    console = inert_console()
    for section in shown:
        console.print(table(section))


def table(section: Section) -> Table:
    """A section as a rich table, every cell inert."""
    out = Table(title=section.title, title_justify="left", title_style="bold")
    for i, column in enumerate(section.columns):
        out.add_column(column, justify="right" if i in section.numeric else "left")
    for row in section.rows:
        out.add_row(*(inert(cell) for cell in row))
    if not section.rows:
        out.add_row(Text("none", "dim"), *[""] * (len(section.columns) - 1))
    return out


COMMANDS = [report]
