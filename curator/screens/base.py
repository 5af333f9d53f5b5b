"""What every screen of the app reaches: the store, the config, the annotator's name and the other screens."""
from __future__ import annotations

from typing import TYPE_CHECKING, Collection, TypeVar, cast

from textual.binding import Binding
from textual.screen import ModalScreen, Screen

from curator.settings import Config
from store import Store

if TYPE_CHECKING:
    from curator.app import CuratorApp

R = TypeVar("R")

#: The app's screens (its modes), each with the key that opens it and its name, in the order screens list them.
SCREEN_KEYS: dict[str, tuple[str, str]] = {
    "review": ("r", "Review"),
    "watch": ("w", "Watch"),
    "runs": ("R", "Runs"),
    "pairs": ("P", "Pairs"),
    "home": ("escape", "Home"),
}


def navigation(here: str, *, shown: Collection[str] = ("review",)) -> list[Binding]:
    """The bindings that open every screen but ``here``; only the ``shown`` ones take room in the footer.

    Each screen ends its ``BINDINGS`` with these, so the help screen and the command palette, which
    read the bindings, list them under every screen.
    """
    return [Binding(key, f"app.open('{screen}')", name, show=screen in shown)
            for screen, (key, name) in SCREEN_KEYS.items() if screen != here]


def described(binding: Binding) -> str:
    """What a key does, as the help screen and the command palette name it: the footer shows the short
    ``description``, and a ``tooltip``, when the binding has one, is its full name."""
    return binding.tooltip or binding.description


class StoreScreen(Screen[None]):
    @property
    def curator(self) -> "CuratorApp":
        return cast("CuratorApp", self.app)

    @property
    def store(self) -> Store:
        return self.curator.store

    @property
    def config(self) -> Config:
        return self.curator.config

    @property
    def annotator(self) -> str:
        return self.curator.annotator

    _data_version: int | None = None

    def store_changed(self) -> bool:
        """True when another connection (a headless simulation, another annotator) committed since the last call.

        The store's data version is one cheap read, so screens call this from a timer.
        """
        version = self.store.data_version()
        changed = self._data_version is not None and version != self._data_version
        self._data_version = version
        return changed


class Dialog(ModalScreen[R]):
    """A form or picker over a screen: Esc cancels it, returning None to the screen that pushed it."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
