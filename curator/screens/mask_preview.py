"""`p` on the review screen: the selected trajectory's tokens coloured by their loss weight, before `T` trains."""
from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, Static

from curator.mask_preview import Preview, PreviewError, preview
from curator.screens.base import Dialog
from curator.settings import TrainSettings
from store.text import BREAK, by_weight, inert

LEGEND = Text.assemble(("trained", "bold green"), "  ", ("key token ×w", "bold black on yellow"), "  ",
                       ("masked or prompt", "dim"))


class MaskPreview(Dialog[None]):
    BINDINGS = [Binding("p", "dismiss(None)", "Close", show=False)]

    def __init__(self, record: dict[str, Any], settings: TrainSettings) -> None:
        super().__init__()
        self.record = record
        self.settings = settings
        #: The preview once the training process made it (None while it runs, or when it failed).
        self.shown: Preview | None = None

    def compose(self) -> ComposeResult:
        base = self.settings.config().base_model
        with Vertical(classes="dialog", id="mask-preview"):
            yield Label(inert(f"What SFT trains of {self.record['id']} on {base} — Esc closes"),
                        classes="dialog-title")
            yield Static(LEGEND)
            yield Static(Text("rendering with the base model's tokenizer and chat template…"), id="mask-summary")
            with VerticalScroll(id="mask-tokens"):
                yield Static(id="mask-text")

    def on_mount(self) -> None:
        self._make()

    @work(thread=True, exclusive=True)
    def _make(self) -> None:
        try:
            made = preview(self.record, self.settings)
        except PreviewError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._show, made)

    def _show(self, made: Preview) -> None:
        self.shown = made
        self.query_one("#mask-summary", Static).update(inert(made.summary(), newline=BREAK))
        self.query_one("#mask-text", Static).update(by_weight(made.tokens))

    def _failed(self, problem: str) -> None:
        self.query_one("#mask-summary", Static).update(inert(f"No preview: {problem}", "bold red", BREAK))
