"""`s` on the watch screen: what to simulate. Starts from the [simulate] table of curator.toml."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.widgets import Input, Label, Select, Static

from curator.screens.base import Dialog
from curator.sim import SimConfig
from curator.sim.config import BACKENDS
from curator.widgets.problem import Problem
from store.errors import InputError
from store.text import inert


#: The form's number fields: SimConfig field, label.
NUMBERS = [("n", "count"), ("concurrency", "concurrency"), ("seed", "seed")]


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
            yield Problem(id="problem")
            with Grid(classes="fields"):
                yield Label("toolset")
                yield Select([(inert(t), t) for t in self.toolsets], value=s.toolset if s.toolset in self.toolsets
                             else Select.NULL, prompt="choose one", compact=True, id="toolset")
                yield Label("backend")
                yield Select([(b, b) for b in BACKENDS], value=s.backend, allow_blank=False, compact=True,
                             id="backend")
                for name, label in NUMBERS:
                    yield Label(label)
                    yield Input(str(getattr(s, name)), type="integer", compact=True, id=name)
            yield Static(Text.assemble("count: trajectories to simulate · concurrency: how many at once\n",
                                       inert(f"models: {s.model or 'the scripted agents'} (from curator.toml)")),
                         classes="dim")

    def on_mount(self) -> None:
        self.query_one("#n", Input).focus()

    def on_input_submitted(self) -> None:
        self.action_start()

    def action_start(self) -> None:
        toolset = self.query_one("#toolset", Select).value
        numbers = {name: self.query_one(f"#{name}", Input).value for name, _ in NUMBERS}
        try:
            if toolset is Select.NULL:
                raise InputError("simulate", "choose a toolset", "toolset")
            config = self.settings.with_changes(
                toolset=str(toolset), backend=str(self.query_one("#backend", Select).value),
                **{name: int(value) for name, value in numbers.items() if value},
            )
        except (InputError, ValueError) as exc:
            self.query_one(Problem).show(f"Not started — {exc}")
            return
        self.dismiss(config)
