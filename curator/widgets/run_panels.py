"""The runs screen's parts: the list of runs, the selected run's details, its loss curve and its log."""
from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from curator.launcher import ACTIVE, dataset_size, duration, result, run_seconds, started
from store import Run
from store.text import BREAK, SIGN, inert, visible
from training.config import DEMO, DemoBase

COLUMNS = [("run", "run"), ("kind", "kind"), ("algorithm", "algo"), ("status", "status"),
           ("model", "base model"), ("dataset", "dataset"), ("started", "started"), ("duration", "duration"),
           ("result", "result")]
METRICS = [("ts", "TS"), ("pi", "PI"), ("cf", "CF")]


class RunList(DataTable[Text]):
    """Every run, newest first; the screen sets the rows and the cursor, the annotator moves it."""

    COMPONENT_CLASSES = {"runs--queued", "runs--running", "runs--completed", "runs--failed", "runs--cancelled"}

    def on_mount(self) -> None:
        self.cursor_type = "row"
        for key, label in COLUMNS:
            self.add_column(label, key=key)

    def show(self, runs: list[Run], selected: str | None, final_losses: dict[str, float | None]) -> None:
        """Rebuild the rows (a few hundred at most, in :func:`grouped` order) with the cursor on ``selected``,
        announcing nothing; a training run's result is its ``final_losses`` entry (the last loss it logged)."""
        with self.prevent(DataTable.RowHighlighted):
            self.clear()
            for run in runs:
                self.add_row(*self._cells(run, final_losses.get(run.id)), key=run.id)
            index = next((i for i, run in enumerate(runs) if run.id == selected), 0)
            if runs:
                self.move_cursor(row=index, animate=False)

    def tick(self, runs: list[Run]) -> None:
        """Advance the durations of the active runs."""
        for run in runs:
            if run.status in ACTIVE and run.id in self.rows:
                self.update_cell(run.id, "duration", Text(duration(run_seconds(run))))

    def _cells(self, run: Run, loss: float | None) -> list[Text]:
        """Inert text cells: a ``str`` cell would be read as markup."""
        cells = [f"└ {run.id[:6]}" if run.parent_id else run.id[:8], run.kind,
                 f"{run.algorithm} {round_name(run)}" if run.parent_id else run.algorithm, run.status,
                 shorten(run.base_model, 24), dataset_size(run), started(run), duration(run_seconds(run)),
                 clip(result(run, loss), 32)]
        status = self.get_component_rich_style(f"runs--{run.status}", partial=True)
        return [inert(cell, status if key == "status" else "") for (key, _), cell in zip(COLUMNS, cells)]


def grouped(runs: list[Run]) -> list[Run]:
    """``runs`` (newest first) with each run that is part of another (an iTool loop's warm-up and rounds)
    right after it, in the order they ran; a part whose run is gone stands on its own."""
    ids = {r.id for r in runs}
    parts: dict[str, list[Run]] = {}
    for run in reversed(runs):
        if run.parent_id in ids:
            parts.setdefault(run.parent_id, []).append(run)
    out: list[Run] = []
    for run in runs:
        if run.parent_id not in ids:
            out += [run, *parts.get(run.id, [])]
    return out


def round_of(run: Run) -> int:
    """A loop's part's round: 0 for the warm-up, N for round N."""
    value = run.config.get("round", 0)
    return value if isinstance(value, int) else 0


def round_name(run: Run) -> str:
    number = round_of(run)
    return f"round {number}" if number else "warm-up"


class RunDetails(Static):
    """The selected run: what it trained on and how, its error, and for an SFT run TS/PI/CF against its base."""

    def show(self, run: Run | None, trained: Run | None = None, base: Run | None = None,
             base_model: str | None = None, rounds: list[tuple[Run, float | None]] | None = None) -> None:
        """``rounds``: a loop's parts and their last loss, shown as a table of the rounds."""
        if run is None:
            self.update("No runs yet: T on the review screen exports the accepted trajectories and trains on them.")
            return
        text = Text.assemble(inert(f"{run.kind} {run.algorithm} · {run.status}", "bold"), inert(f" · run {run.id}"))
        text.append(inert(f"\nbase model {run.base_model}\n", newline=BREAK))
        if run.base_model == DEMO:
            text.append(f"{DemoBase.describe()}\n", "dim")
        if run.output_dir:
            text.append(inert(f"output {run.output_dir}\n", "dim", BREAK))
        text.append(_dataset(run))
        text.append(_settings(run))
        if run.error:
            text.append(inert(f"\nerror: {run.error}", "bold red", BREAK))
        parts: list[Text | Table] = [text]
        if trained is not None or base is not None:
            parts.append(_comparison(trained, base, base_model or run.base_model))
        if rounds:
            parts.append(_rounds(rounds))
        self.update(Group(*parts))


class LossCurve(PlotextPlot):
    """The selected run's training loss by step (from ``run_metrics``); for a loop, the loss and TS by round."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.shown: tuple = ()
        #: The points of the first series shown (a run's loss by step, a loop's loss by round).
        self.points: list[tuple[int, float]] = []

    def show(self, points: list[tuple[int, float]], heading: str) -> None:
        self._draw(heading, "step", [(points, "", "left")])

    def show_rounds(self, losses: list[tuple[int, float]], ts: list[tuple[int, float]], heading: str) -> None:
        """A loop: each round's last training loss (left axis) and the TS after it (right axis, in %)."""
        self._draw(heading, "round (0: warm-up)",
                   [(losses, "loss", "left"), ([(r, v * 100) for r, v in ts], "TS %", "right")])

    def _draw(self, heading: str, xlabel: str, series: list[tuple[list[tuple[int, float]], str, str]]) -> None:
        if (heading, series) == self.shown:
            return
        self.shown = (heading, series)
        self.points = series[0][0]
        plt = self.plt
        plt.clear_data()
        plt.title(heading)
        plt.xlabel(xlabel)
        for points, label, side in series:
            if points:
                plt.plot([x for x, _ in points], [y for _, y in points], marker="braille", yside=side,
                         **({"label": label} if label else {}))
        self.refresh()


class LogTail(Static):
    """The last lines of the selected run's log."""

    def show(self, source: str | None, lines: list[str]) -> None:
        if source is None:
            self.update(Text("no log yet", "dim"))
            return
        self.update(Text.assemble(inert(f"{source}\n", "dim", BREAK), inert("\n".join(lines), newline=BREAK)))


# -- formatting ----------------------------------------------------------------------------------------
def shorten(text: str, width: int) -> str:
    """The end of ``text`` (a path's last parts say most), within ``width``."""
    return text if len(text) <= width else "…" + text[-(width - 1):]


def clip(text: str, width: int) -> str:
    """The start of ``text`` within ``width``."""
    return text if len(text) <= width else text[:width - 1] + "…"


def _dataset(run: Run) -> Text:
    dataset = run.dataset or {}
    text = Text(f"dataset {dataset_size(run)}")
    if isinstance(dataset.get("tokens"), int):
        text.append(f" · {dataset['tokens']:,} tokens, {dataset.get('trainable_tokens', 0):,} trained on")
    snapshot = dataset.get("snapshot")
    if snapshot:
        masking = "tool instability masked" if snapshot.get("mask_instability") else "tool instability kept"
        text.append(f"\nsnapshot {visible(str(snapshot.get('dir')), SIGN)} ({masking})", "dim")
    return text + "\n"


def _settings(run: Run) -> Text:
    config = run.config
    shown = [f"{label} {visible(str(config[key]), SIGN)}" for key, label in (
        ("max_steps", "max steps"), ("epochs", "epochs"), ("learning_rate", "lr"), ("w_max", "w_max"),
    ) if config.get(key) is not None]
    if config.get("full_finetune"):
        shown.append("full fine-tune")
    elif config.get("lora_r") is not None:
        shown.append(f"LoRA rank {config['lora_r']}")
    if "mae" in config:
        shown.append("MAE on" if config["mae"] else "MAE off")
    return Text(" · ".join(shown), "dim")


def _comparison(trained: Run | None, base: Run | None, base_model: str) -> Table:
    table = Table(title="on the gold set", title_justify="left", box=None, padding=(0, 2, 0, 0))
    table.add_column("model")
    for _, label in METRICS:
        table.add_column(label, justify="right")
    table.add_column("")
    scored = []
    for name, run in (("trained", trained), (f"base {shorten(base_model, 24)}", base)):
        metrics = _metrics(run)
        scored.append(metrics)
        table.add_row(inert(name), *(Text(f"{metrics[key]:.0%}" if key in metrics else "…") for key, _ in METRICS),
                      inert(f"n={metrics['n']}" if "n" in metrics else (run.status if run else "not evaluated")))
    if all(scored):
        table.add_row(Text("difference", "bold"), *(_difference(scored[0][key] - scored[1][key]) for key, _ in METRICS),
                      Text("trained − base, in points", "dim"))
    return table


def _rounds(rounds: list[tuple[Run, float | None]]) -> Table:
    """A loop's parts: each round's status, pairs made, last loss and TS / PI / CF on the gold set after it."""
    table = Table(title="rounds", title_justify="left", box=None, padding=(0, 2, 0, 0))
    for label in ("round", "status", "pairs", "loss", *(m for _, m in METRICS)):
        table.add_column(label, justify="left" if label in ("round", "status") else "right")
    for run, loss in rounds:
        summary = run.summary or {}
        metrics = summary.get("metrics") or {}
        table.add_row(inert(f"{run.algorithm} {round_name(run)}"), inert(run.status),
                      inert(summary.get("pairs_made", "–") if round_of(run) else "–"),
                      Text("–" if loss is None else f"{loss:.3f}"),
                      *(Text(f"{metrics[key]:.0%}" if key in metrics else "–") for key, _ in METRICS))
    return table


def _metrics(run: Run | None) -> dict[str, float]:
    """A completed evaluation's TS / PI / CF (and n); empty while there is none."""
    return ((run.summary or {}).get("metrics") if run and run.status == "completed" else None) or {}


def _difference(delta: float) -> Text:
    """A difference of rates in percentage points, green when the trained model is better, red when worse."""
    points = round(delta * 100, 1)
    style = "bold green" if points > 0 else "bold red" if points < 0 else "dim"
    return Text(f"{points:+g}" if points else "±0", style)
