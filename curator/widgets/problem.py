"""Why a dialog did not do what was asked."""
from __future__ import annotations

from textual.widgets import Static

from store.text import inert


class Problem(Static):
    """A dialog's problem line, under its title (seen even when a short terminal cuts the dialog's bottom);
    it takes no room until there is a problem to show."""

    def show(self, text: str) -> None:
        self.update(inert(text))
        self.display = True
