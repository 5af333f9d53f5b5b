"""The generation prompt a chat template appends, when the template's own code proves it constant.

Locating where an assistant message starts compares the conversation's render
with the prompt ``G = render(messages[:i], add_generation_prompt=True)``, one
render per assistant message. Most templates end with

    {%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}

and read ``add_generation_prompt`` nowhere else. Then rendering with and
without it runs the same code up to that last statement, so for every prefix
``G = render(messages[:i]) + H``, and when the statement's body depends on no
message, tool or variable the template assigns, ``H`` is one string for every
conversation: the render of :func:`constant_prompt`, that body alone.
Anything else (the body reads state, as DeepSeek's ``ns.is_tool``; an ``else``
branch, as Phi's ``eos_token``; the variable read elsewhere) gives ``None``,
and the prompt is rendered per message as before.

One thing the rendered prompts also checked is given up: a template that
raises on a prefix of a conversation it renders whole (none known) is no
longer refused for it; the spans, located on the whole render, are the same.
"""
from __future__ import annotations

from jinja2 import Environment, Template, nodes

GENERATION_PROMPT = "add_generation_prompt"
# Inputs that change from one prompt render to the next, and names Jinja binds itself (``self`` is the template).
_VARYING = frozenset({GENERATION_PROMPT, "messages", "tools", "self", "loop", "caller", "varargs", "kwargs"})
# Pure node kinds: constants, names, tests and the logic joining them; no calls, filters or attribute reads.
_PURE = (nodes.Output, nodes.TemplateData, nodes.Const, nodes.If, nodes.CondExpr, nodes.Name, nodes.Test,
         nodes.Not, nodes.And, nodes.Or, nodes.Compare, nodes.Operand, nodes.Concat)
# Nodes that bring in code or output from elsewhere.
_FOREIGN = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport, nodes.Block)


def constant_prompt(environment: Environment, source: str) -> Template | None:
    """That last statement's body compiled alone, when proven; its render is ``H``."""
    body = _constant_prompt_body(environment.parse(source))
    return None if body is None else environment.from_string(nodes.Template(body))


def _constant_prompt_body(tree: nodes.Template) -> list[nodes.Node] | None:
    """The body of the template's last statement if it is ``{% if add_generation_prompt %}`` with a pure body."""
    if not tree.body or tree.find(_FOREIGN) is not None:
        return None
    last = tree.body[-1]
    if not (isinstance(last, nodes.If) and isinstance(last.test, nodes.Name) and last.test.name == GENERATION_PROMPT):
        return None
    if last.elif_ or last.else_:
        return None
    reads = [n for n in tree.find_all(nodes.Name) if n.name == GENERATION_PROMPT]
    if reads != [last.test]:
        return None
    assigned = _assigned_names(tree)
    for node in last.body:
        for child in [node, *node.find_all(nodes.Node)]:
            if not isinstance(child, _PURE):
                return None
            if isinstance(child, nodes.Name) and (child.name in _VARYING or child.name in assigned):
                return None
    return last.body


def _assigned_names(tree: nodes.Template) -> set[str]:
    """Every name the template binds (``set``, loop targets, macro names and parameters, ``with``)."""
    bound = {n.name for n in tree.find_all(nodes.Name) if n.ctx != "load"}
    return bound | {m.name for m in tree.find_all(nodes.Macro)}
