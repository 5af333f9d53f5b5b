"""The training settings `T` asks for once a session (and `t` on the runs screen): [train] of curator.toml."""
from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.widgets import Checkbox, Input, Label, Select, Static

from curator.config import TrainConfig, default_learning_rate
from curator.screens.base import Dialog

ALGORITHMS = [
    ("SFT: LoRA, loss weighted by MAE x PKT", "sft"),
    ("GRPO: the judge's error-type reward", "grpo"),
    ("DPO: corrections, accepted over rejected", "dpo"),
]


#: The form's text fields: setting, label, Input type.
FIELDS = [
    ("base_model", "base model", "text"),
    ("epochs", "epochs", "number"),
    ("max_steps", "max steps", "integer"),
    ("learning_rate", "learning rate (SFT)", "number"),
    ("lora_rank", "LoRA rank", "integer"),
    ("w_max", "w_max (PKT)", "number"),
]


class TrainChoice(NamedTuple):
    train: TrainConfig
    mask_instability: bool


class EnterCheckbox(Checkbox, inherit_bindings=False):
    """A checkbox that Space toggles, so Enter reaches the form and starts the run."""

    BINDINGS = [Binding("space", "toggle_button", "Toggle", show=False)]


class TrainForm(Dialog[TrainChoice | None]):
    BINDINGS = [Binding("enter,ctrl+s", "start", "Start")]

    def __init__(self, settings: TrainConfig, mask_instability: bool, accepted: int) -> None:
        super().__init__()
        self.settings = settings
        self.mask_instability = mask_instability
        self.accepted = accepted
        self._base_model = settings.base_model  # the one the learning rate field follows

    def compose(self) -> ComposeResult:
        s = self.settings
        with Vertical(classes="dialog", id="train-form"):
            yield Label(f"Export the {self.accepted:,} accepted trajectories and train on them — "
                        "Enter starts, Esc cancels", classes="dialog-title")
            with Grid(id="train-fields"):
                yield Label("algorithm")
                yield Select(ALGORITHMS, value=s.algorithm if s.algorithm in {v for _, v in ALGORITHMS} else "sft",
                             allow_blank=False, compact=True, id="algorithm")
                for name, label, kind in FIELDS:
                    yield Label(label)
                    value = s.sft_learning_rate if name == "learning_rate" else getattr(s, name)
                    yield Input(f"{value:g}" if isinstance(value, float) else str(value), type=kind, compact=True,
                                id=name)
            yield EnterCheckbox("MAE: leave masked calls out of the SFT loss", s.mae, compact=True, id="mae")
            yield EnterCheckbox("mask tool instability (calls that failed for reasons outside the call)",
                                self.mask_instability, compact=True, id="mask_instability")
            yield Static("tiny: a small offline model for demos · max steps 0: the epochs decide · w_max 1: no PKT\n"
                         "learning rate: 5e-3 suits tiny, 2e-4 a pretrained base (it follows the base model)\n"
                         "Saved to [train] and [flag] mask_instability in the config file.", markup=False,
                         classes="dim")
            yield Static(id="problem")

    def on_mount(self) -> None:
        self.query_one("#base_model", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        """A new base model brings its own learning rate, unless the field holds one the user chose."""
        if event.input.id != "base_model":
            return
        rate = self.query_one("#learning_rate", Input)
        if rate.value.strip() == f"{default_learning_rate(self._base_model):g}":
            rate.value = f"{default_learning_rate(event.value.strip()):g}"
        self._base_model = event.value.strip()

    def on_input_submitted(self) -> None:
        self.action_start()

    def action_start(self) -> None:
        value = {name: self.query_one(f"#{name}", Input).value.strip() for name, _, _ in FIELDS}
        try:
            settings = replace(
                self.settings, algorithm=str(self.query_one("#algorithm", Select).value),
                base_model=value["base_model"], epochs=float(value["epochs"]), max_steps=int(value["max_steps"]),
                lora_rank=int(value["lora_rank"]), w_max=float(value["w_max"]),
                learning_rate=_chosen_rate(float(value["learning_rate"]), value["base_model"]),
                mae=self.query_one("#mae", Checkbox).value,
            )
        except ValueError:
            self.query_one("#problem", Static).update("Not started — epochs, max steps, learning rate, rank and w_max are numbers")
            return
        problem = _problem(settings)
        if problem:
            self.query_one("#problem", Static).update(f"Not started — {problem}")
            return
        self.dismiss(TrainChoice(settings, self.query_one("#mask_instability", Checkbox).value))


def _chosen_rate(rate: float, base_model: str) -> float | None:
    """None (follow the base model) when the rate is the base model's default, so it is not pinned in the file."""
    return None if rate == default_learning_rate(base_model) else rate


def _problem(settings: TrainConfig) -> str | None:
    if not settings.base_model:
        return "name a base model (tiny for the small offline one)"
    if settings.epochs <= 0 and settings.max_steps <= 0:
        return "give some epochs or a number of steps"
    if settings.lora_rank < 1:
        return "the LoRA rank is at least 1"
    if settings.w_max < 1:
        return "w_max is at least 1"
    if settings.sft_learning_rate <= 0:
        return "the learning rate is above 0"
    return None
