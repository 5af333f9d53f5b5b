"""Step-level preference pairs from the policy's own alternatives (iTool's step-wise search, its sampling part).

At a buffer step the policy samples ``samples`` completions after the step's prefix (temperature
``temperature``, no top-k/top-p cut); each is read back (:func:`training.templates.parse_generation`) and
scored with the judge's error-type reward against the approved call (:func:`store.toolcalls.judge`, the
reward GRPO and evaluation use). The pair's chosen step is the approved call; its rejected step is one of
the alternatives the judge does not find correct, picked by a rule (:func:`pick_rejected`): ``likely``, the
one the policy finds most probable (the mistake it is most likely to make, a near miss), the worse-judged
among equally probable ones; or ``worst``, the worst-scoring one, the most confident (highest mean token
log-probability) among equally bad ones. At temperature 1 the worst is nearly always an invented tool or
text that is not a call, which greedy decoding hardly produces (bench/itool.md). A step where every
alternative is correct gives no pair. Each sample keeps its token ids and
their log-probability under the policy (without the temperature), so a pair can be traced to what the
policy generated.

The tree search of iTool (selection, expansion and backup over steps) is not built: each step is one
level deep, every alternative a leaf scored by the judge.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from store.records import StepPair
from store.toolcalls import CallParseError, Toolbox, judge, parse_openai_call
from training.buffer import Step
from training.data import Renderer
from training.errors import TrainingError
from training.templates import parse_generation


@dataclass
class Sample:
    """One completion the policy generated at a step, and the judge's verdict on it."""

    text: str
    token_ids: list[int]
    #: Σ log p(token) under the policy, temperature 1, over ``token_ids`` (the end-of-turn token included).
    logprob: float
    finished: bool
    message: dict[str, Any]
    reward: float = 0.0
    codes: tuple[str, ...] = ()
    #: Why the sample cannot be a rejected step (its render cannot be located), if it cannot.
    unusable: str | None = None

    @property
    def confidence(self) -> float:
        """The mean log-probability of its tokens."""
        return self.logprob / max(len(self.token_ids), 1)

    @property
    def correct(self) -> bool:
        return not self.codes

    def to_log(self) -> dict[str, Any]:
        return {"text": self.text, "token_ids": self.token_ids, "logprob": self.logprob, "finished": self.finished,
                "reward": self.reward, "codes": list(self.codes), "unusable": self.unusable}


@dataclass
class Searched:
    """A step, the policy's alternatives at it, and the one chosen as the rejected step (None: no pair)."""

    step: Step
    samples: list[Sample]
    #: The approved call's own reward (None when it cannot be read: the step is not searched).
    chosen_reward: float | None
    rejected: int | None = None
    pair_id: int | None = field(default=None)

    def pair(self, round: int, run_id: str | None, trajectory_id: str | None) -> StepPair:
        worst = self.samples[self.rejected]  # type: ignore[index]
        return StepPair(tools=self.step.tools, prefix=self.step.context, chosen=self.step.message,
                        rejected=worst.message, round=round, run_id=run_id, trajectory_id=trajectory_id,
                        chosen_reward=self.chosen_reward, rejected_reward=worst.reward,
                        rejected_error=worst.codes[0], source="search")

    def to_log(self) -> dict[str, Any]:
        return {"record_id": self.step.record_id, "trajectory_id": self.step.trajectory_id,
                "message_index": self.step.index, "stage": self.step.stage, "perplexity": self.step.perplexity,
                "chosen_reward": self.chosen_reward, "rejected": self.rejected, "pair_id": self.pair_id,
                "samples": [s.to_log() for s in self.samples]}


class Sampler:
    """Samples alternatives with a loaded policy, ``batch_size`` prompts at a time."""

    def __init__(self, model, tokenizer, samples: int, temperature: float, max_new_tokens: int, batch_size: int,
                 rejected: str):
        self.model, self.tokenizer = model, tokenizer
        self.renderer = Renderer.of(tokenizer)
        self.samples, self.temperature, self.max_new_tokens = samples, temperature, max_new_tokens
        self.batch_size, self.rejected = batch_size, rejected
        self.device = next(model.parameters()).device

    def search(self, steps: Sequence[Step]) -> list[Searched]:
        """Each step's alternatives, judged, with its rejected one picked."""
        out = []
        for start in range(0, len(steps), self.batch_size):
            batch = steps[start:start + self.batch_size]
            for step, samples in zip(batch, self._generate(batch)):
                out.append(judged(step, samples, self.renderer, self.rejected))
        return out

    def _generate(self, steps: Sequence[Step]) -> list[list[Sample]]:
        import torch

        tokenizer = self.tokenizer
        tokenizer.padding_side = "left"
        prompts = [self.renderer.prompt(s.context, s.tools) for s in steps]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        eos = tokenizer.eos_token_id
        with torch.no_grad():
            out = self.model.generate(
                **enc, do_sample=True, temperature=self.temperature, top_k=0, top_p=1.0,
                num_return_sequences=self.samples, max_new_tokens=self.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=eos,
                output_logits=True, return_dict_in_generate=True,
            )
        new = out.sequences[:, enc["input_ids"].shape[1]:]
        # per position, the log-probability of the token drawn, from the raw logits (before the temperature)
        logps = torch.stack([torch.log_softmax(step.float(), dim=-1).gather(1, new[:, t:t + 1]).squeeze(1)
                             for t, step in enumerate(out.logits)], dim=1)
        rows = []
        for row in range(new.shape[0]):
            ids = new[row].tolist()
            finished = eos in ids
            length = ids.index(eos) + 1 if finished else len(ids)
            text = tokenizer.decode(ids[:length - 1] if finished else ids, skip_special_tokens=False)
            rows.append(Sample(text, ids[:length], float(logps[row, :length].sum()), finished, as_message(text)))
        return [rows[i * self.samples:(i + 1) * self.samples] for i in range(len(steps))]


def as_message(text: str) -> dict[str, Any]:
    """A completion as an assistant message: its calls when it makes readable ones, else its text as it is."""
    generation = parse_generation(text)
    if generation.calls and not generation.error:
        calls = [{**c.to_openai(), "id": f"call_{i}"} for i, c in enumerate(generation.calls)]
        return {"role": "assistant", "content": generation.content or None, "tool_calls": calls}
    return {"role": "assistant", "content": text}


def judged(step: Step, samples: list[Sample], renderer: Renderer, rule: str) -> Searched:
    """Judge each sample against the step's approved (first) call and pick the rejected one by ``rule``."""
    tools = Toolbox(step.tools)
    try:
        gold = parse_openai_call(step.message["tool_calls"][0])
    except CallParseError:
        return Searched(step, samples, chosen_reward=None)
    for sample in samples:
        generation = parse_generation(sample.text)
        verdict = judge(generation.calls[0] if generation.calls else sample.text, gold, tools)
        sample.reward, sample.codes = verdict.reward, verdict.codes
        if not sample.correct:
            try:
                renderer.completion(step.context, sample.message, step.tools)
            except TrainingError as exc:
                sample.unusable = str(exc)
    return Searched(step, samples, chosen_reward=judge(gold, gold, tools).reward,
                    rejected=pick_rejected(samples, rule))


def pick_rejected(samples: Sequence[Sample], rule: str) -> int | None:
    """The index of the judged sample to reject, by ``rule`` (see the module's docstring); None when every
    sample is correct or unusable."""
    candidates = [i for i, s in enumerate(samples) if not s.correct and s.unusable is None]
    if not candidates:
        return None
    if rule == "likely":
        return max(candidates, key=lambda i: (samples[i].logprob, -samples[i].reward))
    if rule == "worst":
        return min(candidates, key=lambda i: (samples[i].reward, -samples[i].confidence))
    raise ValueError(f"unknown rejected-step rule {rule!r} (IToolConfig.REJECTED has the rules)")
