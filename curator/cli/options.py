"""The options every command takes, before its name or after it: ``--db``, ``--config``, ``--annotator``.

``curator --db x.db stats`` and ``curator stats --db x.db`` mean the same: each
option's value lands in the root context's ``obj`` (``obj["db"]`` …), where
every command reads it; given after the command's name, it wins. The group
declares them with ``shared_options(root=True)`` (defaults, ``CURATOR_DB``) and
every command and subcommand with ``@shared_options()``.
"""
from __future__ import annotations

from typing import Any, Callable, TypeVar

import click
from click.core import ParameterSource

from store import DEFAULT_PATH
from store.errors import CuratorError

F = TypeVar("F", bound=Callable[..., Any])


def shared_options(root: bool = False) -> Callable[[F], F]:
    """``--db``, ``--config`` and ``--annotator`` on a command; on the ``root`` group with their defaults."""
    also = "" if root else " Also taken before the command's name."
    stored = {"expose_value": False, "callback": _remember}
    options = [
        click.option("--db", "db", default=DEFAULT_PATH if root else None, show_default=root,
                     envvar="CURATOR_DB" if root else None, metavar="FILE",
                     help=f"The store: one SQLite file.{also}", **stored),
        click.option("--config", "config", default=None, type=click.Path(dir_okay=False),
                     help=f"Config file (default: ./curator.toml when present).{also}", **stored),
        click.option("--annotator", "annotator", default=None, metavar="NAME",
                     help="Who records the reviews, tags and notes (default: [review] annotator, else the OS "
                          f"user).{also}", **stored),
    ]

    def decorate(command: F) -> F:
        # on a command each option is appended; on a function click reverses them when it makes the command
        for option in options if isinstance(command, click.Command) else reversed(options):
            command = option(command)
        return command

    return decorate


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keep a given value (or the group's default) in the root context's ``obj`` for every command to read;
    an option not given leaves what is there (None when nothing is)."""
    obj = ctx.find_root().ensure_object(dict)
    if value is None:
        obj.setdefault(param.name, None)
        return None
    if param.name == "annotator" and not value.strip():
        raise CuratorError("--annotator: must name the annotator, got an empty string")
    obj[param.name] = value
    return value


def given(ctx: click.Context, name: str) -> bool:
    """Whether the user gave shared option ``name`` (or its environment variable), before or after the command."""
    sources = (c.get_parameter_source(name) for c in (ctx, ctx.find_root()))
    return any(source not in (None, ParameterSource.DEFAULT) for source in sources)
