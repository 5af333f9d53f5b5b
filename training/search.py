"""Step-level preference pairs from the policy's own alternatives: iTool's step-wise tree search.

At each buffer step a :class:`training.tree.Tree` over the assistant turn starts with the approved call
(scored by the policy, never generated) and grows for ``search_iterations`` iterations: each selects a
node by UCT, the policy samples ``samples`` completions of the turn after it (temperature
``temperature``, no top-k/top-p cut), and each completion is read back
(:func:`training.templates.parse_generation`), judged with the error-type reward against the approved call
(:func:`store.toolcalls.judge`, the reward GRPO and evaluation use) and backed up its chain.

Pairs come from the forks of the tree (:func:`picks`), as iTool's: at a node with two children or more, the
best child (the highest mean reward, the approved call's side among equals) gives the chosen completion,
the approved call when it is below it, else its most probable correct completion; another child, picked
by ``--rejected``, gives the rejected one: ``worst``, the child of the lowest mean reward (the surest step
of equally bad ones) and below it the worst-judged completion; ``likely``, the wrong completion the policy
finds most probable (the highest log-probability of its tokens: a near miss) and its side. The chosen and rejected
completions share every token down to the fork and differ from its next step on: a fork below the root
puts the pair's difference at the parameter the policy gets wrong after a right prefix. A fork where no
side is right, or none wrong, gives no pair; neither does one whose completions cannot be located in the
template's render. With ``search_iterations`` 1 and ``step_depth`` 1 the tree is one level: the approved
call over one of ``samples`` alternatives.

Each sample keeps its token ids, where the policy started generating them (``start``: the tokens before
are the node it was sampled after) and their log-probability under the policy (without the temperature),
so a pair can be traced to what the policy generated.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

from store.records import StepPair
from store.toolcalls import CallParseError, Toolbox, judge, parse_openai_call
from training.buffer import Step
from training.data import Renderer
from training.errors import TrainingError
from training.templates import parse_generation
from training.tree import DELIMITER, Node, Tree

T = TypeVar("T")


@dataclass
class Sample:
    """One completion of the turn in the tree (the approved call, or one the policy generated), judged."""

    text: str
    token_ids: list[int]
    #: Σ log p(token) under the policy, temperature 1, over ``token_ids`` (the end-of-turn token included).
    logprob: float
    finished: bool
    message: dict[str, Any]
    reward: float = 0.0
    codes: tuple[str, ...] = ()
    #: Why the sample cannot be a pair's side (its render cannot be located), if it cannot.
    unusable: str | None = None
    #: How many of its first tokens it was given (the node it was sampled after) rather than generated.
    start: int = 0
    #: It is the approved call, not a generation.
    approved: bool = False

    @property
    def confidence(self) -> float:
        """The mean log-probability of its tokens."""
        return self.logprob / max(len(self.token_ids), 1)

    @property
    def correct(self) -> bool:
        return not self.codes

    def to_log(self) -> dict[str, Any]:
        return {"text": self.text, "token_ids": self.token_ids, "logprob": self.logprob, "finished": self.finished,
                "reward": self.reward, "codes": list(self.codes), "unusable": self.unusable, "start": self.start,
                "approved": self.approved}


@dataclass
class Pick:
    """A pair found at a fork of the tree: the completions on its two sides and what they share."""

    #: The steps of the turn they share (0: they differ from the first).
    depth: int
    #: The text of the turn they share.
    shared: str
    chosen: int
    rejected: int
    pair_id: int | None = None

    def to_log(self) -> dict[str, Any]:
        return {"depth": self.depth, "shared": self.shared, "chosen": self.chosen, "rejected": self.rejected,
                "pair_id": self.pair_id}


@dataclass
class Searched:
    """A step, every completion its tree holds (the approved call first) and the pairs found in it."""

    step: Step
    samples: list[Sample]
    #: The approved call's own reward (None when the step is not searched).
    chosen_reward: float | None
    picks: list[Pick] = field(default_factory=list)
    #: Steps in the tree.
    nodes: int = 0
    #: Why the step was not searched (its approved call cannot be read or its render located), if it was not.
    unsearched: str | None = None

    @property
    def generated(self) -> list[Sample]:
        return [s for s in self.samples if not s.approved]

    def pairs(self, round: int, run_id: str | None, trajectory_id: str | None) -> list[StepPair]:
        out = []
        for pick in self.picks:
            chosen, rejected = self.samples[pick.chosen], self.samples[pick.rejected]
            out.append(StepPair(tools=self.step.tools, prefix=self.step.context,
                                chosen=self.step.message if chosen.approved else chosen.message,
                                rejected=rejected.message, round=round, run_id=run_id, trajectory_id=trajectory_id,
                                chosen_reward=chosen.reward, rejected_reward=rejected.reward,
                                rejected_error=rejected.codes[0], source="search"))
        return out

    def to_log(self) -> dict[str, Any]:
        return {"record_id": self.step.record_id, "trajectory_id": self.step.trajectory_id,
                "message_index": self.step.index, "stage": self.step.stage, "perplexity": self.step.perplexity,
                "chosen_reward": self.chosen_reward, "unsearched": self.unsearched, "nodes": self.nodes,
                "picks": [p.to_log() for p in self.picks],
                "samples": [s.to_log() for s in self.samples]}


@dataclass(frozen=True)
class Settings:
    """How the tree grows and which pairs it gives (``IToolConfig``'s fields of the same names)."""

    samples: int
    temperature: float
    max_new_tokens: int
    rejected: str
    search_iterations: int = 1
    step_depth: int = 1
    exploration: float = 1.0


class Sampler:
    """Grows each step's tree with a loaded policy, ``batch_size`` steps at a time."""

    def __init__(self, model, tokenizer, settings: Settings, batch_size: int):
        self.model, self.tokenizer, self.settings, self.batch_size = model, tokenizer, settings, batch_size
        self.renderer = Renderer.of(tokenizer)
        self.device = next(model.parameters()).device

    def search(self, steps: Sequence[Step]) -> list[Searched]:
        """Each step's tree grown, its completions judged and its pairs picked."""
        out = []
        for start in range(0, len(steps), self.batch_size):
            out += self._search(steps[start:start + self.batch_size])
        return out

    def _search(self, steps: Sequence[Step]) -> list[Searched]:
        settings = self.settings
        searches = [Search(step, self.renderer, self.tokenizer, settings) for step in steps]
        prompts = [self.tokenizer(self.renderer.prompt(s.context, s.tools), add_special_tokens=False)["input_ids"]
                   for s in steps]
        for search, prompt in zip(searches, prompts):
            if search.gold is None:
                continue
            try:
                text = self.renderer.completion(search.step.context, search.step.message, search.step.tools)
            except TrainingError as exc:
                search.skip(str(exc))
                continue
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            search.add_approved(ids, self._logps(prompt, ids), self.tokenizer.eos_token_id)
        for _ in range(settings.search_iterations):
            chosen = [(search, prompt, node) for search, prompt in zip(searches, prompts)
                      if search.gold is not None and (node := search.tree.select()) is not None]
            if not chosen:
                break
            generated = self._generate([prompt + node.ids() for _, prompt, node in chosen],
                                       [settings.max_new_tokens - len(node.ids()) for _, _, node in chosen])
            for (search, _, node), completions in zip(chosen, generated):
                node.expanded = True
                for ids, logps, finished in completions:
                    search.add_sampled(node, ids, logps, finished)
        return [search.done() for search in searches]

    def _logps(self, prompt: list[int], ids: list[int]) -> list[float]:
        """Each of ``ids``' log-probability under the policy after ``prompt``: one forward, which keeps the logits
        of ``ids`` only where the model's class is known to take ``logits_to_keep``."""
        import torch

        from training.loss import HEADS, causal_lm

        keep = {"logits_to_keep": len(ids) + 1} if type(causal_lm(self.model)).__name__ in HEADS else {}
        with torch.no_grad():
            logits = self.model(torch.tensor([prompt + ids], device=self.device), **keep).logits[0, -len(ids) - 1:-1]
        chosen = torch.log_softmax(logits.float(), dim=-1).gather(1, torch.tensor(ids, device=self.device)[:, None])
        return chosen.squeeze(1).tolist()

    def _generate(self, inputs: list[list[int]], budgets: list[int]) -> list[list[tuple[list[int], list[float], bool]]]:
        """``samples`` continuations of each input, each cut to its budget: token ids, their log-probabilities
        (from the raw logits, before the temperature) and whether it reached the end of turn."""
        import torch

        tokenizer, settings = self.tokenizer, self.settings
        tokenizer.padding_side = "left"
        enc = tokenizer.pad({"input_ids": inputs}, padding=True, return_tensors="pt").to(self.device)
        eos = tokenizer.eos_token_id
        with torch.no_grad():
            out = self.model.generate(
                **enc, do_sample=True, temperature=settings.temperature, top_k=0, top_p=1.0,
                num_return_sequences=settings.samples, max_new_tokens=max(budgets),
                pad_token_id=tokenizer.pad_token_id, eos_token_id=eos,
                output_logits=True, return_dict_in_generate=True,
            )
        new = out.sequences[:, enc["input_ids"].shape[1]:]
        logps = torch.stack([torch.log_softmax(step.float(), dim=-1).gather(1, new[:, t:t + 1]).squeeze(1)
                             for t, step in enumerate(out.logits)], dim=1)
        grouped = []
        for i, budget in enumerate(budgets):
            rows = []
            for row in range(i * settings.samples, (i + 1) * settings.samples):
                ids = new[row, :budget].tolist()
                finished = eos in ids
                length = ids.index(eos) + 1 if finished else len(ids)
                rows.append((ids[:length], logps[row, :length].tolist(), finished))
            grouped.append(rows)
        return grouped


class Search:
    """One step's tree and its judged completions, in the order the tree numbers them."""

    def __init__(self, step: Step, renderer: Renderer, tokenizer, settings: Settings):
        self.step, self.renderer, self.tokenizer, self.settings = step, renderer, tokenizer, settings
        self.tools = Toolbox(step.tools)
        #: Why the step is not searched, when it is not.
        self.unsearched: str | None = None
        try:
            self.gold = parse_openai_call(step.message["tool_calls"][0])
        except CallParseError as exc:
            self.skip(f"the approved call cannot be read: {exc}")
        self.tree = Tree(self.step_ends, settings.step_depth, settings.max_new_tokens, settings.exploration)
        self.samples: list[Sample] = []

    def step_ends(self, ids: Sequence[int]) -> list[int]:
        """Where each step of ``ids`` ends: after the token at which the decoded text reaches a delimiter."""
        ends, seen = [], 0
        for i in range(1, len(ids) + 1):
            found = len(DELIMITER.findall(self.tokenizer.decode(ids[:i], skip_special_tokens=False)))
            if found > seen:
                ends.append(i)
                seen = found
        return ends

    def skip(self, reason: str) -> None:
        self.gold, self.unsearched = None, reason

    def add_approved(self, ids: list[int], logps: list[float], eos: int) -> None:
        finished = bool(ids) and ids[-1] == eos
        sample = Sample(self._text(ids, finished), ids, sum(logps), finished, self.step.message, approved=True)
        self._add(self.tree.root, sample, ids, logps)

    def add_sampled(self, node: Node, ids: list[int], logps: list[float], finished: bool) -> None:
        given = node.ids()
        full = given + ids
        text = self._text(full, finished)
        sample = Sample(text, full, sum(lp for n in node.path() for lp in n.logps) + sum(logps), finished,
                        as_message(text), start=len(given))
        self._add(node, sample, ids, logps)

    def _text(self, ids: list[int], finished: bool) -> str:
        return self.tokenizer.decode(ids[:-1] if finished else ids, skip_special_tokens=False)

    def _add(self, node: Node, sample: Sample, ids: list[int], logps: list[float]) -> None:
        judged(sample, self.gold, self.tools, self.step, self.renderer)
        index = self.tree.add(node, ids, logps, sample.finished)
        self.samples.append(sample)
        self.tree.backup(index, sample.reward)

    def done(self) -> Searched:
        if self.gold is None:
            return Searched(self.step, [], chosen_reward=None, unsearched=self.unsearched)
        found = picks(self.tree, self.samples, self.settings.rejected, self._shared)
        return Searched(self.step, self.samples, chosen_reward=self.samples[0].reward, picks=found,
                        nodes=self.tree.size())

    def _shared(self, node: Node) -> str:
        return self.tokenizer.decode(node.ids(), skip_special_tokens=False)


def as_message(text: str) -> dict[str, Any]:
    """A completion as an assistant message: its calls when it makes readable ones, else its text as it is."""
    generation = parse_generation(text)
    if generation.calls and not generation.error:
        calls = [{**c.to_openai(), "id": f"call_{i}"} for i, c in enumerate(generation.calls)]
        return {"role": "assistant", "content": generation.content or None, "tool_calls": calls}
    return {"role": "assistant", "content": text}


def judged(sample: Sample, gold, tools: Toolbox, step: Step, renderer: Renderer) -> Sample:
    """``sample`` with the judge's reward and codes against the approved (first) call, and why it cannot be a
    pair's side when the template's render of it cannot be located."""
    if sample.approved:
        verdict = judge(gold, gold, tools)
    else:
        generation = parse_generation(sample.text)
        verdict = judge(generation.calls[0] if generation.calls else sample.text, gold, tools)
        try:
            renderer.completion(step.context, sample.message, step.tools)
        except TrainingError as exc:
            sample.unusable = str(exc)
    sample.reward, sample.codes = verdict.reward, verdict.codes
    return sample


def picks(tree: Tree, samples: Sequence[Sample], rule: str, shared: Callable[[Node], str]) -> list[Pick]:
    """The pairs of the tree's forks (see the module's docstring), one per fork at most, no two the same."""
    out, seen = [], set()
    for fork in tree.forks():
        sides = []
        for child in fork.children.values():
            below = [i for i in child.below() if samples[i].unusable is None]
            right = [i for i in below if samples[i].correct]
            sides.append((child, right, [i for i in below if not samples[i].correct]))
        solved = [(child, good) for child, good, _ in sides if good]
        if not solved:
            continue
        best, good = max(solved, key=lambda side: (side[0].q, any(samples[i].approved for i in side[1]),
                                                  side[0].prior))
        wrong = [(child, bad) for child, _, bad in sides if bad and child is not best and child.q < best.q]
        if not wrong:
            continue
        _, bad = pick(wrong, rule, value=lambda side: side[0].q,
                      likely=lambda side: max(samples[i].logprob for i in side[1]), sure=lambda side: side[0].prior)
        chosen = next((i for i in good if samples[i].approved), None)
        if chosen is None:
            chosen = max(good, key=lambda i: samples[i].logprob)
        rejected = bad[pick_rejected([samples[i] for i in bad], rule)]  # type: ignore[index]
        key = json.dumps([samples[chosen].message, samples[rejected].message], sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(Pick(fork.depth, shared(fork), chosen, rejected))
    return out


def pick(items: Sequence[T], rule: str, value: Callable[[T], float], likely: Callable[[T], float],
         sure: Callable[[T], float]) -> T:
    """The item a rule rejects: ``worst``, the lowest ``value`` (the surest of equals); ``likely``, the most
    ``likely`` (the lowest value of equals)."""
    if rule == "likely":
        return max(items, key=lambda x: (likely(x), -value(x)))
    if rule == "worst":
        return min(items, key=lambda x: (value(x), -sure(x)))
    raise ValueError(f"unknown rejected-step rule {rule!r} (IToolConfig.REJECTED has the rules)")


def pick_rejected(samples: Sequence[Sample], rule: str) -> int | None:
    """The index of the judged sample to reject, by ``rule``: ``worst``, the lowest reward (the most confident,
    highest mean token log-probability, of equals); ``likely``, the highest log-probability (the worse-judged
    of equals). None when every sample is correct or unusable."""
    candidates = [i for i, s in enumerate(samples) if not s.correct and s.unusable is None]
    if not candidates:
        return None
    return pick(candidates, rule, value=lambda i: samples[i].reward, likely=lambda i: samples[i].logprob,
                sure=lambda i: samples[i].confidence)
