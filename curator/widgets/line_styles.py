"""Rich styles for line-API widgets, looked up once instead of on every line of every frame."""
from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from textual.widget import Widget


class LineStyles(Widget):
    """``line_styles()``: the widget's base style under ``""`` and each component class by its short name.

    Looking a style up walks the DOM (about 0.2 ms); a frame of a line-API view asks for
    dozens. The cache is dropped whenever Textual restyles the widget (theme, focus, classes).
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = set()
    _line_styles: dict[str, Style] | None = None

    def line_styles(self) -> dict[str, Style]:
        if self._line_styles is None:
            self._line_styles = {"": self.rich_style, **{
                name.split("--", 1)[1]: self.get_component_rich_style(name) for name in self.COMPONENT_CLASSES}}
        return self._line_styles

    def notify_style_update(self) -> None:
        self._line_styles = None
        super().notify_style_update()
