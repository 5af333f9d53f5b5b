"""`curator`: the TUI by default, and subcommands that mirror its actions.

Subcommands live in one module per area and are imported only when called, so
`curator --help` and the TUI start fast; none of them imports torch (training
runs in a subprocess).
"""
from __future__ import annotations

import importlib
import importlib.util
import sqlite3
import sys

import click

from curator.cli.options import shared_options
from store.errors import CuratorError, Terminated
from store.redaction import redact

#: command name -> module under curator.cli whose ``COMMANDS`` list holds it.
LAZY_COMMANDS: dict[str, str] = {
    "import": "dataset",
    "export": "dataset",
    "stats": "dataset",
    "report": "report",
    "agreement": "agreement",
    "simulate": "simulate",
    "toolset": "simulate",
    "flag": "flag",
    "judge": "judge",
    "dedup": "dedup",
    "merge": "team",
    "assign": "team",
    "train": "training",
    "eval": "training",
    "runs": "training",
    "review": "app",
    "watch": "app",
    "demo": "app",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._available()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        found = super().get_command(ctx, name)
        if found is not None or name not in LAZY_COMMANDS:
            return found
        return _load(name)

    @staticmethod
    def _available() -> list[str]:
        return [name for name, module in LAZY_COMMANDS.items() if importlib.util.find_spec(f"curator.cli.{module}")]


def _load(name: str) -> click.Command | None:
    module_name = f"curator.cli.{LAZY_COMMANDS[name]}"
    if importlib.util.find_spec(module_name) is None:
        return None
    module = importlib.import_module(module_name)
    return next((c for c in module.COMMANDS if c.name == name), None)


@click.group(cls=LazyGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@shared_options(root=True)
@click.version_option(package_name="tool-curator")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """curator: simulate tool-use conversations, review them by keyboard, train on them.

    With no subcommand, opens the app on the store. --db, --config and --annotator
    go before the subcommand or after it.
    """
    ctx.ensure_object(dict)
    if ctx.invoked_subcommand is None:
        if importlib.util.find_spec("curator.cli.app") is None:
            click.echo(ctx.get_help())
            return
        importlib.import_module("curator.cli.app").open_app(ctx.obj, screen="home")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors are one line on stderr and a non-zero exit, never a traceback."""
    try:
        code = cli.main(args=argv, prog_name="curator", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.message = _inert(exc.message)  # usage errors quote what was typed, others name data
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (CuratorError, OSError) as exc:
        click.echo(f"error: {_inert(redact(str(exc)))}", err=True)  # may quote a record: inert, one line
        sys.exit(1)
    except sqlite3.Error as exc:  # e.g. "database or disk is full" on a write no command expected to fail
        from curator.cli.opening import OPENED

        where = f"{OPENED[-1]}: " if OPENED else ""
        click.echo(f"error: {where}{_inert(redact(str(exc)))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Terminated:
        click.echo("Terminated.", err=True)
        sys.exit(143)
    # Without standalone mode click returns a command's ctx.exit(code) instead of exiting.
    if isinstance(code, int) and code:
        sys.exit(code)


def _inert(message: str) -> str:
    """An error message on one line with what it quotes made visible (imported only when there is an error)."""
    from store.text import SIGN, visible

    return visible(message, SIGN)
