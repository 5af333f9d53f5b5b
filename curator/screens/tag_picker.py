"""`t`: pick an error code for the message under the cursor; a code already on it is removed."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from curator.screens.base import Dialog
from store.taxonomy import CODES


class TagPicker(Dialog[str | None]):
    """Returns the chosen code, or None when cancelled."""

    def __init__(self, message_label: str, present: dict[str, str]) -> None:
        super().__init__()
        self.message_label = message_label
        self.present = present  # code -> source

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Tag {self.message_label} — Enter toggles the code, Esc cancels", classes="dialog-title")
            yield OptionList(*(self._option(i, c.code, c.meaning) for i, c in enumerate(CODES)), id="codes")

    def _option(self, i: int, code: str, meaning: str) -> Option:
        source = self.present.get(code)
        mark = f"✓ ({source})" if source else ""
        return Option(Text.assemble((f"{code:<20}", "bold"), f"{mark:<10}", (meaning, "dim")), id=code)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
