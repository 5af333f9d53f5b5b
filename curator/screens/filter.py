"""`/`: which trajectories the review queue holds — status, decision, tag code, toolset, free text (FTS5),
whether the near-duplicates `curator dedup` tagged are hidden — and in which order (oldest first, hardest
first by model perplexity, least confident judge first)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.widgets import Checkbox, Input, Label, Select

from curator.screens.base import Dialog
from store.text import inert
from store.db import REVIEW_FILTERS
from store.queue import ORDERS, QueueFilter
from store.records import STATUSES
from store.taxonomy import CODE_NAMES


class FilterDialog(Dialog[QueueFilter | None]):
    BINDINGS = [Binding("ctrl+s", "apply", "Apply")]

    def __init__(self, current: QueueFilter, toolsets: list[str]) -> None:
        super().__init__()
        self.current = current
        self.toolsets = toolsets

    def compose(self) -> ComposeResult:
        q = self.current
        with Vertical(classes="dialog", id="filter"):
            yield Label("Filter the queue — Enter in the text box or Ctrl+S applies, Esc cancels",
                        classes="dialog-title")
            with Grid(classes="fields"):
                yield Label("decision")
                yield Select([(r, r) for r in REVIEW_FILTERS], value=q.review, allow_blank=False, compact=True,
                             id="review")
                yield Label("status")
                yield Select([(s, s) for s in STATUSES], value=q.status or Select.NULL, prompt="any", compact=True,
                             id="status")
                yield Label("tag")
                yield Select([(c, c) for c in CODE_NAMES], value=q.tag or Select.NULL, prompt="any", compact=True,
                             id="tag")
                yield Label("toolset")
                yield Select([(inert(t), t) for t in self.toolsets], value=q.toolset or Select.NULL, prompt="any",
                             compact=True, id="toolset")
                yield Label("text")
                yield Input(q.text, placeholder="in any message (SQLite FTS5 query)", compact=True, id="text")
                yield Label("duplicates")
                yield Checkbox("hide those tagged duplicate (curator dedup)", q.hide_duplicates, compact=True,
                               id="hide-duplicates")
                yield Label("order")
                yield Select([(o.describe, name) for name, o in ORDERS.items()], value=q.order, allow_blank=False,
                             compact=True, id="order")

    def on_mount(self) -> None:
        self.query_one("#text", Input).focus()

    def on_input_submitted(self) -> None:
        self.action_apply()

    def action_apply(self) -> None:
        def value(name: str) -> str | None:
            chosen = self.query_one(f"#{name}", Select).value
            return None if chosen is Select.NULL else str(chosen)

        self.dismiss(QueueFilter(status=value("status"), review=value("review") or "pending", tag=value("tag"),
                                 toolset=value("toolset"), text=self.query_one("#text", Input).value.strip(),
                                 order=value("order") or self.current.order,
                                 hide_duplicates=self.query_one("#hide-duplicates", Checkbox).value))
