"""A queue of trajectories of any length, paged from SQLite into a line-API view.

Only a window of rows around what is on screen is in memory (``store.queue``
fetches it by offset); ``render_line`` draws one row per line, so 100,000
trajectories cost what 100 do. The total comes from the screen, which counts in
a worker: until then the view knows the rows it has fetched.
"""
from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip

from curator.widgets.line_view import LineView
from store import Store
from store.queue import ORDERS, QueueFilter, QueueRow, window
from store.text import SIGN, visible

#: Rows fetched per page; a page around the cursor covers any screen.
PAGE = 100
DECISION_MARKS = {"accept": "✓", "reject": "✗", "skip": "»", "disputed": "≠", None: "·"}
#: Orders by a score: the queue shows each row's score.
SCORED = frozenset(name for name, order in ORDERS.items() if order.score)


def _score(value: float | None) -> str:
    """A score in at most 7 characters; ``–`` for a trajectory without one."""
    if value is None:
        return "–"
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.1e}"


class QueueView(LineView, can_focus=True):
    BINDINGS = [
        Binding("up", "move(-1)", "Previous", show=False),
        Binding("down", "move(1)", "Next", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
    ]
    COMPONENT_CLASSES = {"queue--cursor", "queue--flag", "queue--masked", "queue--dim"}

    cursor: reactive[int] = reactive(0, init=False)

    class Highlighted(Message):
        """The row under the cursor changed (None: the queue is empty)."""

        def __init__(self, row: QueueRow | None) -> None:
            super().__init__()
            self.row = row

    def __init__(self, store: Store, queue_filter: QueueFilter, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store
        self.filter = queue_filter  # which trajectories the queue holds, in which order
        self.total = 0
        self._start = 0
        self._rows: list[QueueRow] = []

    # -- data ------------------------------------------------------------------------------------
    def reload(self, queue_filter: QueueFilter | None = None) -> None:
        """Fetch the page around the cursor again (after a decision, a new ``queue_filter`` or a change in the store).

        The caller shows the row now under the cursor; ``Highlighted`` is only posted when the cursor moves.
        """
        if queue_filter is not None and queue_filter != self.filter:
            self.filter = queue_filter
            self.set_reactive(QueueView.cursor, 0)
            self.total = 0
        self._fetch(max(0, self.cursor - PAGE // 2))
        known = self._start + len(self._rows)
        if len(self._rows) < PAGE and (self._rows or self._start == 0):  # the page reached the end
            self.total = known
        self.total = max(self.total, known)
        self._resize()
        self._clamp()

    def set_total(self, total: int) -> None:
        """The exact count, from the screen's counting worker."""
        if total != self.total:
            self.total = total
            self._resize()
            self._clamp()

    def row(self, index: int) -> QueueRow | None:
        if not 0 <= index < self.total:
            return None
        if not self._start <= index < self._start + len(self._rows):
            self._fetch(max(0, index - PAGE // 2))
        offset = index - self._start
        return self._rows[offset] if 0 <= offset < len(self._rows) else None

    @property
    def current(self) -> QueueRow | None:
        return self.row(self.cursor)

    @property
    def loaded_rows(self) -> int:
        """How many rows are in memory now: one page around the cursor at most, whatever ``total`` is."""
        return len(self._rows)

    def select(self, index: int) -> None:
        self.cursor = max(0, min(index, self.total - 1))

    def _fetch(self, start: int) -> None:
        self._start = start
        self._rows = window(self.store, self.filter, start, PAGE)

    def _resize(self) -> None:
        self.virtual_size = Size(self.scrollable_content_region.width, self.total)
        self.refresh()

    def _clamp(self) -> None:
        if self.total and self.cursor >= self.total:
            self.cursor = self.total - 1

    # -- cursor ----------------------------------------------------------------------------------
    def watch_cursor(self, old: int, new: int) -> None:
        self.scroll_to(y=max(0, min(self.scroll_y, new), new - self.scrollable_content_region.height + 1),
                       animate=False, immediate=True)
        self.refresh()
        self.post_message(self.Highlighted(self.current))

    def action_move(self, delta: int) -> None:
        self.select(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self.select(self.cursor + direction * max(1, self.scrollable_content_region.height - 1))

    def action_jump(self, index: int) -> None:
        self.select(index if index >= 0 else self.total - 1)

    # -- drawing ---------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        index = self.scroll_offset.y + y
        row = self.row(index)
        styles = self.line_styles()
        if row is None:
            return Strip.blank(width, styles[""])
        base = styles["cursor"] if index == self.cursor else styles[""]
        return Strip(self._segments(row, base, styles)).crop_extend(0, width, base).apply_style(base)

    def _segments(self, row: QueueRow, base: Style, styles: dict[str, Style]) -> list[Segment]:
        dim, flag, masked = styles["dim"], styles["flag"], styles["masked"]
        return [
            Segment(f" {DECISION_MARKS.get(row.decision, '?')} ", base),
            Segment(f"⚑{row.flags:<2}" if row.flags else "   ", base + flag),
            Segment(f"⊘{row.masked:<2}" if row.masked else "   ", base + masked),
            Segment(f"{row.status[:8]:<9}", base + dim),
            *([Segment(f"{_score(row.score):>7} ", base + dim)] if self.filter.order in SCORED else []),
            Segment(visible(" ".join(row.instruction.split()), SIGN), base),
        ]
