"""The pairs screen: the step-level preference pairs an iTool loop made, reviewed like trajectories.

A pair is the conversation up to one assistant step (the prefix both sides share), the step preferred
there (the approved call, or a right one the model generated) and the one the model proposed instead,
with what the judge finds wrong with it against the chosen call (``'days' is 5, expected 3``: a pair from
a fork deep in the search's tree parts at one parameter). ``a`` accepts a pair, ``x`` rejects it
(a rejected pair is not trained on: ``Store.pairs(trainable=True)``), ``u`` makes it pending again; each
key is one Store write, committed before the cursor moves on.
"""
from __future__ import annotations

from typing import Any

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from curator.screens.base import StoreScreen, navigation
from curator.widgets.conversation import call_text, pretty_json
from curator.widgets.footer import KeyFooter
from store.records import StepPair
from store.text import BREAK, SIGN, inert, visible
from store.toolcalls import CallParseError, judge, parse_openai_call

MARKS = {"accept": "✓", "reject": "✗", None: "·"}
#: How many messages of the shared prefix the pair shows (the latest ones: what the step answers).
PREFIX_SHOWN = 6
_CHOSEN, _REJECTED, _DIM = Style(color="green"), Style(color="red"), Style(dim=True)


class PairsScreen(StoreScreen):
    AUTO_FOCUS = "#pair-list"
    BINDINGS = [
        Binding("a", "decide('accept')", "Accept"),
        Binding("x", "decide('reject')", "Reject"),
        Binding("u,backspace", "decide(None)", "Undo", key_display="u", tooltip="Make the pair pending again"),
        Binding("slash", "toggle_pending", "Pending/all", key_display="/"),
        *navigation("pairs"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.pending_only = True
        self.items: list[StepPair] = []
        self.total = 0

    def compose(self) -> ComposeResult:
        yield Static(id="pairs-progress")
        with Horizontal():
            yield OptionList(id="pair-list")
            with VerticalScroll(id="pair-side"):
                yield Static(id="pair-view")
        yield KeyFooter()

    def on_mount(self) -> None:
        self._load()

    def on_screen_resume(self) -> None:
        self._load()

    @property
    def listing(self) -> OptionList:
        return self.query_one("#pair-list", OptionList)

    @property
    def current(self) -> StepPair | None:
        index = self.listing.highlighted
        return self.items[index] if index is not None and 0 <= index < len(self.items) else None

    def _load(self, keep: int | None = None) -> None:
        """Read the pairs again (pending ones, or all), with the cursor on the pair ``keep`` or the first."""
        every = self.store.pairs()
        self.total = len(every)
        self.items = [p for p in every if p.decision is None] if self.pending_only else every
        listing = self.listing
        listing.clear_options()
        listing.add_options([Option(_line(p)) for p in self.items])
        ids = [p.id for p in self.items]
        if self.items:
            listing.highlighted = ids.index(keep) if keep in ids else 0
        reviewed = sum(p.decision is not None for p in every)
        rejected = sum(p.decision == "reject" for p in every)
        self.query_one("#pairs-progress", Static).update(Text(
            f"{len(every)} pairs · {reviewed} reviewed · {rejected} rejected (not trained on) · showing "
            + ("pending" if self.pending_only else "all") + " (/ toggles)"))
        self._show()

    def on_option_list_option_highlighted(self) -> None:
        self._show()

    def _show(self) -> None:
        pair = self.current
        view = self.query_one("#pair-view", Static)
        if pair is None:
            view.update(Text("Every pair is reviewed: / shows them all." if self.total else
                             "No pairs yet: `curator train itool` makes them where the model is weakest.", "italic"))
            return
        view.update(pair_text(pair))

    def action_decide(self, decision: str | None) -> None:
        pair = self.current
        if pair is None or pair.id is None:
            return
        self.store.decide_pair(pair.id, decision, annotator=self.annotator)
        index = self.listing.highlighted or 0
        following = self.items[index + 1].id if index + 1 < len(self.items) else None
        self._load(keep=following if self.pending_only else pair.id)

    def action_toggle_pending(self) -> None:
        self.pending_only = not self.pending_only
        pair = self.current
        self._load(keep=pair.id if pair else None)


def _line(pair: StepPair) -> Text:
    """One row of the list: decision, round, the rejected step's error kind, the last user request."""
    request = next((m.get("content") for m in reversed(pair.prefix) if m.get("role") == "user"), "") or ""
    return Text.assemble(f"{MARKS.get(pair.decision, '?')} r{pair.round} ",
                         (f"{pair.rejected_error or '–':<18.18} ", _DIM), visible(" ".join(str(request).split()), SIGN))


def pair_text(pair: StepPair) -> Text:
    """The pair as inert text: the end of the shared prefix, then the chosen and the rejected step with their
    rewards."""
    parts = []
    hidden = max(0, len(pair.prefix) - PREFIX_SHOWN)
    if hidden:
        parts.append(Text(f"… {hidden} earlier messages", _DIM))
    parts.extend(_message(m) for m in pair.prefix[hidden:])
    parts.append(_side("chosen", pair.chosen, pair.chosen_reward, None, _CHOSEN))
    parts.append(_side("rejected", pair.rejected, pair.rejected_reward, pair.rejected_error, _REJECTED))
    why = _why(pair)
    if why:
        parts.append(Text("\n").join(inert(f"✗ {detail}", _REJECTED) for detail in why))
    return Text("\n\n").join(parts)


def _why(pair: StepPair) -> list[str]:
    """What the judge finds wrong with the rejected step against the chosen call (none when the chosen step
    makes no readable call or the pair has no toolset to judge with)."""
    calls = pair.chosen.get("tool_calls") or []
    if not calls or not pair.tools:
        return []
    try:
        gold = parse_openai_call(calls[0])
    except CallParseError:
        return []
    rejected = pair.rejected.get("tool_calls") or []
    verdict = judge(rejected[0] if rejected else str(pair.rejected.get("content") or ""), gold, pair.tools)
    return [p.detail for p in verdict.problems]


def _message(message: dict[str, Any]) -> Text:
    role = str(message.get("role"))
    content = message.get("content")
    body = inert(pretty_json(content) if role == "tool" and isinstance(content, str) else content or "",
                 newline=BREAK)
    calls = [call_text(c, "→ ", Style()) for c in message.get("tool_calls") or []]
    return Text("\n").join([Text(role, "bold"), *([body] if content else []), *calls])


def _side(label: str, message: dict[str, Any], reward: float | None, error: str | None, style: Style) -> Text:
    head = Text(f"{label}", style + Style(bold=True))
    if reward is not None:
        head.append(f"  reward {reward:+.2f}", style)
    if error:
        head.append("  ", style).append(inert(error, style))
    content = message.get("content")
    body = [inert(content, newline=BREAK)] if content else []
    calls = [call_text(c, "→ ", style) for c in message.get("tool_calls") or []]
    return Text("\n").join([head, *body, *calls] if body or calls else [head, Text("(empty)", _DIM)])
