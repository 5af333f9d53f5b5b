"""The scripted backend: offline, no model, deterministic for a seed.

It says what it is: backend ``scripted``, model ``scripted-v1`` on every
trajectory, and the plan it followed in the trajectory's ``meta["plan"]``.

The user writes each request from the toolset's schemas (and a demo's request
templates) and keeps a plan beside it: the intended calls, and before each one
possibly a planted mistake (``SimConfig.error_rate``, kind from ``error_mix``).
The assistant follows the plan: the mistake, the executor's feedback, then the
recovery a model would make; it retries a call the tool failed on, asks a
clarifying question when the request left a value out, and ends with an answer
built from the observations. Trajectory ``i`` draws from its own random stream
(seed, i), so a run's content does not depend on concurrency or timing.
"""
from __future__ import annotations

import json
import random
import re
from typing import Any, Container

from store.toolcalls import ToolCall

from .. import error_replies, mistakes
from ..config import SimConfig
from ..focus import Focus, focus_at
from ..toolsets import SimToolset
from ..values import humanize, value_for
from .base import Backend, Episode, Instruction, Reply, Written

MODEL = "scripted-v1"
#: Vague words a user writes instead of a value, by parameter name, for clarifying questions.
VAGUE = {"city": "my city", "location": "where I am", "date": "that day", "word": "that word",
         "author": "my favourite author", "isbn": "the book I mentioned", "event_id": "my appointment"}
_OPENINGS = ["Could you", "Please", "I need you to", "Can you"]
_JOINERS = ["Also, ", "And ", "Then ", "After that, "]
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
#: How often the scripted assistant retries a call the tool failed on before moving on.
MAX_RETRIES_PER_CALL = 2


class ScriptedBackend(Backend):
    name = "scripted"

    def __init__(self, config: SimConfig):
        self.config = config
        self.requests = 0
        self.retries = 0

    def model(self, role: str) -> str:
        return MODEL

    # -- user ------------------------------------------------------------------------------
    async def instructions(self, toolset: SimToolset, start: int, count: int,
                           avoid: Written) -> list[Instruction]:
        out = []
        for index in range(start, start + count):
            instruction = write_instruction(toolset, random.Random(f"{self.config.seed}:{index}:user"),
                                            self.config, avoid, focus_at(self.config.focus, index))
            avoid.add(instruction.text)
            out.append(instruction)
        return out

    async def answer(self, episode: Episode, question: str) -> str:
        clarify = episode.instruction.meta.get("plan", {}).get("clarify")
        if not clarify:
            return episode.rng.choice(["Whatever you think is best.", "Just go with the usual, please."])
        value = _spoken(clarify["value"])
        return episode.rng.choice([f"It's {value}.", f"Sorry, I meant {value}.", f"{value}, please.",
                                   f"Oh, {value}."])

    # -- assistant -------------------------------------------------------------------------
    async def act(self, episode: Episode) -> Reply:
        plan = episode.instruction.meta["plan"]
        state = episode.state
        actions: list[dict[str, Any]] = state.setdefault("actions", _actions(plan))
        position = state.get("position", 0)
        last = state.get("last")
        if last is not None and last["kind"] == "call" and _failed(episode) and last["tries"] <= MAX_RETRIES_PER_CALL:
            last["tries"] += 1
            return self._call(episode, ToolCall(**plan["calls"][last["call"]]), retry=True)
        if position >= len(actions):
            return Reply(content=_final_answer(episode))
        action = actions[position]
        state["position"] = position + 1
        state["last"] = {**action, "tries": 1}
        if action["kind"] == "ask":
            return Reply(content=episode.rng.choice([
                f"Which {humanize(action['param'])} do you mean?",
                f"Could you tell me the {humanize(action['param'])}?",
                f"Happy to help - what {humanize(action['param'])} should I use?",
            ]))
        if action["kind"] == "mistake":
            return self._mistake(episode, action["mistake"])
        return self._call(episode, ToolCall(**plan["calls"][action["call"]]), after_mistake=action["after_mistake"])

    def _call(self, episode: Episode, call: ToolCall, retry: bool = False, after_mistake: str | None = None) -> Reply:
        content = None
        if retry:
            content = episode.rng.choice([None, "The service had a hiccup; trying again."])
        elif after_mistake == "wrong_tool":
            content = episode.rng.choice([None, "That was not the information I needed; using the right tool now."])
        return Reply(content=content, tool_calls=[mistakes.call_dict(_call_id(episode), call.name, call.arguments)])

    def _mistake(self, episode: Episode, planted: dict[str, Any]) -> Reply:
        """The planted erroneous call (its ``arguments`` are the raw text for a ``parse_error``)."""
        if planted["kind"] == "tool_call_failure":
            episode.state.setdefault("failing", []).append(planted)
        return Reply(tool_calls=[mistakes.call_dict(_call_id(episode), planted["name"], planted["arguments"])])

    # -- executor --------------------------------------------------------------------------
    async def respond(self, episode: Episode, call: ToolCall) -> str:
        for planted in episode.state.get("failing", []):
            if planted["name"] == call.name and planted["arguments"] == call.arguments:
                return error_replies.call_failure(episode.rng, planted["param"], call.arguments[planted["param"]])
        return response_body(episode.toolset, call, episode.rng)

    # -- toolset designer ------------------------------------------------------------------
    async def design(self, name: str, description: str, feedback: str | None) -> str:
        return json.dumps(design_spec(name, description, random.Random(f"{self.config.seed}:{name}")))


def _call_id(episode: Episode) -> str:
    count = episode.state.get("calls", 0) + 1
    episode.state["calls"] = count
    return f"call_{episode.index}_{count}"


def _failed(episode: Episode) -> bool:
    """Whether the tool answered the assistant's last call with an error."""
    last = episode.messages[-1] if episode.messages else None
    return last is not None and last.role == "tool" and last.index in episode.errors


def response_body(toolset: SimToolset, call: ToolCall, rng: random.Random) -> str:
    """A JSON response drawn from the operation's response schema, echoing the call's own values."""
    schema = toolset.returns(call.name)
    if schema is None:
        return json.dumps({"status": "ok", "result": {**call.arguments}}, ensure_ascii=False)
    return json.dumps(_echo(value_for(schema, "result", rng), call.arguments), ensure_ascii=False)


def _echo(value: Any, arguments: dict[str, Any]) -> Any:
    """A response that repeats the call's own values where it names them (``city`` stays Paris)."""
    if isinstance(value, dict):
        return {k: arguments[k] if k in arguments and not isinstance(v, (dict, list)) else _echo(v, arguments)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_echo(v, arguments) for v in value]
    return value


def _actions(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The assistant's script: per intended call, maybe a question, maybe a mistake, then the call."""
    actions: list[dict[str, Any]] = []
    clarify = plan.get("clarify")
    for i, mistake in enumerate(plan["mistakes"]):
        if clarify and clarify["call"] == i:
            actions.append({"kind": "ask", "param": clarify["param"]})
        if mistake:
            actions.append({"kind": "mistake", "call": i, "mistake": mistake})
        actions.append({"kind": "call", "call": i, "after_mistake": mistake["kind"] if mistake else None})
    return actions


def _final_answer(episode: Episode) -> str:
    """An answer built from the last successful observation of each intended tool."""
    plan_tools = [c["name"] for c in episode.instruction.meta["plan"]["calls"]]
    found: dict[str, str] = {}
    for message in episode.messages:
        if message.role == "tool" and message.name in plan_tools and message.index not in episode.errors:
            found[message.name] = message.content or ""
    if not found:
        return "I'm sorry, the service kept failing, so I could not get that information right now."
    sentences = [_summarise(name, text) for name, text in found.items()]
    return episode.rng.choice(["Here's what I found. ", "Done. ", "", "All set. "]) + " ".join(sentences)


def _summarise(tool: str, text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return f"{humanize(tool).capitalize()}: {text[:120]}"
    facts = []
    for key, value in (data.items() if isinstance(data, dict) else []):
        if isinstance(value, (str, int, float, bool)):
            facts.append(f"{humanize(key)} {value}")
        elif isinstance(value, list):
            facts.append(f"{len(value)} {humanize(key)}")
        if len(facts) == 4:
            break
    return f"{humanize(tool).capitalize()}: " + (", ".join(facts) if facts else "done") + "."


# -- writing requests ---------------------------------------------------------------------
def write_instruction(toolset: SimToolset, rng: random.Random, config: SimConfig, taken: Container[str],
                      focus: Focus | None = None) -> Instruction:
    """One request and its plan (its first call ``focus``'s tool with its parameters, when given); redraws (from
    the same stream) until the text is new."""
    for _ in range(20):
        instruction = _draw(toolset, rng, config, focus)
        if instruction.text not in taken:
            return instruction
    return instruction


def _draw(toolset: SimToolset, rng: random.Random, config: SimConfig, focus: Focus | None) -> Instruction:
    names = toolset.box.names
    count = min(len(names), rng.choices([1, 2, 3], weights=[6, 3, 1])[0])
    if focus is None:
        tools = rng.sample(names, count)
    else:
        tools = [focus.tool] + rng.sample([n for n in names if n != focus.tool], count - 1)
    sentences, calls, clarify = [], [], None
    for i, tool in enumerate(tools):
        vague = i == 0 and rng.random() < config.clarify_rate
        wanted = focus.parameters if focus is not None and i == 0 else ()
        sentence, arguments, asked = _request(toolset, tool, rng, vague, wanted)
        if asked:
            clarify = {"call": i, "param": asked, "value": arguments[asked]}
        if i:
            joiner = rng.choice(_JOINERS)
            sentence = joiner + sentence[:1].lower() + sentence[1:]
        sentences.append(sentence)
        calls.append(ToolCall(tool, arguments))
    plan = {
        "calls": [{"name": c.name, "arguments": c.arguments} for c in calls],
        "mistakes": [_plant(toolset, c, rng, config) for c in calls],
        "clarify": clarify,
    }
    if focus is not None:
        plan["focus"] = {"tool": focus.tool, "parameters": list(focus.parameters)}
    return Instruction(" ".join(sentences), {"plan": plan})


def _request(toolset: SimToolset, tool: str, rng: random.Random, vague: bool,
             wanted: tuple[str, ...] = ()) -> tuple[str, dict[str, Any], str | None]:
    """A sentence asking for one call, its arguments, and the parameter left vague (if any); the call passes the
    ``wanted`` parameters, through the templates that name most of them, else as extras."""
    props = toolset.box.properties(tool)
    required = toolset.box.required(tool)
    templates = _naming_most(toolset.requests(tool), wanted)
    template = rng.choice(templates) if templates else None
    named = [p for p in _PLACEHOLDER.findall(template) if p in props] if template else []
    wanted_here = [p for p in wanted if p in props]
    chosen = (list(dict.fromkeys(named + required + wanted_here)) if template
              else _generic_params(props, required, rng, wanted_here))
    arguments = {p: value_for(props.get(p), p, rng) for p in chosen}
    asked = None
    if vague:
        candidates = [p for p in chosen if p in required and p in VAGUE and (not template or p in named)]
        asked = rng.choice(candidates) if candidates else None
    shown = {p: (VAGUE[p] if p == asked else _spoken(v)) for p, v in arguments.items()}
    if template:
        text = _PLACEHOLDER.sub(lambda m: str(shown.get(m.group(1), m.group(0))), template)
        extra = [p for p in chosen if p not in named]
        if extra:
            text = text.rstrip(".?!") + " (" + ", ".join(f"{humanize(p)}: {shown[p]}" for p in extra) + ")."
        return text, arguments, asked
    return _generic_sentence(toolset, tool, shown, rng), arguments, asked


def _naming_most(templates: list[str], wanted: tuple[str, ...]) -> list[str]:
    """The templates whose placeholders name the most ``wanted`` parameters (all of them when none is wanted)."""
    if not wanted or not templates:
        return templates
    hits = [len(set(_PLACEHOLDER.findall(t)) & set(wanted)) for t in templates]
    return [t for t, hit in zip(templates, hits) if hit == max(hits)]


def _generic_params(props: dict[str, Any], required: list[str], rng: random.Random,
                    wanted: list[str]) -> list[str]:
    optional = [p for p in props if p not in required and p not in wanted]
    chosen = list(dict.fromkeys(required + wanted))
    return chosen + rng.sample(optional, rng.randint(0, min(2, len(optional))))


def _generic_sentence(toolset: SimToolset, tool: str, shown: dict[str, str], rng: random.Random) -> str:
    description = toolset.by_name[tool].description.strip().split(". ")[0].rstrip(".")
    task = description[:1].lower() + description[1:] if description else f"help me with {humanize(tool)}"
    opening = rng.choice(_OPENINGS)
    mark = "?" if opening.startswith(("Could", "Can")) else "."
    text = f"{opening} {task}{mark}"
    if shown:
        text += " Use " + ", ".join(f"{humanize(p)} {v}" for p, v in shown.items()) + "."
    return text


def _spoken(value: Any) -> str:
    if isinstance(value, list):
        items = [str(v) for v in value]
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _plant(toolset: SimToolset, call: ToolCall, rng: random.Random, config: SimConfig) -> dict[str, Any] | None:
    """Maybe a mistake to make before ``call``: its kind and the erroneous call, decided up front."""
    if rng.random() >= config.error_rate:
        return None
    kinds = [k for k, w in config.error_mix.items() if w > 0]
    kind = rng.choices(kinds, weights=[config.error_mix[k] for k in kinds])[0]
    if kind == "parse_error":
        return {"kind": kind, "name": call.name, "arguments": mistakes.parse_error(call, rng), "param": None}
    for attempt in (kind, *mistakes.FALLBACKS):
        wrong = mistakes.MAKERS[attempt](toolset, call, rng)
        if wrong is not None:
            changed = [k for k in wrong.arguments if wrong.arguments[k] != call.arguments.get(k)]
            dropped = [k for k in call.arguments if k not in wrong.arguments]
            param = (changed or dropped or [None])[0]
            return {"kind": attempt, "name": wrong.name, "arguments": wrong.arguments, "param": param}
    return None


# -- designing toolsets ---------------------------------------------------------------------
def design_spec(name: str, description: str, rng: random.Random) -> dict[str, Any]:
    """A small, plausible OpenAPI 3 spec for an API known only by name and description."""
    words = re.findall(r"[A-Za-z0-9]+", name) or ["Item"]
    noun = "".join(w[:1].upper() + w[1:] for w in words)
    slug = "-".join(w.lower() for w in words)
    item = {"type": "object", "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "description": {"type": "string"},
        "category": {"type": "string"}, "updated_at": {"type": "string", "format": "date-time"}}}
    about = description.strip().rstrip(".") or f"the {name} API"
    about = about[:1].lower() + about[1:]

    def operation(op_id: str, summary: str, parameters: list[dict[str, Any]], schema: dict[str, Any]) -> dict[str, Any]:
        return {"operationId": op_id, "description": summary, "parameters": parameters,
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}}

    query = {"name": "query", "in": "query", "required": True, "description": "Words to search for",
             "schema": {"type": "string"}}
    limit = {"name": "limit", "in": "query", "required": False, "description": "Maximum number of results",
             "schema": {"type": "integer", "minimum": 1, "maximum": 50}}
    category = {"name": "category", "in": "query", "required": False, "description": "Restrict to one category",
                "schema": {"type": "string", "enum": sorted(rng.sample(["general", "popular", "new", "featured",
                                                                         "archive"], 3))}}
    ident = {"name": "id", "in": "path", "required": True, "description": f"Id of the {noun} item",
             "schema": {"type": "string"}}
    paths = {
        f"/{slug}/search": {"get": operation(f"search{noun}", f"Search {about} by keywords.", [query, limit, category],
                                             {"type": "object", "properties": {"results": {"type": "array",
                                                                                           "items": item}}})},
        f"/{slug}/{{id}}": {"get": operation(f"get{noun}Details", f"Get one item of {about} by id.", [ident], item)},
        f"/{slug}/random": {"get": operation(f"getRandom{noun}", f"Get a random item of {about}.", [category], item)},
    }
    if rng.random() < 0.5:
        paths[f"/{slug}/categories"] = {"get": operation(
            f"list{noun}Categories", f"List the categories of {about}.", [],
            {"type": "object", "properties": {"categories": {"type": "array", "items": {"type": "string"}}}})}
    return {"openapi": "3.0.0", "info": {"title": name, "version": "1.0.0", "description": description},
            "paths": paths}
