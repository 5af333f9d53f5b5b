"""Text from a model, a tool or a file, made inert for a terminal.

Every such string is shown through :func:`visible` and as a ``rich.text.Text``
(never parsed as markup): control characters, escape sequences among them,
become visible escapes, so nothing in the data can move the cursor, change
colours or hide what follows.
"""
from __future__ import annotations

from typing import Iterable

from rich.text import Text

#: Whitespace shown as a sign; newlines still break the line.
_SIGNS = {"\n": "↵\n", "\t": "⇥", "\r": "␍"}


def visible(text: str) -> str:
    """``text`` with control characters (C0, DEL, C1) as ``\\xNN`` and tabs, returns and newlines as signs."""
    out = []
    for ch in text:
        if ch in _SIGNS:
            out.append(_SIGNS[ch])
        elif ch < " " or "\x7f" <= ch < "\xa0":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


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
