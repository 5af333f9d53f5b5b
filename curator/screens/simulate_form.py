"""`s` on the watch screen: what to simulate. Starts from the [simulate] table of curator.toml."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Label, Select, Static

from curator.screens.base import Dialog
from curator.sim import SimConfig
from curator.sim.config import BACKENDS
from store.errors import InputError
from store.text import inert


class SimulateForm(Dialog[SimConfig | None]):
    BINDINGS = [Binding("ctrl+s", "start", "Start")]

    def __init__(self, settings: SimConfig, toolsets: list[str]) -> None:
        super().__init__()
        self.settings = settings
        self.toolsets = toolsets

    def compose(self) -> ComposeResult:
        s = self.settings
        with Vertical(classes="dialog", id="simulate"):
            yield Label("Start a simulation — Enter or Ctrl+S starts, Esc cancels", classes="dialog-title")
            yield Select([(inert(t), t) for t in self.toolsets], value=s.toolset if s.toolset in self.toolsets else
                         Select.NULL, prompt="toolset", id="toolset")
            yield Select([(b, b) for b in BACKENDS], value=s.backend, allow_blank=False, id="backend")
            for name, label in (("n", "trajectories"), ("concurrency", "concurrency"), ("seed", "seed")):
                yield Input(str(getattr(s, name)), placeholder=label, type="integer", id=name)
            yield Static(inert(f"models: {s.model or 'the scripted agents'} (from curator.toml)"), classes="dim")
            yield Static(id="problem")

    def on_mount(self) -> None:
        self.query_one("#n", Input).focus()

    def on_input_submitted(self) -> None:
        self.action_start()

    def action_start(self) -> None:
        toolset = self.query_one("#toolset", Select).value
        numbers = {name: self.query_one(f"#{name}", Input).value for name in ("n", "concurrency", "seed")}
        try:
            if toolset is Select.NULL:
                raise InputError("simulate", "choose a toolset", "toolset")
            config = self.settings.with_changes(
                toolset=str(toolset), backend=str(self.query_one("#backend", Select).value),
                **{name: int(value) for name, value in numbers.items() if value},
            )
        except (InputError, ValueError) as exc:
            self.query_one("#problem", Static).update(inert(f"Not started — {exc}"))
            return
        self.dismiss(config)
