"""The Textual app: one store, a screen per area (home, watch, review, runs), help and the command palette.

Screens are modes, so a simulation started on the watch screen keeps running
while you review, and each screen keeps its place when you come back. `T`
(export and train) is the app's, so the review and runs screens share it.
"""
from __future__ import annotations

import getpass
from functools import partial
from typing import Callable, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen

from curator.demo_model import store_preset
from curator.settings import Config, TrainSettings
from curator.launcher import accepted_count, export_and_train
from curator.screens.base import described
from curator.screens.help import HelpScreen
from curator.screens.home import HomeScreen
from curator.screens.pairs import PairsScreen
from curator.screens.review import ReviewScreen
from curator.screens.runs import RunsScreen
from curator.screens.train_form import TrainChoice, TrainForm
from curator.screens.watch import WatchScreen
from curator.sim import Simulation
from store import CuratorError, Store
from store.flagging import flag_all
from store.queue import QueueFilter
from store.taxonomy import MaskPolicy
from store.text import BREAK, visible


class CuratorApp(App[None]):
    TITLE = "curator"
    CSS_PATH = "styles/app.tcss"
    MODES = {"home": HomeScreen, "watch": WatchScreen, "review": ReviewScreen, "runs": RunsScreen,
             "pairs": PairsScreen}
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, store: Store, config: Config, *, screen: str = "home", annotator: str | None = None,
                 simulate: Callable[[Store], Simulation] | None = None,
                 review_filter: QueueFilter | None = None) -> None:
        """``simulate`` builds a simulation the watch screen starts when it opens (``curator demo``);
        ``annotator`` (``curator --annotator``) wins over ``[review] annotator``, which wins over the OS user;
        ``review_filter`` is the review queue's first filter and order (``curator review --order
        hardest --hide-duplicates``; ``/`` changes both)."""
        super().__init__()
        if screen not in self.MODES:
            raise ValueError(f"screen must be one of {', '.join(self.MODES)}, got {screen!r}")
        self.store = store
        self.config = config
        config.train.preset = store_preset(store)  # the demo store's recipe, under [train]
        #: The one mask policy (``[flag]``): review re-flags with it, simulations and ``T`` train with it.
        self.policy: MaskPolicy = config.flag.policy()
        self.annotator = annotator or config.review.annotator or getpass.getuser()
        store.set_decision_rule(config.review.rule)  # what review, the counts and `T` read follows the config
        self.first_screen = screen
        self.start_simulation = simulate
        self.review_filter = review_filter or QueueFilter()
        self.train_chosen = False  # `T` asks for the settings once a session, then starts at once

    def on_mount(self) -> None:
        self.switch_mode(self.first_screen)

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Every notification of the app (a widget's ``notify`` lands here) as inert text: they quote ids, names
        and errors from the data. ``markup`` is never honoured (a widget's ``notify`` passes True unless told
        otherwise). Thread-safe, like Textual's."""
        super().notify(visible(message, BREAK), title=visible(title, BREAK), severity=severity, timeout=timeout,
                       markup=False)

    def action_open(self, screen: str) -> None:
        """Go to one of the app's screens (``home``, ``watch``, ``review``, ``runs``)."""
        self.switch_mode(screen)

    # -- export and train ----------------------------------------------------------------------------
    def action_train(self, choose: bool = False) -> None:
        """`T`: export the accepted trajectories and train on them (the settings dialog first, once a session)."""
        accepted = accepted_count(self.store)
        if not accepted:
            self.notify("Nothing to train on: no trajectory is accepted yet (a accepts one).", severity="error")
            return
        if choose or not self.train_chosen:
            self.push_screen(TrainForm(self.config.train, self.policy.masks_instability, accepted),
                             self._train_chosen)
            return
        t = self.config.train
        self.notify(f"Exporting the {accepted:,} accepted trajectories and training {t.algorithm} on "
                    f"{t.config().base_model} with the settings chosen before (t on the runs screen changes them).")
        self._export_and_train(t)

    def _train_chosen(self, choice: TrainChoice | None) -> None:
        if choice is None:
            return
        self.config.train, self.config.flag.mask_instability = choice
        self.train_chosen = True
        policy = self.config.flag.policy()
        self._export_and_train(choice.train, save=True, policy=policy if policy != self.policy else None)

    @work(thread=True, group="train")
    def _export_and_train(self, settings: TrainSettings, save: bool = False, policy: MaskPolicy | None = None) -> None:
        """Save the settings, snapshot the accepted trajectories and start the run, off the UI thread.

        A new ``policy`` (the dialog's instability choice changed) re-flags the store first,
        so what review shows stays what the run trains on.
        """
        if save:
            try:
                self.config.save()
            except OSError as exc:
                self.call_from_thread(self.notify, f"Settings not saved: {exc}", severity="warning")
        if policy is not None:
            with Store.open(self.store.path) as store:
                flag_all(store, policy)
            self.policy = policy
        try:
            run_id = export_and_train(self.store.path, settings, self.policy)
        except (CuratorError, OSError) as exc:
            self.call_from_thread(self.notify, f"Not started — {exc}", severity="error")
            return
        self.call_from_thread(self._show_run, run_id)

    async def _show_run(self, run_id: str) -> None:
        await self.switch_mode("runs")
        if isinstance(self.screen, RunsScreen):
            self.screen.show_run(run_id)

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
            yield SystemCommand(described(binding), f"key: {display}",
                                partial(self.run_action, binding.action, active.node))
        yield from super().get_system_commands(screen)
