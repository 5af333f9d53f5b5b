"""The review screen: a paged queue on the left, the trajectory as a conversation on the right.

Every key is an action method here that calls one Store method; the write is
committed before the screen moves on, so quitting, a crash or ``kill -9`` loses
nothing that was shown as done. Two sessions on one store never clash: reviews
are appended, never updated, and each screen follows the other's commits.

Under several annotators the title shows who decided what; in the
"disagreements" queue the annotator adjudicates: their accept or reject
settles the trajectory whatever the votes (``store.decisions``).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple, Sequence

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Static
from textual.worker import get_current_worker

from curator.screens.base import StoreScreen, navigation
from curator.screens.call_editor import CallEditor
from curator.screens.filter import FilterDialog
from curator.screens.mask_preview import MaskPreview
from curator.screens.prompt import TextPrompt
from curator.screens.tag_picker import TagPicker
from curator.widgets.footer import KeyFooter
from curator.widgets.conversation import ConversationView, Shown, call_arguments
from curator.widgets.progress import ReviewProgress
from curator.widgets.queue_view import QueueView
from store import Correction, Message, Store
from store.decisions import Vote, describe_tags, describe_votes
from store.queue import Progress, QueueFilter, count, position, progress
from store.flagging import flag_trajectory
from store.text import SIGN, inert, json_text, visible
from store.toolcalls import ToolCall, Toolbox

#: How often the screen looks for other sessions' commits (one read of the store's data version).
POLL_SECONDS = 1.0


class ReviewScreen(StoreScreen):
    AUTO_FOCUS = ""  # keys go to the screen; Tab focuses the queue to move in it with the arrows
    BINDINGS = [
        Binding("a", "decide('accept')", "Accept"),
        Binding("x", "decide('reject')", "Reject"),
        Binding("space", "decide('skip')", "Skip"),
        Binding("u,backspace", "undo", "Undo", key_display="u"),
        Binding("j,down", "step(1)", "Next message", key_display="j/↓", show=False),
        Binding("k,up", "step(-1)", "Previous message", key_display="k/↑", show=False),
        Binding("t", "tag", "Tag"),
        Binding("m", "mask", "Mask", show=False),
        Binding("e", "edit_call", "Edit", tooltip="Edit call"),
        Binding("n", "note", "Note", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("p", "preview", "Loss mask", show=False),
        Binding("T", "app.train", "Train"),
        Binding("J", "trajectory(1)", "Next trajectory", show=False),
        Binding("K", "trajectory(-1)", "Previous trajectory", show=False),
        *navigation("review"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.undo_stack: list[tuple[int, str]] = []  # this session's (review id, trajectory id), newest last
        self.shown: Shown | None = None
        self.progress: Progress | None = None  # the last count, kept current by this session's decisions
        self._generation = 0  # bumped by every change, so a count started before it is not shown

    def compose(self) -> ComposeResult:
        yield ReviewProgress("counting…", id="progress")
        with Horizontal():
            yield QueueView(self.store, self.curator.review_filter, id="queue")
            with Vertical(id="trajectory"):
                yield Static(id="trajectory-title")
                yield ConversationView(id="conversation")
        yield KeyFooter()

    @property
    def queue(self) -> QueueView:
        return self.query_one(QueueView)

    @property
    def conversation(self) -> ConversationView:
        return self.query_one(ConversationView)

    def on_mount(self) -> None:
        self.store_changed()
        self._reload(recount=False)
        self.call_after_refresh(self._recount)  # the first paint does not wait for (or compete with) counting
        self.set_interval(POLL_SECONDS, self._poll)

    # -- decisions ---------------------------------------------------------------------------------
    @property
    def adjudicating(self) -> bool:
        """Whether a decision here is an adjudication: the queue holds the disagreements."""
        return self.queue.filter.review == "disagreements"

    def action_decide(self, decision: str) -> None:
        """`a` / `x` / `space`: append the decision (committed on return), then show the next trajectory.

        While adjudicating, an accept or reject settles the disagreement; a skip stays a skip (no vote),
        so the trajectory waits in the queue for later.
        """
        if self.shown is None:
            self.notify("The queue is empty.", severity="warning")
            return
        trajectory_id = self.shown.trajectory.id
        before = self._standing(trajectory_id)
        review_id = self.store.decide(trajectory_id, decision, annotator=self.annotator,
                                      adjudication=self.adjudicating and decision != "skip")
        self.undo_stack.append((review_id, trajectory_id))
        self._decided(before, self._standing(trajectory_id))
        if self.shown is not None and self.shown.trajectory.id == trajectory_id:  # still queued: step past it
            self.queue.select(self.queue.cursor + 1)

    def action_undo(self) -> None:
        """`u` / `backspace`: undo this session's last decision and go back to that trajectory."""
        if not self.undo_stack:
            self.notify("Nothing to undo in this session.", severity="warning")
            return
        review_id, trajectory_id = self.undo_stack.pop()
        before = self._standing(trajectory_id)
        self.store.undo(review_id, annotator=self.annotator)
        self._decided(before, self._standing(trajectory_id))
        found = position(self.store, self.queue.filter, trajectory_id)
        if found is not None:
            self.queue.select(found)
        self.notify(f"Undid the decision on {trajectory_id}.")

    def _standing(self, trajectory_id: str) -> Standing:
        return Standing(self.store.decision(trajectory_id), self.store.disagreement(trajectory_id))

    def _decided(self, old: Standing, new: Standing) -> None:
        """Our own decision moved one trajectory: update the counts without recounting, then page again."""
        self._generation += 1
        held = self.queue.filter
        self.queue.set_total(self.queue.total + int(held.admits(*new)) - int(held.admits(*old)))
        if self.progress is not None:
            self.progress = self.progress.moved(old.decision, new.decision)
            self._show_progress()
        else:
            self._count(held, self._generation)
        self._reload(recount=False)

    # -- moving --------------------------------------------------------------------------------------
    def action_step(self, delta: int) -> None:
        """`j` / `k`: the next or previous message."""
        self.conversation.move(delta)

    def action_trajectory(self, delta: int) -> None:
        """`J` / `K`: the next or previous trajectory in the queue, without deciding."""
        self.queue.select(self.queue.cursor + delta)

    def on_queue_view_highlighted(self, event: QueueView.Highlighted) -> None:
        self._show(event.row.id if event.row else None)

    # -- step-level work ------------------------------------------------------------------------------
    def action_tag(self) -> None:
        """`t`: toggle an error code on the message (a human tag or un-tag), then recompute the mask."""
        if (target := self._target()) is None:
            return
        trajectory_id, index = target.trajectory_id, target.index
        present = {t.code: t.source for t in target.shown.trajectory.tags if t.message_index == index}

        def toggle(code: str | None) -> None:
            if code is None:
                return
            if code in present:
                self.store.remove_tag(trajectory_id, code, index, annotator=self.annotator)
            else:
                self.store.add_tag(trajectory_id, code, index, source="human", annotator=self.annotator)
            flag_trajectory(self.store, trajectory_id, self.curator.policy)
            self._show(trajectory_id)

        self.app.push_screen(TagPicker(f"message #{index}", present), toggle)

    def action_mask(self) -> None:
        """`m`: toggle the training weight of an assistant message (a human setting, never re-flagged)."""
        if (target := self._target(only_assistant="Only assistant messages carry a training weight.")) is None:
            return
        weight = 1 if target.message.weight == 0 else 0
        self.store.set_weight(target.trajectory_id, target.index, weight, source="human", annotator=self.annotator)
        self._show(target.trajectory_id)

    def action_edit_call(self) -> None:
        """`e`: correct the message's tool calls; saved as a correction only when the schema accepts them."""
        if (target := self._target(only_assistant="Only an assistant message has a call to correct.")) is None:
            return
        correction = target.shown.corrections.get(target.index)
        calls = list(correction.tool_calls if correction else target.message.tool_calls or [])  # as last corrected
        if not calls:
            self.notify(f"Message #{target.index} has no tool call to correct: t tags what is wrong with it, "
                        "n notes it.", severity="warning")
            return
        toolset = self.store.toolset(target.shown.trajectory.toolset or "")
        if toolset is None:
            self.notify("This trajectory's toolset is not in the store: nothing to check the call against.",
                        severity="error")
            return
        self._edit_calls(target.trajectory_id, target.index, calls, Toolbox(toolset.openai_tools()))

    def _edit_calls(self, trajectory_id: str, index: int, calls: list[dict], toolbox: Toolbox) -> None:
        """One editor per call, in order; Esc keeps a call as it is. One correction holds every call once
        the last is done, and only when one of them changed."""
        fixed: list[dict] = []

        def edit(position: int) -> None:
            function = calls[position].get("function") or {}
            text = json_text(call_arguments(function.get("arguments") or "{}"))
            editor = CallEditor(str(function.get("name") or ""), text, calls[position].get("id"), toolbox,
                                position=(position + 1, len(calls)))
            self.app.push_screen(editor, lambda call: done(position, call))

        def done(position: int, call: ToolCall | None) -> None:
            fixed.append(calls[position] if call is None else call.to_openai())
            if position + 1 < len(calls):
                edit(position + 1)
            elif fixed != calls:
                self.store.add_correction(Correction(trajectory_id, index, fixed, annotator=self.annotator))
                self._show(trajectory_id)
                self.notify(f"Saved the correction of message #{index}.")

        edit(0)

    def action_preview(self) -> None:
        """`p`: the shown trajectory's tokens coloured by loss weight, as `T`'s SFT run would train them."""
        record = self.store.record(self.shown.trajectory.id) if self.shown else None
        if record is None:
            self.notify("Nothing to preview: no trajectory is shown.", severity="warning")
            return
        self.app.push_screen(MaskPreview(record, self.config.train))

    def action_note(self) -> None:
        """`n`: a free-text note on the message."""
        if (target := self._target()) is None:
            return
        trajectory_id, index = target.trajectory_id, target.index

        def save(text: str | None) -> None:
            if text:
                self.store.add_note(trajectory_id, text, index, annotator=self.annotator)
                self._show(trajectory_id)

        self.app.push_screen(TextPrompt(f"Note on message #{index}", "what is wrong, or worth knowing"), save)

    def action_filter(self) -> None:
        """`/`: change which trajectories the queue holds."""
        def apply(chosen: QueueFilter | None) -> None:
            if chosen is not None:
                self._reload(chosen)

        self.app.push_screen(FilterDialog(self.queue.filter, self.store.toolset_names()), apply)

    # -- loading -------------------------------------------------------------------------------------
    def _reload(self, queue_filter: QueueFilter | None = None, *, recount: bool = True) -> None:
        """Page the queue again (under ``queue_filter`` when given), show the row under the cursor, recount."""
        self.queue.reload(queue_filter)
        current = self.queue.current
        self._show(current.id if current else None)
        if recount:
            self._recount()

    def _recount(self) -> None:
        self._generation += 1
        self._count(self.queue.filter, self._generation)

    def _poll(self) -> None:
        if self.is_current and self.store_changed():  # a hidden screen catches up when it is shown again
            self._reload()

    def on_screen_resume(self) -> None:
        self._poll()

    def _show(self, trajectory_id: str | None) -> None:
        trajectory = self.store.trajectory(trajectory_id) if trajectory_id else None
        if trajectory is None:
            self.shown = None
            self.query_one("#trajectory-title", Static).update("Nothing to review here: the queue is empty.")
            self.conversation.show(None)
            return
        notes: dict[int | None, list[str]] = defaultdict(list)
        for note in trajectory.notes:
            notes[note.message_index].append(note.text)
        corrections = {c.message_index: c for c in trajectory.corrections}
        self.shown = Shown(trajectory, corrections, dict(notes))
        votes = self.store.votes(trajectory.id)
        tags = describe_tags(votes, self.store.annotator_tags(trajectory.id))
        title = _title(self.shown, votes, self.store.disagreement(trajectory.id), tags)
        self.query_one("#trajectory-title", Static).update(title)
        self.conversation.show(self.shown)

    @work(thread=True, exclusive=True, group="count")
    def _count(self, queue_filter: QueueFilter, generation: int) -> None:
        """Count the queue and the progress on a connection of its own (tens of ms at 100,000 trajectories).

        Runs when the filter changes or another session commits; this session's own decisions
        update the counts in place (``_decided``), so reviewing never waits for a count.
        """
        with Store.open(self.store.path) as store:
            total, done = count(store, queue_filter), progress(store, queue_filter)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_counts, generation, total, done)

    def _show_counts(self, generation: int, total: int, done: Progress) -> None:
        if generation != self._generation:  # counted before a later change: count again
            self._count(self.queue.filter, self._generation)
            return
        self.progress = done
        self.queue.set_total(total)
        self._show_progress()

    def _show_progress(self) -> None:
        if self.progress is not None:
            self.query_one(ReviewProgress).show(self.progress, self.queue.filter.describe(), self.queue.total,
                                                adjudicator=self.annotator if self.adjudicating else None)

    def _target(self, only_assistant: str | None = None) -> Target | None:
        """The message under the cursor, or None once the annotator is told why not.

        ``only_assistant``: the warning when the message must be an assistant's and is not.
        """
        message = self.conversation.message
        if self.shown is None or message is None or message.index is None:
            self.notify("No message selected.", severity="warning")
            return None
        if only_assistant is not None and message.role != "assistant":
            self.notify(only_assistant, severity="warning")
            return None
        return Target(self.shown, message, message.index)


class Standing(NamedTuple):
    """Where a trajectory stands for the queue filters (``QueueFilter.admits``)."""

    decision: str | None
    disagreement: bool


@dataclass(frozen=True)
class Target:
    """The message a step-level key (`t`, `m`, `e`, `n`) works on, in the trajectory shown."""

    shown: Shown
    message: Message
    index: int  # the message's index in its trajectory (``message.index``, known not to be None)

    @property
    def trajectory_id(self) -> str:
        return self.shown.trajectory.id


def _title(shown: Shown, votes: Sequence[Vote], disagreement: bool, annotator_tags: str = "") -> Text:
    """The trajectory's id, toolset, status, origin and decision, who decided what (a disagreement said so) and,
    with several annotators, each one's tags side by side, its reason, request, whole-trajectory tags and notes:
    each a line of inert text."""
    t = shown.trajectory
    backend = f"{t.backend} backend" + (" (offline, simulated data)" if t.backend == "scripted" else "")
    parts = [t.id, f"toolset {t.toolset or '–'}", t.status, backend if t.backend else t.source,
             f"decision: {t.decision or 'pending'}"]
    whole = [f"⚑ {g.code} ({g.source})" for g in t.tags if g.message_index is None]
    text = inert(" · ".join(parts), "bold")
    if votes:
        text.append("\n⚖ disagreement: " if disagreement else "\nvotes: ", "bold yellow" if disagreement else "dim")
        text.append(visible(describe_votes(votes), SIGN))
    if annotator_tags:
        text.append("\ntags: ", "dim")
        text.append(visible(annotator_tags, SIGN))
    if t.reason:
        text.append(f"\nreason: {visible(t.reason, SIGN)}", "dim")
    text.append(f"\n{visible(t.instruction, SIGN)}")
    if whole or shown.notes.get(None):
        text.append("\n" + visible("  ".join(whole + [f"✍ {n}" for n in shown.notes.get(None, [])]), SIGN))
    return text
