"""The first screen: what is in the store, and where to go from here."""
from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from curator.screens.base import StoreScreen, navigation
from curator.screens.report import ReportScreen
from curator.widgets.footer import KeyFooter
from store import Store
from store.queue import Progress, QueueFilter, progress
from store.stats import backend_counts
from store.text import SIGN, inert, visible


class HomeScreen(StoreScreen):
    BINDINGS = [Binding("c", "report", "Coverage", show=False, tooltip="Coverage report"),
                *navigation("home", shown=("review", "watch", "runs"))]

    def compose(self) -> ComposeResult:
        with Vertical(id="home"):
            yield Static(Text("curator", "bold"), id="home-title")
            yield Static(inert(f"store: {self.store.path}"), id="home-store")
            yield Static("counting…", id="home-summary")
            yield Static(Text.assemble(
                ("w", "bold"), "  watch simulations arrive live, start or stop one\n",
                ("r", "bold"), "  review the queue: accept, reject, tag and correct by keyboard; T trains on the accepted\n",
                ("R", "bold"), "  training and evaluation runs: live loss, cancel, run again, evaluate against the base\n",
                ("P", "bold"), "  the step-level preference pairs an iTool loop made: accept or reject before DPO trains\n",
                ("c", "bold"), "  coverage report: calls, parameters never exercised and errors per tool\n",
                ("?", "bold"), "  every key          ", ("ctrl+p", "bold"), "  every action",
            ), id="home-menu")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._summarise()

    def action_report(self) -> None:
        """`c`: the coverage report."""
        self.app.push_screen(ReportScreen())

    def on_screen_resume(self) -> None:
        self._summarise()

    @work(thread=True, exclusive=True)
    def _summarise(self) -> None:
        with Store.open(self.store.path) as store:
            done = progress(store, QueueFilter(review="all"))
            backends = backend_counts(store)
        self.app.call_from_thread(self._show, done, backends)

    def _show(self, done: Progress, backends: dict[str, int]) -> None:
        if not done.total:
            self.query_one("#home-summary", Static).update(Text(
                "The store is empty. Press w, then s to simulate conversations (the scripted backend needs no key "
                "or network), or quit (q) and run `curator demo`, or `curator import FILE`.", "bold"))
            return
        rate = "–" if done.accept_rate is None else f"{done.accept_rate:.0%}"
        text = Text(f"{done.total} trajectories · {done.pending} pending · "
                    f"{done.accepted} accepted · {done.rejected} rejected · {done.skipped} skipped · "
                    + (f"{done.disputed} disputed · " if done.disputed else "") + f"accept rate {rate}")
        if backends:
            made_by = ", ".join(f"{name} backend ({n})" for name, n in sorted(backends.items()))
            text.append("\nmade by: " + visible(made_by, SIGN))
        if "scripted" in backends:
            text.append("\nThe scripted backend is offline and deterministic: its conversations are simulated "
                        "demo data, not a model's.", "italic")
        self.query_one("#home-summary", Static).update(text)
