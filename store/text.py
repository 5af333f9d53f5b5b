"""Text from a model, a tool or a file, made inert for a terminal.

Every such string is shown through :func:`visible` and as a ``rich.text.Text``
(never parsed as markup; :func:`inert` makes one): control characters, escape
sequences among them, become visible escapes, so nothing in the data can move
the cursor, change colours, set the title or the clipboard, hide or reorder
what follows. The CLI prints through :func:`inert_console`, which interprets
no markup, emoji codes or highlighting in strings either.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Iterable

from rich.style import Style
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console

#: What a terminal would act on or not show: C0 but newline, DEL, C1, lone surrogates (they cannot be encoded),
#: and Unicode's invisible format characters — bidi overrides, zero-width and word joiners, soft hyphen,
#: tag characters, line and paragraph separators (categories Cf, Zl and Zp; tests/test_hostile_display.py keeps
#: the list in step with ``unicodedata``).
_UNSAFE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff"
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064"
    "\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
#: Whitespace shown as a sign.
_SIGNS = {"\t": "⇥", "\r": "␍"}

#: How a newline shows: a sign and a line break (tokens), a line break (multi-line bodies), a sign (one line).
SIGN_AND_BREAK, BREAK, SIGN = "↵\n", "\n", "↵"


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    return _SIGNS.get(ch) or (f"\\x{code:02x}" if code < 0xA0 else f"\\u{code:04x}" if code < 0x10000
                              else f"\\U{code:08x}")


def visible(text: str, newline: str = SIGN_AND_BREAK) -> str:
    """``text`` with control characters as ``\\xNN``, other invisible ones as ``\\uNNNN``, tabs and returns as
    signs, and each newline as ``newline`` (:data:`SIGN_AND_BREAK`, :data:`BREAK` or :data:`SIGN`)."""
    if newline != BREAK:
        text = text.replace("\n", newline)
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def inert(text: Any, style: str | Style = "", newline: str = SIGN) -> Text:
    """``text`` (``str()`` of it when it is not a string) made visible, as a ``Text`` no markup is read from."""
    return Text(visible(text if isinstance(text, str) else str(text), newline), style)


def json_text(text: str) -> str:
    """JSON ``text`` with every character :func:`visible` would escape but whitespace written as a JSON
    ``\\uNNNN`` escape: inside a JSON string it means the same, so text edited in the app still parses to the same
    value (and a raw control character, which JSON forbids in a string, becomes the escape it should have been)."""
    return _UNSAFE.sub(_json_escape, text) if _UNSAFE.search(text) else text


def _json_escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in "\t\r":
        return ch
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def inert_console(*, stderr: bool = False) -> "Console":
    """A Rich console for the CLI that reads no markup, emoji codes or highlights from strings."""
    from rich.console import Console

    return Console(stderr=stderr, markup=False, emoji=False, highlight=False)


def by_weight(tokens: Iterable[tuple[str, float]]) -> Text:
    """Tokens as inert text styled by their loss weight: masked or prompt dim, trained bold green, PKT key tokens
    highlighted and followed by their weight (the preview's look, in the terminal and in the app)."""
    body = Text()
    for text, weight in tokens:
        if weight <= 0:
            body.append(visible(text), style="dim")
        elif weight > 1:
            body.append(visible(text), style="bold black on yellow")
            body.append(f"×{weight:.3g}", style="yellow")
        else:
            body.append(visible(text), style="bold green")
    return body
