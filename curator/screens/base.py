"""What every screen of the app reaches: the store, the config and the annotator's name."""
from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.screen import Screen

from curator.config import Config
from store import Store

if TYPE_CHECKING:
    from curator.app import CuratorApp


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
