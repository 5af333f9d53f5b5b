"""The trajectory as a conversation, drawn with the line API.

Each message is rendered once into strips (a header with its role, flags and
mask; the content, tool calls with pretty-printed arguments, a saved correction,
notes and the reasons of tags (the semantic judge's; the flagger's would repeat the
tool's answer below them) behind a gutter); ``render_line`` only crops the strips in view. The cursor is the
message that `t`, `m`, `e` and `n` act on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.strip import Strip

from curator.widgets.line_view import LineView
from store import Correction, Message, Tag, Trajectory
from store.safe_json import loads
from store.text import BREAK, SIGN, inert, json_text, visible

#: Long system prompts and tool answers are cut to this many lines.
MAX_BODY_LINES = 14
_BOLD = Style(bold=True)


@dataclass
class Shown:
    """What the view shows: a trajectory and the review work attached to its messages."""

    trajectory: Trajectory
    corrections: dict[int, Correction] = field(default_factory=dict)
    notes: dict[int | None, list[str]] = field(default_factory=dict)


class ConversationView(LineView, can_focus=False):
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

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if self.is_mounted and self.shown is not None:  # the strips hold the old theme's colours
            self._render_all()

    def _render_all(self) -> None:
        width = self._width = max(self.scrollable_content_region.width, 20)
        self._styles = self.line_styles()
        self._strips, self._spans = [], []
        if self.shown is not None:
            for i, message in enumerate(self.shown.trajectory.messages):
                strips = self._message_strips(message, i == self.cursor, width)
                self._spans.append((len(self._strips), len(strips)))
                self._strips.extend(strips)
        self.virtual_size = Size(width, len(self._strips))
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        base = self.line_styles()[""]
        if index >= len(self._strips):
            return Strip.blank(width, base)
        return self._strips[index].crop_extend(scroll_x, scroll_x + width, base)

    def _message_strips(self, message: Message, selected: bool, width: int) -> list[Strip]:
        """A header line (role, flags, mask), the body behind a gutter, a blank line."""
        assert self.shown is not None
        index = message.index if message.index is not None else 0
        tags = [t for t in self.shown.trajectory.tags if t.message_index == index]
        border = self._styles["cursor" if selected else "border"]
        console = self.app.console
        header = Text.assemble(("▌" if selected else "╭", border), (f" #{index} {message.role} ", border + _BOLD),
                               *self._marks(message, tags), no_wrap=True, overflow="ellipsis")
        options = console.options.update(width=width - 2, no_wrap=False)
        body = console.render_lines(self._body(message, index), options, pad=False)
        gutter = Segment("▌ " if selected else "│ ", border)
        return [
            Strip(console.render_lines(header, console.options.update_width(width), pad=False)[0]),
            *(Strip([gutter, *line]) for line in body),
            Strip.blank(width),
        ]

    def _marks(self, message: Message, tags: list[Tag]) -> list[Text]:
        flag = self._styles["flag"]
        marks = [inert(f" ⚑ {t.code} ({t.source}) ", flag) for t in tags]
        assert self.shown is not None
        if message.role == "assistant" and message.index in self.shown.corrections:
            # what every export and run reads: the original at weight 0, the fix as an example of its own
            marks.append(Text(" ⊘ masked (corrected: the fix trains) ", self._styles["masked"]))
        elif message.role == "assistant" and message.weight == 0:
            marks.append(inert(f" ⊘ masked ({message.weight_source}) ", self._styles["masked"]))
        return marks

    def _body(self, message: Message, index: int) -> Text:
        """The message as one Text (one Text renders several times faster than a group of renderables)."""
        assert self.shown is not None
        dim = self._styles["dim"]
        parts: list[Text] = []
        if message.content and message.role == "tool":
            parts.append(_cut(inert(pretty_json(message.content), newline=BREAK), dim))
        elif message.content:
            text = inert(message.content, newline=BREAK)
            parts.append(_cut(text, dim) if message.role == "system" else text)
        if message.raw and not message.tool_calls:
            parts.append(Text.assemble(("unparsed output: ", dim), visible(message.raw, BREAK)))
        call_style = self._styles["call"]
        parts.extend(call_text(call, "→ ", call_style) for call in message.tool_calls or [])
        correction = self.shown.corrections.get(index)
        if correction is not None:
            fix_style = self._styles["correction"]
            parts.extend(call_text(call, "✎ corrected → ", fix_style) for call in correction.tool_calls)
        note_style = self._styles["note"]
        parts.extend(inert(f"✍ {note}", note_style, BREAK) for note in self.shown.notes.get(index, []))
        parts.extend(Text.assemble(inert(f"⚑ {tag.code} ({tag.annotator or tag.source}): ", self._styles["flag"]),
                                   inert(tag.note, note_style, BREAK))
                     for tag in self.shown.trajectory.tags
                     if tag.message_index == index and tag.note and tag.origin != "flagger")
        return Text("\n").join(parts) if parts else Text("(empty)", dim)


def _first_step(shown: Shown | None) -> int:
    """Open a trajectory on its first flagged message, else on the user's request."""
    if shown is None:
        return 0
    flagged = sorted(t.message_index for t in shown.trajectory.tags if t.message_index is not None)
    if flagged:
        return flagged[0]
    return next((i for i, m in enumerate(shown.trajectory.messages) if m.role == "user"), 0)


def call_text(call: dict[str, Any], prefix: str, style: Style) -> Text:
    """``→ name`` and the arguments pretty-printed below it."""
    function = call.get("function") or {}
    return Text.assemble((prefix, style), (visible(str(function.get("name")), SIGN), style + _BOLD), "\n",
                         (visible(call_arguments(function.get("arguments")), BREAK), style))


def call_arguments(arguments: Any) -> str:
    """A call's arguments (a JSON string, or decoded) pretty-printed; as the model wrote them when not JSON."""
    if isinstance(arguments, str):
        return pretty_json(arguments)
    return json_text(json.dumps(arguments, indent=2, ensure_ascii=False))


def pretty_json(text: str) -> str:
    """JSON indented when it parses, else the text as it is; characters a terminal would act on are written as
    JSON escapes (:func:`store.text.json_text`), so the text stays JSON with the same meaning."""
    try:
        return json_text(json.dumps(loads(text), indent=2, ensure_ascii=False))
    except (json.JSONDecodeError, TypeError):
        return text


def _cut(text: Text, dim: Style) -> Text:
    lines = text.split(allow_blank=True)
    if len(lines) <= MAX_BODY_LINES:
        return text
    kept = Text("\n").join(lines[:MAX_BODY_LINES])
    kept.append(f"\n… {len(lines) - MAX_BODY_LINES} more lines", dim)
    return kept

