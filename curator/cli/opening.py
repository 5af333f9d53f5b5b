"""How every command opens the store: refusing what is not one, reaping what a hard stop left behind, and
deciding by the configured rule."""
from __future__ import annotations

from pathlib import Path

import click

from curator.reaping import reap
from curator.settings import Config, load
from store import Store, StoreError

#: The stores this process opened, latest last: what an error from SQLite that names no file is about.
OPENED: list[str] = []
#: The store `curator demo` makes or reuses when --db is not given.
DEMO_DB = "curator-demo.db"
#: Where the running command keeps its config once read (in the root context's ``obj``).
_CONFIG_KEY = "settings"


def open_store(db: str, *, create: bool = False) -> Store:
    """The store at ``db`` (made when ``create``), after one line on stderr for each interrupted writer it
    finds (``curator.reaping``): trajectories and runs a killed process left running are marked failed.

    Its current decisions follow the config's ``[review] rule`` (recomputed only when the rule changed),
    so exports, ``T`` and the review queue read them by the rule this command runs under.
    """
    rule = command_config().review.rule  # a bad config is refused before the store is touched
    if not create and not Path(db).is_file() and Path(DEMO_DB).is_file():
        raise StoreError(f"no store at {db}; the demo wrote {DEMO_DB}: pass --db {DEMO_DB}")
    store = Store.open(db, create=create)
    OPENED.append(db)
    try:
        for line in reap(store):
            click.echo(f"{db}: {line}", err=True)
        store.set_decision_rule(rule)
    except BaseException:
        store.close()
        raise
    return store


def command_config() -> Config:
    """The running command's config (``--config``, else ./curator.toml, else the defaults), read once a command."""
    context = click.get_current_context(silent=True)
    obj = context.find_root().obj if context is not None else None
    if not isinstance(obj, dict):
        return load()
    if _CONFIG_KEY not in obj:
        obj[_CONFIG_KEY] = load(obj.get("config"))
    return obj[_CONFIG_KEY]


def reap_store(db: str) -> None:
    """``open_store`` for a command that opens the store again itself (``train``, ``eval``)."""
    open_store(db).close()
