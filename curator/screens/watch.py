"""The watch screen: simulations arriving live, newest first, the selected one growing on the right.

The screen draws from the store, not from one simulation's events: a simulation
started here writes through a connection of its own, exactly like a headless
`curator simulate` in another terminal, and a timer notices either one's commits
(the store's data version) and redraws. Events only make the redraw come sooner.
"""
from __future__ import annotations

import time
from collections import deque
from functools import partial
from typing import Callable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.worker import get_current_worker

from curator.screens.base import StoreScreen, navigation
from curator.screens.simulate_form import SimulateForm
from curator.sim import SimConfig, Simulation, SimulationDone
from curator.sim.toolsets import demo_names
from curator.widgets.footer import KeyFooter
from curator.widgets.conversation import ConversationView, Shown
from curator.widgets.progress import Counts, WatchCounters
from curator.widgets.queue_view import QueueView
from store import Store
from store.queue import QueueFilter, position
from store.stats import Activity, activity
from store.text import SIGN, visible

#: Redraw at most this often while the store changes.
POLL_SECONDS = 0.25
#: Count at most this often (three queries over the whole store: ~0.1 s at 100,000 trajectories).
COUNT_SECONDS = 1.0
#: The rates are measured over this many seconds of samples.
RATE_WINDOW = 5.0


class WatchScreen(StoreScreen):
    BINDINGS = [
        Binding("s", "start", "Simulate", tooltip="Start simulation"),
        Binding("x", "stop", "Stop", tooltip="Stop simulation"),
        Binding("f", "follow", "Follow", tooltip="Follow live"),
        *navigation("watch"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.simulation: Simulation | None = None  # the one this screen started, while it runs
        self.finished: str | None = None  # how the last one it started ended, for the status line
        self.following = True
        self._dirty = False  # a simulation event came: redraw at the next tick even before the commit is seen
        self._samples: deque[tuple[float, int, int]] = deque()  # (time, last message rowid, finished)
        self._counts = Counts()
        self._counted_at = 0.0
        self._stale = False  # the store changed since the counters were last counted

    def compose(self) -> ComposeResult:
        yield WatchCounters(id="counters")
        with Horizontal():
            yield QueueView(self.store, QueueFilter(review="all", order="newest"), id="queue")
            yield ConversationView(id="conversation")
        yield KeyFooter()

    @property
    def queue(self) -> QueueView:
        return self.query_one(QueueView)

    def on_mount(self) -> None:
        self.store_changed()
        self.set_interval(POLL_SECONDS, self._poll)
        self._redraw()
        self._count()
        if self.curator.start_simulation is not None:
            self.simulate(self.curator.start_simulation)
            self.curator.start_simulation = None

    # -- simulations -------------------------------------------------------------------------------
    def action_start(self) -> None:
        """`s`: choose a toolset, a count and a backend, then simulate into this store."""
        if self.simulation is not None:
            self.notify("A simulation is already running: stop it first (x).", severity="warning")
            return
        toolsets = sorted(set(self.store.toolset_names()) | set(demo_names()))

        def start(config: SimConfig | None) -> None:
            if config is not None:
                self.simulate(partial(Simulation, config=config, policy=self.curator.policy))

        self.app.push_screen(SimulateForm(self.config.simulate, toolsets), start)

    def action_stop(self) -> None:
        """`x`: stop the simulation started here (running trajectories end failed / cancelled)."""
        if self.simulation is None:
            self.notify("No simulation started from this screen is running.", severity="warning")
            return
        self.simulation.cancel()

    @work(exclusive=True, group="simulation")
    async def simulate(self, make: Callable[[Store], Simulation]) -> None:
        """Run the simulation ``make`` builds on a store (``curator demo`` passes one to start on mount)."""
        with Store.open(self.store.path) as store:  # its own connection: followed like any other writer
            self.simulation = simulation = make(store)
            self.following = True
            self._update_counters()
            try:
                async for event in simulation.events():
                    self._dirty = True
                    if isinstance(event, SimulationDone):
                        self.finished = f"Simulation done: {event.summary.describe()}"
                        self.notify(self.finished, timeout=8)
            finally:
                self.simulation = None
                self._update_counters()
                self._count()  # at once: the counters agree with the status line and the queue

    # -- following the store ----------------------------------------------------------------------
    def action_follow(self) -> None:
        """`f`: follow the simulation again: a running trajectory as it grows (moving in the list stops following)."""
        self.following = True
        self._dirty = True

    def on_queue_view_highlighted(self, event: QueueView.Highlighted) -> None:
        if self.queue.has_focus:  # the annotator moved in the list: show what they chose
            self.following = False
        self._show(event.row.id if event.row else None)

    def on_screen_resume(self) -> None:
        self._poll()

    def _poll(self) -> None:
        if not self.is_current:  # the simulation goes on; the screen catches up when it is shown again
            return
        if self.store_changed() or self._dirty:
            self._dirty = False
            self._stale = True
            self._redraw()
        moving = self._counts.messages_per_s or self._counts.finished_per_min  # let the rates fall to zero
        if (self._stale or moving) and time.monotonic() - self._counted_at >= COUNT_SECONDS:
            self._stale = False
            self._count()

    def _redraw(self) -> None:
        shown = self.query_one(ConversationView).shown
        selected = self._follow_target() if self.following else shown.trajectory.id if shown else None
        self.queue.reload()
        found = position(self.store, self.queue.filter, selected) if selected else None
        self.queue.set_reactive(QueueView.cursor, found or 0)
        self.queue.refresh()
        current = self.queue.current
        self._show(current.id if current else None)

    def _follow_target(self) -> str | None:
        """The followed trajectory stays until it finishes; then the running one updated last (None: the newest)."""
        shown = self.query_one(ConversationView).shown
        if shown and self.store.trajectory_status(shown.trajectory.id) == "running":
            return shown.trajectory.id
        return self.store.latest_running()

    def _show(self, trajectory_id: str | None) -> None:
        trajectory = self.store.trajectory(trajectory_id) if trajectory_id else None
        self.query_one(ConversationView).show(Shown(trajectory) if trajectory else None, follow=self.following)

    @work(thread=True, exclusive=True, group="count")
    def _count(self) -> None:
        """Counters on a connection of their own; three indexed queries."""
        self._counted_at = time.monotonic()
        with Store.open(self.store.path) as store:
            sample = activity(store)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._take_sample, sample)

    def _take_sample(self, sample: Activity) -> None:
        now = time.monotonic()
        self._samples.append((now, sample.last_message, sample.finished))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW:
            self._samples.popleft()
        first_time, first_message, first_finished = self._samples[0]
        elapsed = now - first_time
        self._counts = Counts(
            running=sample.status("running"), complete=sample.status("complete"), failed=sample.status("failed"),
            flagged=sample.flagged,
            messages_per_s=(sample.last_message - first_message) / elapsed if elapsed > 0 else 0.0,
            finished_per_min=60 * (sample.finished - first_finished) / elapsed if elapsed > 0 else 0.0,
        )
        self._update_counters()

    def _update_counters(self) -> None:
        if self.simulation is None:
            label = (f"{self.finished} · s starts another" if self.finished else
                     "no simulation started here (a headless `curator simulate` shows up too)")
        else:
            config = self.simulation.config
            label = f"simulating {config.n} on {config.toolset} with the {config.backend} backend"
            if config.backend == "scripted":
                label += " (offline: simulated demo data, not a model's)"
        self.query_one(WatchCounters).show(self._counts, visible(label, SIGN))
