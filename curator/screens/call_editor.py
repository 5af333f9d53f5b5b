"""`e`: correct an assistant's tool call. The call is checked against the toolset's schema
(store/toolcalls.py, the same judge as the executor and the flagger) and only a valid call is
returned to be saved as a correction."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Static, TextArea

from curator.screens.base import Dialog
from curator.widgets.problem import Problem
from store.text import SIGN, inert, visible
from store.toolcalls import CallParseError, ToolCall, Toolbox, parse_call


class CallEditor(Dialog[ToolCall | None]):
    BINDINGS = [Binding("ctrl+s", "save", "Save correction")]

    def __init__(self, name: str, arguments: str, call_id: str | None, toolbox: Toolbox,
                 position: tuple[int, int] = (1, 1)) -> None:
        """``arguments`` is the JSON text as the model wrote it (it may not parse: that is often the fix);
        ``position`` is (this call, calls in the message). Names are shown and typed as :func:`visible` shows
        them (a name holding a control character would reach the terminal raw in the input)."""
        super().__init__()
        self.names = {visible(real, SIGN): real for real in toolbox.names}  # as shown -> as in the toolset
        self.tool_name, self.arguments, self.call_id = visible(name, SIGN), arguments, call_id
        self.toolbox = toolbox
        self.position = position

    def compose(self) -> ComposeResult:
        number, total = self.position
        which, keep = (f"call {number} of {total}", "keeps it as it is") if total > 1 else ("the call", "cancels")
        with Vertical(classes="dialog", id="call-editor"):
            yield Label(f"Correct {which} — Ctrl+S saves (checked against the schema), Esc {keep}",
                        classes="dialog-title")
            yield Problem(id="problems")
            with Grid(classes="fields"):
                yield Label("tool")
                yield Input(self.tool_name, id="name", compact=True,
                            suggester=SuggestFromList(self.names, case_sensitive=True))
                yield Label("parameters")
                yield Static(id="schema")
            yield Label("arguments (JSON)")
            yield TextArea(self.arguments, id="arguments")

    def on_mount(self) -> None:
        self._show_schema(self.tool_name)
        self.query_one("#arguments", TextArea).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self._show_schema(event.value.strip())

    def _show_schema(self, shown: str) -> None:
        name = self.names.get(shown, shown)
        if name not in self.toolbox:
            text = f"'{shown}' is not in the toolset: {', '.join(self.names)}"
        else:
            required = set(self.toolbox.required(name))
            params = [f"{p}{'*' if p in required else ''}: {s.get('type', 'any')}"
                      for p, s in self.toolbox.properties(name).items()]
            text = f"{', '.join(params) or 'none'}   (* required)"  # the tool's name is in the field above
        self.query_one("#schema", Static).update(inert(text))

    def action_save(self) -> None:
        shown = self.query_one("#name", Input).value.strip()
        name = self.names.get(shown, shown)
        arguments = self.query_one("#arguments", TextArea).text
        try:
            call = parse_call(name, arguments, id=self.call_id)
        except CallParseError as exc:
            self._problems([str(exc)])
            return
        problems = self.toolbox.check(call)
        if problems:
            self._problems([f"{p.code}: {p.detail}" for p in problems])
            return
        self.dismiss(call)

    def _problems(self, lines: list[str]) -> None:
        self.query_one(Problem).show("Not saved — " + "; ".join(lines))
