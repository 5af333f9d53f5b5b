"""How every command opens the store: refusing what is not one, and reaping what a hard stop left behind."""
from __future__ import annotations

import click

from curator.reaping import reap
from store import Store

#: The stores this process opened, latest last: what an error from SQLite that names no file is about.
OPENED: list[str] = []


def open_store(db: str, *, create: bool = False) -> Store:
    """The store at ``db`` (made when ``create``), after one line on stderr for each interrupted writer it
    finds (``curator.reaping``): trajectories and runs a killed process left running are marked failed."""
    store = Store.open(db, create=create)
    OPENED.append(db)
    try:
        for line in reap(store):
            click.echo(f"{db}: {line}", err=True)
    except BaseException:
        store.close()
        raise
    return store


def reap_store(db: str) -> None:
    """``open_store`` for a command that opens the store again itself (``train``, ``eval``)."""
    open_store(db).close()
