"""A chat template compiled once per process, in its own sandbox, with shortcuts that render the same text.

The environment is the one ``transformers`` renders the template in (the same
immutable sandbox, filters and globals), overlaid with shortcuts that change
the cost of a render and nothing of its output:

- ``tojson`` memoised per object while one conversation is rendered (its
  perturbed twin and any prompt re-serialise the same tool schemas);
- the sandbox's attribute lookup answered directly where its answer is known:
  a plain dict's key that is no dict attribute (``message.role``), a key such a
  dict lacks (undefined), and the read-only properties of a ``for`` loop;
- ``{% generation %}`` blocks (TRL's training templates mark assistant output
  with them) rendered inline: ``transformers`` calls each as a macro, to record
  where it lands when asked for an assistant mask, which is never asked here.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from jinja2 import Template, nodes
from jinja2.compiler import find_undeclared
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.runtime import LoopContext

from training.generation_prompt import constant_prompt

_DICT_ATTRIBUTES = frozenset(dir(dict))
# Properties every LoopContext has; the sandbox deems each safe (no underscore, not internal, not a mutator).
_LOOP_PROPERTIES = frozenset(
    {"index0", "index", "revindex0", "revindex", "first", "last", "length", "depth0", "depth", "previtem", "nextitem"}
)


@dataclass(frozen=True)
class Compiled:
    """A compiled chat template; ``prompt`` is its constant generation prompt alone, when proven."""

    template: Template
    tojson: "MemoJson"
    prompt: Template | None


@lru_cache(maxsize=16)
def compiled(source: str) -> Compiled:
    """The template compiled once: every renderer of the same text shares it (and its memo, see :class:`MemoJson`)."""
    from transformers.utils.chat_template_utils import _compile_jinja_template

    environment = _compile_jinja_template(source).environment.overlay()
    environment.extensions = {k: e for k, e in environment.extensions.items() if "generation" not in e.tags}
    environment.add_extension(InlineGeneration)
    environment.filters = dict(environment.filters)
    tojson = MemoJson(environment.filters["tojson"])
    environment.filters["tojson"] = tojson
    environment.getattr = fast_getattr(environment.getattr, environment.undefined)
    return Compiled(environment.from_string(source), tojson, constant_prompt(environment, source))


def fast_getattr(sandboxed: Callable[[Any, str], Any], undefined: Callable[..., Any]) -> Callable[[Any, str], Any]:
    """The sandbox's ``getattr`` answering the commonest lookups without its checks, with its answers.

    The sandbox tries the attribute, then the item, and returns ``undefined`` when
    neither exists. On a plain dict a name that is no dict attribute is never an
    attribute, so the answer is the item or, missing, ``undefined``. A loop's
    properties pass every check the sandbox makes, so it returns them as they are.
    """

    def getattr_(obj: Any, attribute: str) -> Any:
        kind = type(obj)
        if kind is dict and attribute not in _DICT_ATTRIBUTES:
            if attribute in obj:
                return obj[attribute]
            return undefined(obj=obj, name=attribute)
        if kind is LoopContext and attribute in _LOOP_PROPERTIES:
            return getattr(obj, attribute)
        return sandboxed(obj, attribute)

    return getattr_


class InlineGeneration(Extension):
    """``{% generation %}…{% endgeneration %}`` as its body in a scope of its own: the text of the macro call it replaces.

    A call block's body runs as a macro: its output is returned whole, names it
    sets stay inside, outer names are read through. A :class:`~jinja2.nodes.Scope`
    does the same inline. Only a body naming a macro's own ``caller``,
    ``varargs`` or ``kwargs`` would tell them apart; that one stays a call.
    """

    tags = {"generation"}

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        if find_undeclared(body, ("caller", "varargs", "kwargs")):
            return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)
        return nodes.Scope(body).set_lineno(lineno)

    @staticmethod
    def _body(caller: Callable[[], str]) -> str:
        return caller()


class MemoJson:
    """``tojson`` that serialises each object once while a conversation is rendered.

    Entries keep their object alive, so an ``id`` cannot be reused while its
    entry exists, and a hit is checked to be the very object; templates run in
    an immutable sandbox, so objects do not change. Renderers of one template
    share the memo: one clearing it only costs the other a re-serialisation.
    """

    def __init__(self, dumps: Callable[..., str]):
        self._dumps = dumps
        self._cache: dict[tuple, tuple[Any, str]] = {}

    def __call__(self, value: Any, *args: Any, **kwargs: Any) -> str:
        key = (id(value), args, tuple(sorted(kwargs.items())))
        hit = self._cache.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
        text = self._dumps(value, *args, **kwargs)
        self._cache[key] = (value, text)
        return text

    def clear(self) -> None:
        self._cache.clear()
