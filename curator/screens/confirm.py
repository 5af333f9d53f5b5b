"""A yes / no question before an action that starts something (`a` on the runs screen)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Label, Static

from curator.screens.base import Dialog
from store.text import inert


class Confirm(Dialog[bool | None]):
    """True for y / Enter; False for n, None for Esc (both: do nothing)."""

    BINDINGS = [
        Binding("y,enter", "dismiss(True)", "Yes"),
        Binding("n", "dismiss(False)", "No"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm"):
            yield Label(inert(self.question), classes="dialog-title")
            if self.detail:
                yield Static(inert(self.detail), classes="dim")
            yield Label("y / Enter: yes · n / Esc: no")
