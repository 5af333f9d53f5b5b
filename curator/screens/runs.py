"""The runs screen: every training and evaluation run, and the selected one's loss curve, details and log.

Runs are processes of their own (see curator/launcher.py): this screen only reads
the store and their files. A timer notices the runs' commits (the store's
data version, one read) and reloads the list and the selected run's loss
(two indexed queries); logs are read, processes checked and runs cancelled or
started on worker threads, so nothing here waits for a run.
"""
from __future__ import annotations

from typing import Callable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable

from curator.launcher import (ACTIVE, auto_evaluated, cancel_run, eval_base, evaluate_against_base, latest_eval,
                              log_tail, final_loss, mark_lost, rerun, start_auto_evaluations)
from curator.screens.base import StoreScreen, navigation
from curator.screens.confirm import Confirm
from curator.widgets.footer import KeyFooter
from curator.widgets.run_panels import LogTail, LossCurve, RunDetails, RunList, grouped, round_of
from store import CuratorError, Run

#: How often the screen looks at the store (one read of its data version) and the selected run's log.
POLL_SECONDS = 1.0
#: How often it checks that the active runs' processes are still there.
PROCESS_CHECK_SECONDS = 5.0


class RunsScreen(StoreScreen):
    BINDINGS = [
        Binding("x", "cancel", "Cancel", tooltip="Cancel run"),
        Binding("a", "again", "Again", tooltip="Run again"),
        Binding("e", "evaluate", "Evaluate", tooltip="Evaluate vs base"),
        Binding("T", "app.train", "Train"),
        Binding("t", "app.train(True)", "Settings", tooltip="Train with new settings"),
        *navigation("runs"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[Run] = []  # newest first, as last read
        self.selected: str | None = None
        self.cancelling: set[str] = set()  # runs this screen is stopping: not "lost" while their process ends
        self.auto_started: set[str] = set()  # demo runs whose evaluations this screen started (their rows may lag)

    def compose(self) -> ComposeResult:
        yield RunList(id="runs")
        with Horizontal(id="run-detail"):
            with Vertical(id="run-side"):
                yield RunDetails(id="run-details")
                yield LogTail(id="run-log")
            yield LossCurve(id="loss")
        yield KeyFooter()

    @property
    def run(self) -> Run | None:
        """The selected run, as last read."""
        return next((r for r in self.runs if r.id == self.selected), None)

    def on_mount(self) -> None:
        self.store_changed()
        self._reload()
        self.set_interval(POLL_SECONDS, self._poll)
        self.set_interval(PROCESS_CHECK_SECONDS, self._check_processes)

    def on_screen_resume(self) -> None:
        self._poll()

    def show_run(self, run_id: str) -> None:
        """Select ``run_id`` (a run just started) and show it."""
        self.selected = run_id
        self._reload()

    # -- following the store -----------------------------------------------------------------------
    def _poll(self) -> None:
        if not self.is_current:  # runs go on; the screen catches up when it is shown again
            return
        if self.store_changed():
            self._reload()
        else:
            self.query_one(RunList).tick(self.runs)
        if (run := self.run) is not None and run.status in ACTIVE:
            self._read_log(run)

    def _reload(self) -> None:
        self.runs = grouped(self.store.runs())
        due = [r for r in auto_evaluated(self.runs) if r.id not in self.auto_started]
        if due:
            self.auto_started.update(r.id for r in due)
            self._start(lambda runs=list(self.runs): start_auto_evaluations(self.store.path, runs),
                        "The demo model finished training: evaluating it and its base on the gold set (runs {})")
        if self.run is None:
            self.selected = self.runs[0].id if self.runs else None
        self.query_one(RunList).show(self.runs, self.selected, {r.id: final_loss(self.store, r) for r in self.runs})
        self._show_selected()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.selected = event.row_key.value
        self._show_selected()

    def _show_selected(self) -> None:
        run = self.run
        details = self.query_one(RunDetails)
        if run is not None and any(r.parent_id == run.id for r in self.runs):
            self._show_loop(run)
            return
        if run is None or (run.kind, run.algorithm) != ("train", "sft"):
            details.show(run)
        else:
            base = eval_base(run)
            details.show(run, latest_eval(self.runs, run.output_dir), latest_eval(self.runs, base), base)
        loss = self.store.run_metrics(run.id, "loss") if run else []
        self.query_one(LossCurve).show(loss, _loss_title(run, len(loss)))
        if run is None:
            self.query_one(LogTail).show(None, [])
        else:
            self._read_log(run)

    def _show_loop(self, run: Run) -> None:
        """A run made of parts (an iTool loop): its rounds as a table, and the loss and TS across them."""
        parts = [(part, final_loss(self.store, part)) for part in self.runs if part.parent_id == run.id]
        self.query_one(RunDetails).show(run, rounds=parts)
        losses = [(round_of(part), loss) for part, loss in parts if loss is not None]
        ts = self.store.run_metrics(run.id, "ts")  # the loop logs each round's gold metrics at the round's number
        self.query_one(LossCurve).show_rounds(losses, ts, f"{run.algorithm}: loss and TS by round "
                                                          f"({len(parts) - 1 if parts else 0} rounds)")
        self._read_log(run)

    @work(thread=True, exclusive=True, group="log")
    def _read_log(self, run: Run) -> None:
        source, lines = log_tail(run)
        self.app.call_from_thread(self._show_log, run.id, source, lines)

    def _show_log(self, run_id: str, source: str | None, lines: list[str]) -> None:
        tails = self.query(LogTail)  # none once the app is closing and the reader finishes late
        if run_id == self.selected and tails:
            tails.first().show(source, lines)

    def _check_processes(self) -> None:
        if self.is_current and any(r.status in ACTIVE for r in self.runs):
            self._mark_lost(frozenset(self.cancelling))

    @work(thread=True, exclusive=True, group="processes")
    def _mark_lost(self, skip: frozenset[str]) -> None:
        """A run whose process died without a word (killed, machine restarted) is marked failed."""
        mark_lost(self.store.path, skip)

    # -- actions -----------------------------------------------------------------------------------
    def action_cancel(self) -> None:
        """`x`: SIGTERM to the selected run's process (a training run stops after its step, with a checkpoint)."""
        run = self.run
        if run is None or run.status not in ACTIVE:
            self.notify("Select a queued or running run to cancel.", severity="warning")
            return
        self.cancelling.add(run.id)
        self.notify(f"Cancelling run {run.id}…")
        self._cancel(run.id)

    @work(thread=True, group="cancel")
    def _cancel(self, run_id: str) -> None:
        try:
            cancel_run(self.store.path, run_id)
        except (CuratorError, OSError) as exc:
            self.app.call_from_thread(self.notify, f"Not cancelled — {exc}", severity="error")
        finally:
            self.cancelling.discard(run_id)

    def action_again(self) -> None:
        """`a`: start the selected run again, with the same settings and snapshot, once the annotator says yes
        (`a` accepts on the review screen: a habit must not start a run)."""
        if (run := self.run) is None:
            self.notify("No run selected.", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._start(lambda: [rerun(self.store.path, run)], "Started again as run {}", select=True)

        self.app.push_screen(Confirm(f"Run {run.id} again?",
                                     f"a new {run.kind} run: {run.algorithm} on {run.base_model}, with the same "
                                     "settings and data snapshot"), answered)

    def action_evaluate(self) -> None:
        """`e`: TS / PI / CF of a completed SFT run's model on the gold set, beside its base model's."""
        run = self.run
        if run is None or (run.kind, run.algorithm, run.status) != ("train", "sft", "completed"):
            self.notify("Select a completed SFT run to evaluate.", severity="warning")
            return
        runs = list(self.runs)
        self._start(lambda: evaluate_against_base(self.store.path, run, runs), "Evaluating on the gold set: run {}")

    @work(thread=True, group="start")
    def _start(self, start: Callable[[], list[str]], message: str, select: bool = False) -> None:
        """Start runs off the UI thread (an export or a process start can take a moment)."""
        try:
            ids = start()
        except (CuratorError, OSError) as exc:
            self.app.call_from_thread(self.notify, f"Not started — {exc}", severity="error")
            return
        self.app.call_from_thread(self._started, ids, message, select)

    def _started(self, ids: list[str], message: str, select: bool) -> None:
        if not ids:
            self.notify("Already evaluated: the results are beside the run.")
            return
        self.notify(message.format(", ".join(ids)))
        if select:
            self.show_run(ids[0])
        else:
            self._reload()


def _loss_title(run: Run | None, steps: int) -> str:
    if run is not None and run.kind == "eval":
        return "no loss: an evaluation run"
    return f"training loss ({steps} steps)" if steps else "training loss: no step logged yet"
