"""The training settings `T` asks for once a session (and `t` on the runs screen): [train] of curator.toml."""
from __future__ import annotations

from typing import Any, NamedTuple

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.widgets import Checkbox, Input, Label, Select, Static

from curator.settings import TrainSettings
from curator.screens.base import Dialog
from curator.widgets.problem import Problem
from training.config import DEMO, BadValue, DemoBase, SFTConfig, field_types

ALGORITHMS = [
    ("SFT: LoRA, loss weighted by MAE x PKT", "sft"),
    ("GRPO: the judge's error-type reward", "grpo"),
    ("DPO: corrections, accepted over rejected", "dpo"),
    ("iTool: warm-up SFT, then rounds of the model's own step-level pairs + DPO", "itool"),
]


#: The form's text fields: training-config field, label, Input type.
FIELDS = [
    ("base_model", "base model", "text"),
    ("epochs", "epochs", "number"),
    ("max_steps", "max steps", "integer"),
    ("learning_rate", "learning rate", "number"),
    ("lora_r", "LoRA rank", "integer"),
    ("w_max", "w_max (PKT, SFT)", "number"),
]
LABELS = {name: label for name, label, _ in FIELDS}
_CASTS = field_types(SFTConfig)


class TrainChoice(NamedTuple):
    train: TrainSettings
    mask_instability: bool


class EnterCheckbox(Checkbox, inherit_bindings=False):
    """A checkbox that Space toggles, so Enter reaches the form and starts the run."""

    BINDINGS = [Binding("space", "toggle_button", "Toggle", show=False)]


def shown(settings: TrainSettings) -> dict[str, Any]:
    """The value each form field shows: the effective config's, SFT's for a field the algorithm lacks (w_max)."""
    sft = settings.with_changes("sft", settings.overrides).config()
    effective = settings.config()
    return {name: getattr(effective, name, getattr(sft, name)) for name in [*LABELS, "mae"]}


def text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class TrainForm(Dialog[TrainChoice | None]):
    """Every field starts at the effective setting; a field left at its default follows the algorithm and the
    base model (a new base model brings its own learning rate), and only what differs is saved to [train]."""

    BINDINGS = [Binding("enter,ctrl+s", "start", "Start")]

    def __init__(self, settings: TrainSettings, mask_instability: bool, accepted: int) -> None:
        super().__init__()
        self.settings = settings
        self.mask_instability = mask_instability
        self.accepted = accepted
        self._defaults = self._defaults_for(settings.algorithm, shown(settings)["base_model"])

    def _defaults_for(self, algorithm: str, base_model: str) -> dict[str, str]:
        return {k: text(v) for k, v in shown(self.settings.with_changes(algorithm, {"base_model": base_model})).items()}

    def compose(self) -> ComposeResult:
        values = shown(self.settings)
        with Vertical(classes="dialog", id="train-form"):
            yield Label(f"Export the {self.accepted:,} accepted trajectories and train on them — "
                        "Enter starts, Esc cancels", classes="dialog-title")
            yield Problem(id="problem")
            if values["base_model"] == DEMO:
                yield Static(f"{DemoBase.describe()}; its first run builds it once (about 3 minutes on 2 cores), "
                             "every weight is then fine-tuned on the accepted trajectories", markup=False,
                             classes="dim")
            with Grid(classes="fields"):
                yield Label("algorithm")
                yield Select(ALGORITHMS, value=self.settings.algorithm, allow_blank=False, compact=True,
                             id="algorithm")
                for name, label, kind in FIELDS:
                    yield Label(label)
                    yield Input(text(values[name]), type=kind, compact=True, id=name)
            yield EnterCheckbox("MAE: leave masked calls out of the SFT loss", values["mae"], compact=True, id="mae")
            yield EnterCheckbox("mask tool instability (failures for reasons outside the call)",
                                self.mask_instability, compact=True, id="mask_instability")
            yield Static("max steps, when set (not -1), wins over epochs · w_max 1: no PKT\n"
                         "tiny: a small offline model (5e-3 suits it; a pretrained base 2e-4)\n"
                         "Defaults (training/config.py) follow the algorithm and the base model;\n"
                         "what differs is saved to [train], the instability choice to [flag].",
                         markup=False, classes="dim")

    def on_mount(self) -> None:
        self.query_one("#base_model", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "base_model":
            self._follow_defaults()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "algorithm":
            self._follow_defaults()

    def _follow_defaults(self) -> None:
        """Fields still at the old algorithm's or base model's default take the new one's."""
        algorithm = str(self.query_one("#algorithm", Select).value)
        try:
            defaults = self._defaults_for(algorithm, self.query_one("#base_model", Input).value.strip())
        except BadValue:  # no base model yet (the field is being typed): nothing to follow
            return
        for name in LABELS:
            field = self.query_one(f"#{name}", Input)
            if name != "base_model" and field.value.strip() == self._defaults[name]:
                field.value = defaults[name]
        self._defaults = defaults

    def on_input_submitted(self) -> None:
        self.action_start()

    def action_start(self) -> None:
        algorithm = str(self.query_one("#algorithm", Select).value)
        values: dict[str, Any] = {}
        for name, label, _ in FIELDS:
            typed = self.query_one(f"#{name}", Input).value.strip()
            try:
                values[name] = _CASTS[name](typed)
            except ValueError:
                return self._refuse(f"{label} must be a number, not {typed!r}" if typed else f"{label} is empty")
        values["mae"] = self.query_one("#mae", Checkbox).value
        try:
            settings = self.settings.with_changes(algorithm, {**self.settings.overrides, **values})
            settings.config()
            defaults = {**shown(self.settings.with_changes(algorithm, {"base_model": values["base_model"]})),
                        "base_model": shown(self.settings.with_changes(algorithm, {}))["base_model"]}
        except BadValue as exc:
            return self._refuse(f"{LABELS.get(exc.name, exc.name)}: {exc.problem}")
        overrides = {k: v for k, v in settings.overrides.items() if k not in values or v != defaults[k]}
        self.dismiss(TrainChoice(self.settings.with_changes(algorithm, overrides), self.query_one("#mask_instability", Checkbox).value))

    def _refuse(self, problem: str) -> None:
        self.query_one(Problem).show(f"Not started — {problem}")
