"""The base of the app's line-API views: a ScrollView whose Rich styles are looked up once."""
from __future__ import annotations

from rich.style import Style
from textual.scroll_view import ScrollView


class LineView(ScrollView):
    """``line_styles()``: the base style under ``""`` and each component class by its short name.

    Looking a style up walks the DOM (about 0.2 ms); a frame of a line-API view asks for
    dozens. The cache is dropped whenever Textual restyles the widget (theme, focus, classes).
    """

    _line_styles: dict[str, Style] | None = None

    def line_styles(self) -> dict[str, Style]:
        if self._line_styles is None:
            self._line_styles = {"": self.rich_style, **{
                name.split("--", 1)[1]: self.get_component_rich_style(name) for name in self.COMPONENT_CLASSES}}
        return self._line_styles

    def notify_style_update(self) -> None:
        self._line_styles = None
        super().notify_style_update()
