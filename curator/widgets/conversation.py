"""The trajectory as a conversation: one panel per message, drawn with the line API.

Each message is rendered once into strips (a Rich panel: role, flags and mask in
its border, the content, tool calls with pretty-printed arguments, a saved
correction); ``render_line`` only crops the strips in view. The cursor is the
message that `t`, `m`, `e` and `n` act on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.json import JSON
from rich.panel import Panel
from rich.style import Style
from rich.text import Text
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from store import Correction, Message, Tag, Trajectory

#: Long system prompts and tool answers are cut to this many lines.
MAX_BODY_LINES = 14
_BOLD = Style(bold=True)


@dataclass
class Shown:
    """What the view shows: a trajectory and the review work attached to its messages."""

    trajectory: Trajectory
    corrections: dict[int, Correction] = field(default_factory=dict)
    notes: dict[int | None, list[str]] = field(default_factory=dict)


class ConversationView(ScrollView, can_focus=False):
    COMPONENT_CLASSES = {
        "conversation--border",
        "conversation--cursor",
        "conversation--flag",
        "conversation--masked",
        "conversation--call",
        "conversation--correction",
        "conversation--note",
        "conversation--dim",
    }

    cursor: reactive[int] = reactive(0, init=False, always_update=True)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.shown: Shown | None = None
        self._strips: list[Strip] = []
        self._spans: list[tuple[int, int]] = []  # per message: first line, line count
        self._width = 0

    # -- what to show ----------------------------------------------------------------------------
    def show(self, shown: Shown | None, *, cursor: int | None = None, follow: bool = False) -> None:
        """Show a trajectory; keep the cursor when it is the same one, or put it where asked."""
        same = shown is not None and self.shown is not None and shown.trajectory.id == self.shown.trajectory.id
        self.shown = shown
        count = len(shown.trajectory.messages) if shown else 0
        if cursor is None:
            cursor = self.cursor if same else _first_step(shown)
        if follow:
            cursor = count - 1
        if not same:
            self.scroll_home(animate=False, immediate=True)
        self.cursor = max(0, min(cursor, count - 1))  # renders, and scrolls the cursor into view

    @property
    def message(self) -> Message | None:
        """The message under the cursor."""
        if self.shown is None or not self.shown.trajectory.messages:
            return None
        return self.shown.trajectory.messages[self.cursor]

    def move(self, delta: int) -> None:
        if self.shown and self.shown.trajectory.messages:
            self.cursor = max(0, min(self.cursor + delta, len(self.shown.trajectory.messages) - 1))

    def watch_cursor(self) -> None:
        self._render_all()
        self.call_after_refresh(self._scroll_to_cursor)  # once the new virtual size is laid out

    def _scroll_to_cursor(self) -> None:
        if self.cursor < len(self._spans):
            top, height = self._spans[self.cursor]
            self.scroll_to_region(Region(0, top, 1, height), animate=False, top=height > self.size.height,
                                  immediate=True)

    # -- rendering -------------------------------------------------------------------------------
    def on_resize(self) -> None:
        if self.scrollable_content_region.width != self._width:
            self._render_all()

    def _render_all(self) -> None:
        width = self._width = max(self.scrollable_content_region.width, 20)
        self._strips, self._spans = [], []
        if self.shown is not None:
            console = self.app.console
            options = console.options.update_width(width)
            for i, message in enumerate(self.shown.trajectory.messages):
                lines = console.render_lines(self._panel(message, i == self.cursor), options)
                self._spans.append((len(self._strips), len(lines)))
                self._strips.extend(Strip(line, width) for line in lines)
        self.virtual_size = Size(width, len(self._strips))
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        if index >= len(self._strips):
            return Strip.blank(width, self.rich_style)
        return self._strips[index].crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def _panel(self, message: Message, selected: bool) -> Panel:
        assert self.shown is not None
        index = message.index if message.index is not None else 0
        tags = [t for t in self.shown.trajectory.tags if t.message_index == index]
        border = self.get_component_rich_style("conversation--cursor" if selected else "conversation--border")
        return Panel(
            Group(*self._body(message, index)),
            title=Text.assemble((f" #{index} {message.role} ", border), *self._marks(message, tags)),
            title_align="left",
            border_style=border,
            padding=(0, 1),
        )

    def _marks(self, message: Message, tags: list[Tag]) -> list[Text]:
        flag = self.get_component_rich_style("conversation--flag")
        marks = [Text(f" ⚑ {t.code} ({t.source}) ", flag) for t in tags]
        if message.role == "assistant" and message.weight == 0:
            marks.append(Text(f" ⊘ masked ({message.weight_source}) ",
                              self.get_component_rich_style("conversation--masked")))
        return marks

    def _body(self, message: Message, index: int) -> list[RenderableType]:
        assert self.shown is not None
        dim = self.get_component_rich_style("conversation--dim")
        parts: list[RenderableType] = []
        if message.content and message.role == "tool":
            parts.append(_json_or(message.content, dim))
        elif message.content:
            text = Text(message.content)
            parts.append(_cut(text, dim) if message.role == "system" else text)
        if message.raw and not message.tool_calls:
            parts.append(Text.assemble(("unparsed output: ", dim), message.raw))
        call_style = self.get_component_rich_style("conversation--call")
        for call in message.tool_calls or []:
            parts.extend(_call(call, "→ ", call_style))
        correction = self.shown.corrections.get(index)
        if correction is not None:
            fix_style = self.get_component_rich_style("conversation--correction")
            for call in correction.tool_calls:
                parts.extend(_call(call, "✎ corrected → ", fix_style))
        note_style = self.get_component_rich_style("conversation--note")
        parts.extend(Text(f"✍ {note}", note_style) for note in self.shown.notes.get(index, []))
        return parts or [Text("(empty)", dim)]


def _first_step(shown: Shown | None) -> int:
    """Open a trajectory on its first flagged message, else on the user's request."""
    if shown is None:
        return 0
    flagged = sorted(t.message_index for t in shown.trajectory.tags if t.message_index is not None)
    if flagged:
        return flagged[0]
    return next((i for i, m in enumerate(shown.trajectory.messages) if m.role == "user"), 0)


def _call(call: dict[str, Any], prefix: str, style: Style) -> list[RenderableType]:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    head = Text.assemble((prefix, style), (str(function.get("name")), style + _BOLD))
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
    except json.JSONDecodeError:
        return [head, Text(str(arguments))]
    return [head, JSON.from_data(parsed if parsed is not None else {}, indent=2)]


def _json_or(content: str, dim: Style) -> RenderableType:
    """Tool feedback: pretty JSON when it parses, else the text; cut when long."""
    try:
        text = json.dumps(json.loads(content), indent=2, ensure_ascii=False)
    except (json.JSONDecodeError, TypeError):
        return _cut(Text(content), dim)
    return _cut(JSON(text).text, dim)


def _cut(text: Text, dim: Style) -> Text:
    lines = text.split(allow_blank=True)
    if len(lines) <= MAX_BODY_LINES:
        return text
    kept = Text("\n").join(lines[:MAX_BODY_LINES])
    kept.append(f"\n… {len(lines) - MAX_BODY_LINES} more lines", dim)
    return kept

