"""The Textual app: one store, a screen per area (home, watch, review), help and the command palette.

Screens are modes, so a simulation started on the watch screen keeps running
while you review, and each screen keeps its place when you come back.
"""
from __future__ import annotations

import getpass
from functools import partial
from typing import Callable, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from curator.config import Config
from curator.screens.help import HelpScreen
from curator.screens.home import HomeScreen
from curator.screens.review import ReviewScreen
from curator.screens.watch import WatchScreen
from curator.sim import Simulation
from store import Store


class CuratorApp(App[None]):
    TITLE = "curator"
    CSS_PATH = "styles/app.tcss"
    MODES = {"home": HomeScreen, "watch": WatchScreen, "review": ReviewScreen}
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, store: Store, config: Config, *, screen: str = "home", annotator: str | None = None,
                 simulate: Callable[[Store], Simulation] | None = None) -> None:
        """``simulate`` builds a simulation the watch screen starts when it opens (``curator demo``)."""
        super().__init__()
        if screen not in self.MODES:
            raise ValueError(f"screen must be one of {', '.join(self.MODES)}, got {screen!r}")
        self.store = store
        self.config = config
        self.annotator = annotator or getpass.getuser()
        self.first_screen = screen
        self.start_simulation = simulate

    def on_mount(self) -> None:
        self.switch_mode(self.first_screen)

    def action_open(self, screen: str) -> None:
        """Go to one of the app's screens (``home``, ``watch``, ``review``)."""
        self.switch_mode(screen)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette lists every action bound on the current screen, then Textual's own commands."""
        seen: set[str] = set()
        for key, active in screen.active_bindings.items():
            binding = active.binding
            if not active.enabled or not binding.description or binding.action in seen:
                continue
            seen.add(binding.action)
            display = binding.key_display or self.get_key_display(binding)
            yield SystemCommand(binding.description, f"key: {display}",
                                partial(self.run_action, binding.action, active.node))
        yield from super().get_system_commands(screen)
