"""The footer every screen shows."""
from __future__ import annotations

from textual.widgets import Footer


class KeyFooter(Footer):
    """Compact and without Textual's `^p palette` key, so a screen's most used keys, `? Help` and `q Quit`
    fit an 80-column terminal. Every other key has ``show=False``: `?` lists them all (ctrl+p among them)
    and the command palette runs any of them."""

    def __init__(self) -> None:
        super().__init__(compact=True, show_command_palette=False)
