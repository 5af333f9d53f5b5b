"""`?`: every key of every screen, read from the bindings themselves so it cannot drift."""
from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from curator.screens.base import described
from curator.screens.home import HomeScreen
from curator.screens.review import ReviewScreen
from curator.screens.runs import RunsScreen
from curator.screens.watch import WatchScreen
from curator.widgets.queue_view import QueueView


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", key_display="esc")]

    def compose(self) -> ComposeResult:
        areas: list[tuple[str, list[BindingType]]] = [
            ("Review", ReviewScreen.BINDINGS),
            ("Review queue (after Tab)", QueueView.BINDINGS),
            ("Watch", WatchScreen.BINDINGS),
            ("Runs", RunsScreen.BINDINGS),
            ("Home", HomeScreen.BINDINGS),
            ("Everywhere", [*self.app.BINDINGS, Binding("ctrl+p", "command_palette", "Command palette")]),
        ]
        with VerticalScroll(classes="dialog", id="help"):
            yield Label("Keys — Esc closes", classes="dialog-title")
            for title, bindings in areas:
                yield Static(_table(title, bindings))


def _table(title: str, bindings: list[BindingType]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold", min_width=16)
    table.add_column()
    for binding in bindings:
        if isinstance(binding, Binding) and binding.description:
            keys = " / ".join(_key(k) for k in binding.key.split(","))
            table.add_row(keys, described(binding))
    return table


def _key(key: str) -> str:
    return {"slash": "/", "question_mark": "?", "space": "space", "up": "↑", "down": "↓"}.get(key, key)
