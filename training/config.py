"""Every training and evaluation default, in one config dataclass per algorithm (TRL's habit).

``SFTConfig``, ``GRPOConfig``, ``DPOConfig``, ``IToolConfig``, ``EvalConfig`` and ``ScoreConfig`` are the
only place a default lives. ``python -m training <algorithm>`` parses its arguments into one of them
(:func:`parse`); ``curator train`` and the app's ``T`` pass only the fields that
``curator.toml [train]``, the dialog or the command line override, so the same
arguments give the same recorded configuration whichever way a run starts.

Defaults that depend on the base model are resolved here, when the config is made:
a learning rate left unset becomes the algorithm's rate for that base model. A
``max_length`` left unset is the base model's context length, capped by
``max_length_cap``; that needs the loaded model, so the trainer resolves it. A
``gradient_checkpointing`` left unset is off for tiny and demo; for another model the
trainer turns it on when a GPU trains (``training.models.gradient_checkpointing``).

This module imports nothing beyond the standard library: ``curator`` reads it (to
validate overrides and show defaults) without importing torch.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import types
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

TINY = "tiny"
#: The demo base model: a tiny model pretrained once on scripted simulations of other toolsets (see DemoBase).
DEMO = "demo"


class ArgumentError(ValueError):
    """A command line or a config value that does not hold, in one line."""


class BadValue(ArgumentError):
    """One field's value is out of range: ``name`` is the field, ``problem`` what is wrong."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"--{name.replace('_', '-')}: {problem}")
        self.name, self.problem = name, problem


def _help(text: str, *aliases: str) -> dict[str, Any]:
    return {"help": text, "aliases": list(aliases)}


@dataclass
class TinyConfig:
    """Size and style of the tiny model built offline; ``--tiny-config`` overrides any field with JSON."""

    template: str = "chatml"
    vocab_size: int = 1024
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 4096
    seed: int = 0

    @classmethod
    def from_json(cls, text_or_path: str | None) -> "TinyConfig":
        """A config from a JSON object or a JSON file; unknown keys are an error."""
        if not text_or_path:
            return cls()
        path = Path(text_or_path)
        data = json.loads(path.read_text() if path.is_file() else text_or_path)
        if not isinstance(data, dict):
            raise ValueError("must be a JSON object")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown tiny config keys: {', '.join(sorted(unknown))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DataConfig:
    """Where the data comes from and what shapes the model; every command has these."""

    data: str | None = field(default=None, metadata=_help("a JSONL export or a curated SQLite file"))
    db: str | None = field(default=None, metadata=_help(
        "the curator store: records the run (and is the dataset when --data is not given)"))
    output: str | None = field(default=None, metadata=_help("output directory (default runs/<command>-<time>)"))
    tiny_config: str | None = field(default=None, metadata=_help(
        "JSON (or a JSON file) overriding the tiny model's size and template"))
    chat_template: str | None = field(default=None, metadata=_help(
        "chatml|llama3|plain or a Jinja file, replacing the tokenizer's template"))
    seed: int = field(default=0, metadata=_help("random seed"))
    threads: int | None = field(default=None, metadata=_help("torch CPU threads (default: torch's choice)"))
    #: ``tiny_config`` read, when the config is made: a bad one is an error before anything loads.
    tiny: TinyConfig = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self.tiny = TinyConfig.from_json(self.tiny_config)
        except (ValueError, TypeError, OSError) as exc:
            raise ArgumentError(f"--tiny-config: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingConfig(DataConfig):
    """What every training run is told; each algorithm's config extends it."""

    algorithm: ClassVar[str] = ""
    base_model: str = field(default=TINY, metadata=_help(
        "hub id, local directory, adapter directory, 'tiny' or 'demo' (the cached demo base)"))
    max_steps: int = field(default=-1, metadata=_help("optimizer steps; -1: --epochs decide"))
    epochs: float = field(default=3.0, metadata=_help("passes over the data when --max-steps is -1"))
    batch_size: int = field(default=4, metadata=_help("examples per device and micro-batch"))
    grad_accum: int = field(default=1, metadata=_help("micro-batches per optimizer step"))
    learning_rate: float | None = field(default=None, metadata=_help(
        "peak learning rate (default: the algorithm's rate for the base model)", "--lr"))
    lora_r: int = field(default=16, metadata=_help("LoRA rank"))
    lora_alpha: int = field(default=32, metadata=_help("LoRA alpha"))
    lora_dropout: float = field(default=0.05, metadata=_help("LoRA dropout"))
    lora_target_modules: str = field(default="all-linear", metadata=_help(
        "modules LoRA adapts: all-linear, or comma-separated names"))
    logging_steps: int = field(default=1, metadata=_help("log metrics every N steps"))
    save_steps: int = field(default=100, metadata=_help("checkpoint every N steps"))
    gradient_checkpointing: bool | None = field(default=None, metadata=_help(
        "recompute each layer's activations in the backward pass: far less memory, a slower step "
        "(default: on for a hub model or model directory on a GPU, off on a CPU and for tiny and demo)"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.learning_rate is None:
            self.learning_rate = self.default_learning_rate(self.base_model)
        if self.gradient_checkpointing is None and self.base_model in (TINY, DEMO):
            # a model this small keeps little activation: recomputing it only costs time
            self.gradient_checkpointing = False
        self.check()

    def check(self) -> None:
        """Raise :class:`BadValue` for the first value a run cannot start with."""
        for spec in fields(self):  # nan passes every comparison below, inf breaks the schedules
            value = getattr(self, spec.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise BadValue(spec.name, f"must be a finite number, got {value}")
        if not self.base_model.strip():
            raise BadValue("base_model", "name a base model (tiny for the small offline one)")
        if self.max_steps != -1 and self.max_steps < 1:
            raise BadValue("max_steps", "must be -1 (the epochs decide) or at least 1")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise BadValue("max_steps", "give some epochs or a number of steps")
        for name in ("batch_size", "grad_accum", "lora_r", "lora_alpha", "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise BadValue(name, "must be at least 1")
        if not self.learning_rate or self.learning_rate <= 0:
            raise BadValue("learning_rate", "must be above 0")
        if not 0 <= self.lora_dropout < 1:
            raise BadValue("lora_dropout", "must be in [0, 1)")

    #: The algorithm's learning rate for a pretrained base, and for the tiny demo model when it needs another.
    base_rate: ClassVar[float]
    tiny_rate: ClassVar[float | None] = None

    @classmethod
    def default_learning_rate(cls, base_model: str) -> float:
        return cls.tiny_rate if base_model == TINY and cls.tiny_rate is not None else cls.base_rate


@dataclass
class LengthLimitedConfig(TrainingConfig):
    """A run whose examples have a token budget (SFT's trajectories, DPO's prompt and completions)."""

    max_length: int | None = field(default=None, metadata=_help(
        "tokens per example (default: the base model's context length, at most --max-length-cap)"))
    max_length_cap: int = field(default=8192, metadata=_help("the most tokens an unset --max-length resolves to"))

    def check(self) -> None:
        super().check()
        if self.max_length is not None and self.max_length < 1:
            raise BadValue("max_length", "must be at least 1")


@dataclass
class SFTConfig(LengthLimitedConfig):
    """LoRA SFT with the MAE × PKT weighted loss."""

    algorithm: ClassVar[str] = "sft"
    #: LoRA's usual 2e-4 for a pretrained base; the tiny model's random weights barely move at 2e-4
    #: (its loss went 6.99 → 6.88 over 30 steps, against 6.99 → 6.29 at 5e-3).
    base_rate: ClassVar[float] = 2e-4
    tiny_rate: ClassVar[float | None] = 5e-3
    warmup: float = field(default=0.0, metadata=_help("warm-up steps, or a fraction of them when < 1"))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay"))
    w_max: float = field(default=9.0, metadata=_help("PKT cap on key-token weights; 1 turns PKT off"))
    mae: bool = field(default=True, metadata=_help("mask flagged calls (--no-mae: every assistant message trains)"))
    curriculum: bool = field(default=False, metadata=_help("easy -> medium -> hard order (iTool)"))
    packing: bool = field(default=False, metadata=_help(
        "pack whole examples into rows of --pack-length tokens, each attending only to itself and never "
        "predicting the next (--batch-size then counts rows; with --curriculum each stage packs apart)"))
    pack_length: int | None = field(default=None, metadata=_help(
        "tokens per packed row (default: --max-length)"))
    group_by_length: bool = field(default=True, metadata=_help(
        "without --packing, batch examples of similar length (less padding; --curriculum's order wins)"))
    full_finetune: bool = field(default=False, metadata=_help(
        "train every weight (tiny, demo or a full model's directory), no LoRA", "--from-scratch"))
    save_total_limit: int = field(default=2, metadata=_help("checkpoints kept"))
    resume: bool = field(default=False, metadata=_help("continue from the last checkpoint in --output"))

    def check(self) -> None:
        super().check()
        if self.w_max < 1:
            raise BadValue("w_max", "must be at least 1")
        if self.pack_length is not None and self.pack_length < 1:
            raise BadValue("pack_length", "must be at least 1")



@dataclass
class GRPOConfig(TrainingConfig):
    """GRPO with the judge's error-type reward."""

    algorithm: ClassVar[str] = "grpo"
    base_rate: ClassVar[float] = 1e-5
    max_steps: int = field(default=50, metadata=_help("optimizer steps; -1: --epochs decide"))
    num_generations: int = field(default=4, metadata=_help("completions sampled per prompt"))
    max_completion_length: int = field(default=96, metadata=_help("tokens per sampled completion"))
    beta: float = field(default=0.0, metadata=_help("KL penalty against the reference model"))
    temperature: float = field(default=1.0, metadata=_help("sampling temperature"))
    use_vllm: bool = field(default=False, metadata=_help(
        "sample the completions with vLLM (TRL's vLLM generation; needs vllm installed), not transformers"))
    vllm_mode: str = field(default="colocate", metadata=_help(
        "colocate: vLLM runs in each training process, on its GPU; server: a `trl vllm-serve` server generates"))
    vllm_server_url: str | None = field(default=None, metadata=_help(
        "the vLLM server's base URL with --vllm-mode server (default: TRL's, port 8000 of this machine)"))

    #: TRL's two ways of running vLLM (``trl.GRPOConfig.vllm_mode``).
    vllm_modes: ClassVar[tuple[str, ...]] = ("colocate", "server")

    def check(self) -> None:
        super().check()
        if self.vllm_mode not in self.vllm_modes:
            raise BadValue("vllm_mode", f"must be one of {', '.join(self.vllm_modes)}, got {self.vllm_mode!r}")
        if self.vllm_server_url and self.vllm_mode != "server":
            raise BadValue("vllm_server_url", "is for --vllm-mode server")


@dataclass
class DPOConfig(LengthLimitedConfig):
    """DPO on step-level preference pairs."""

    algorithm: ClassVar[str] = "dpo"
    base_rate: ClassVar[float] = 5e-6
    beta: float = field(default=0.1, metadata=_help("DPO temperature"))
    sft_weight: float = field(default=0.0, metadata=_help(
        "weight of the chosen side's NLL added to DPO's loss (RPO: keeps the chosen call likely; 0: DPO alone)"))

    def check(self) -> None:
        super().check()
        if self.sft_weight < 0:
            raise BadValue("sft_weight", "must be 0 or above")


@dataclass
class IToolConfig(SFTConfig):
    """iTool's loop: easy-to-hard warm-up SFT, then rounds of step-level search and DPO.

    The SFT fields are the warm-up's. Each round the policy scores every approved call step (its perplexity
    of the call), samples the hardest into a replay buffer, and grows a tree over each one's turn
    (:mod:`training.search`): ``--search-iterations`` times, a node picked by UCT is expanded with
    ``--samples`` of the policy's completions, each judged by the error-type reward against the approved call
    and backed up. At each fork a right side (the approved call where it is one) is chosen over a wrong one
    (``--rejected``), after the same prefix. DPO trains on the loop's pairs no annotator rejected (and the
    annotators' own pairs), its reference the latest policy; then the next round.
    """

    algorithm: ClassVar[str] = "itool"
    #: DPO's rate on the small offline bases (tiny, demo), whose weights DPO's 5e-6 barely moves.
    dpo_small_rate: ClassVar[float] = 5e-4
    curriculum: bool = field(default=True, metadata=_help("warm up easy -> medium -> hard (iTool)"))
    iterations: int = field(default=3, metadata=_help("rounds of search and DPO after the warm-up (iTool: ~3)"))
    buffer_size: int = field(default=16, metadata=_help("steps sampled from the replay buffer each round"))
    buffer_sampling: str = field(default="proportional", metadata=_help(
        "proportional (to the step's perplexity, without replacement) or top (the highest perplexities)"))
    samples: int = field(default=4, metadata=_help(
        "completions the policy samples each time the search expands a node of a step's tree"))
    temperature: float = field(default=1.0, metadata=_help("sampling temperature of the alternatives"))
    search_iterations: int = field(default=4, metadata=_help(
        "tree-search iterations at each buffer step, each expanding one node by UCT (1: one level)"))
    step_depth: int = field(default=6, metadata=_help(
        "steps a turn is cut into in the tree (a sentence, a tool's name, a parameter; 1: a whole turn)"))
    exploration: float = field(default=1.0, metadata=_help("UCT's exploration weight in the tree search"))
    rejected: str = field(default="worst", metadata=_help(
        "the wrong side of a pair: likely (the step the policy finds most probable, a near miss) or worst "
        "(the lowest mean reward)"))
    max_new_tokens: int = field(default=96, metadata=_help("tokens per sampled alternative and per evaluation"))
    generation_batch_size: int = field(default=8, metadata=_help("prompts generated or scored at once"))
    train_pairs: str = field(default="round", metadata=_help(
        "the loop's pairs each round's DPO trains on (beside the annotators' own): round (the round's, and "
        "earlier ones an annotator accepted; iTool) or all (every one no annotator rejected)"))
    dpo_beta: float = field(default=0.1, metadata=_help("DPO temperature"))
    dpo_sft_weight: float = field(default=0.0, metadata=_help(
        "weight of the chosen side's NLL added to each round's DPO loss (RPO; 0: DPO alone, as iTool)"))
    dpo_max_steps: int = field(default=-1, metadata=_help("DPO optimizer steps per round; -1: --dpo-epochs decide"))
    dpo_epochs: float = field(default=2.0, metadata=_help("DPO passes over the round's pairs"))
    dpo_learning_rate: float | None = field(default=None, metadata=_help(
        "DPO's learning rate (default: 5e-6, or 5e-4 on tiny and demo)"))
    gold: str | None = field(default=None, metadata=_help(
        "gold items scored after the warm-up and each round: a gold JSONL or a store (default: --db's)"))
    eval_limit: int | None = field(default=60, metadata=_help("score the first N gold items"))
    evaluate: bool = field(default=True, metadata=_help("TS / PI / CF on the gold items after each round"))
    score_pending: bool = field(default=True, metadata=_help(
        "at the end, the final policy's perplexity of the store's pending trajectories (review hardest first)"))

    BUFFER_SAMPLING: ClassVar[tuple[str, ...]] = ("proportional", "top")
    REJECTED: ClassVar[tuple[str, ...]] = ("likely", "worst")
    TRAIN_PAIRS: ClassVar[tuple[str, ...]] = ("round", "all")

    def __post_init__(self) -> None:
        if self.dpo_learning_rate is None:
            self.dpo_learning_rate = self.dpo_small_rate if self.base_model in (TINY, DEMO) else DPOConfig.base_rate
        super().__post_init__()

    def check(self) -> None:
        super().check()
        for name in ("iterations", "buffer_size", "samples", "search_iterations", "step_depth", "max_new_tokens",
                     "generation_batch_size"):
            if getattr(self, name) < 1:
                raise BadValue(name, "must be at least 1")
        for name, allowed in (("buffer_sampling", self.BUFFER_SAMPLING), ("rejected", self.REJECTED),
                              ("train_pairs", self.TRAIN_PAIRS)):
            if getattr(self, name) not in allowed:
                raise BadValue(name, f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("exploration", "dpo_sft_weight"):
            if getattr(self, name) < 0:
                raise BadValue(name, "must be 0 or above")
        for name in ("temperature", "dpo_beta", "dpo_learning_rate"):
            if not getattr(self, name) or getattr(self, name) <= 0:
                raise BadValue(name, "must be above 0")
        if self.dpo_max_steps != -1 and self.dpo_max_steps < 1:
            raise BadValue("dpo_max_steps", "must be -1 (the epochs decide) or at least 1")
        if self.dpo_epochs <= 0 and self.dpo_max_steps <= 0:
            raise BadValue("dpo_max_steps", "give some DPO epochs or a number of steps")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise BadValue("eval_limit", "must be at least 1")


@dataclass
class EvalConfig(DataConfig):
    """Single-step TS / PI / CF over gold items, of a local model or an OpenAI-compatible endpoint."""

    algorithm: ClassVar[str] = "eval"
    model: str = field(default=TINY, metadata=_help("adapter or model directory, hub id, 'tiny', 'demo', or the "
                                                     "endpoint's model"))
    base_url: str | None = field(default=None, metadata=_help("an OpenAI-compatible endpoint"))
    api_key_env: str = field(default="OPENAI_API_KEY", metadata=_help(
        "environment variable holding the endpoint's key (never the key)"))
    source: str | None = field(default=None, metadata=_help(
        "evaluate only the gold items of this source (toolalpaca, xlam, bfcl, simulated, …)"))
    limit: int | None = field(default=None, metadata=_help("evaluate on the first N gold items"))
    max_new_tokens: int = field(default=96, metadata=_help("tokens generated per item"))
    batch_size: int = field(default=8, metadata=_help("items generated at once"))


@dataclass
class ScoreConfig(DataConfig):
    """A model's perplexity of each trajectory's assistant steps, stored as the trajectories' ``perplexity``
    score (review hardest first): exp of the mean NLL of the assistant tokens that train (weight > 0)."""

    algorithm: ClassVar[str] = "score"
    model: str | None = field(default=None, metadata=_help("adapter or model directory, hub id ('tiny', 'demo')"))
    review: str = field(default="pending", metadata=_help(
        "the trajectories scored: pending, accepted, rejected, skipped, disagreements or all"))
    max_length: int | None = field(default=None, metadata=_help(
        "tokens per trajectory (default: the model's context length, at most --max-length-cap)"))
    max_length_cap: int = field(default=8192, metadata=_help("the most tokens an unset --max-length resolves to"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.data:
            raise BadValue("data", "score reads and writes the store (--db), not a dataset file")
        if self.max_length is not None and self.max_length < 1:
            raise BadValue("max_length", "must be at least 1")

    def missing(self) -> BadValue | None:
        """What a run cannot start without (the dataclass's own defaults leave both unset)."""
        if not self.model or not self.model.strip():
            return BadValue("model", "name the model whose perplexity is stored (an output directory, a hub id)")
        if not self.db:
            return BadValue("db", "name the store whose trajectories are scored")
        return None


# -- the demo model -------------------------------------------------------------------------------------
#: The environment variable that overrides fields of :class:`DemoBase` with JSON (tests, slow machines).
DEMO_RECIPE_ENV = "CURATOR_DEMO_RECIPE"
DEMO_BASE_VERSION = "demo-base-v1"
#: The demo base's training data inside :func:`demo_base_dir`, written by curator (``curator.demo_model``).
DEMO_CORPUS_FILE = "corpus.jsonl"


def demo_base_dir() -> Path:
    """Where the demo base model and its corpus are cached: ``$CURATOR_CACHE``, else ``$XDG_CACHE_HOME/curator``,
    else ``~/.cache/curator``, then ``demo-base-v1``. curator writes the corpus there, training the model."""
    root = os.environ.get("CURATOR_CACHE") or (
        Path(os.environ["XDG_CACHE_HOME"]) / "curator" if os.environ.get("XDG_CACHE_HOME")
        else Path.home() / ".cache" / "curator")
    return Path(root).expanduser() / DEMO_BASE_VERSION


@dataclass
class DemoBase:
    """The fixed recipe of the demo base model: a tiny model trained from scratch on scripted simulations of
    the demo toolsets *other* than the demo's own (``weather``), so it knows the chat and call format but not
    the demo's tools. Trained once (≈3 minutes on 2 cores: loss 7.6 → 0.4) and cached in :func:`demo_base_dir`.
    """

    corpus_toolsets: tuple[str, ...] = ("books", "calendar", "currency", "dictionary")
    corpus_per_toolset: int = 500
    corpus_seed: int = 11
    tiny: dict[str, Any] = field(default_factory=lambda: {
        "vocab_size": 2048, "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2})
    chat_template: str = "compact"
    max_steps: int = 600
    batch_size: int = 4
    learning_rate: float = 2e-3
    warmup: float = 0.1

    @classmethod
    def describe(cls) -> str:
        """What the demo model is, in one line for the screen."""
        return (f"demo: a tiny model ({cls().tiny['hidden_size']}-wide, {cls().tiny['num_hidden_layers']} layers) "
                f"pretrained once on scripted {', '.join(cls.corpus_toolsets)} conversations, not the demo's")

    @classmethod
    def current(cls) -> "DemoBase":
        """The recipe, with the fields ``$CURATOR_DEMO_RECIPE`` (a JSON object) overrides: the one place it is
        read. A smaller recipe there builds a weaker base quickly (the slow end-to-end test uses one)."""
        text = os.environ.get(DEMO_RECIPE_ENV)
        if not text:
            return cls()
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("must be a JSON object")
            if "tiny" in data:
                data["tiny"] = {**cls().tiny, **data["tiny"]}
            if "corpus_toolsets" in data:
                data["corpus_toolsets"] = tuple(data["corpus_toolsets"])
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise ArgumentError(f"${DEMO_RECIPE_ENV}: {exc}") from None

    def sft_overrides(self) -> dict[str, Any]:
        """The SFT fields the base build sets (besides its data and output)."""
        return {"full_finetune": True, "tiny_config": json.dumps(self.tiny),
                "chat_template": self.chat_template, "max_steps": self.max_steps, "batch_size": self.batch_size,
                "learning_rate": self.learning_rate, "warmup": self.warmup,
                "save_steps": self.max_steps + 1}


#: What ``T`` runs on the demo store unless ``curator.toml [train]`` says otherwise: every weight of the demo
#: base fine-tuned on the accepted weather trajectories. LoRA (r 16/32, lr 2e-3/1e-2, 60-80 steps) did not
#: learn the new tools (TS 0%); on 24 trajectories, 60 gold items: 80 steps TS 40%, 160 steps 48% (≈25 s),
#: 160 steps at 1e-3 40%.
DEMO_TRAIN: dict[str, Any] = {"base_model": DEMO, "full_finetune": True, "max_steps": 160, "batch_size": 4,
                              "learning_rate": 2e-3}

TRAINING: dict[str, type[TrainingConfig]] = {c.algorithm: c for c in (SFTConfig, GRPOConfig, DPOConfig, IToolConfig)}
COMMANDS: dict[str, type[DataConfig]] = {**TRAINING, EvalConfig.algorithm: EvalConfig, ScoreConfig.algorithm: ScoreConfig}


# -- the command line, built from the fields -------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser, config: type[DataConfig]) -> None:
    """One option per field: ``--max-steps`` for ``max_steps`` (plus the field's aliases), typed by its hint.

    Booleans take ``--name`` / ``--no-name``. Every default is the dataclass's own
    (argparse keeps none), so a config made from parsed arguments equals one made in code.
    """
    hints = get_type_hints(config)
    for f in fields(config):
        if not f.init:
            continue
        kind = value_type(hints[f.name])
        options = [f"--{f.name.replace('_', '-')}", *f.metadata.get("aliases", [])]
        extra: dict[str, Any] = {"action": argparse.BooleanOptionalAction} if kind is bool else {"type": kind}
        parser.add_argument(*options, dest=f.name, default=argparse.SUPPRESS, help=describe(f), **extra)


def describe(spec: Field) -> str:
    """A field's help text with its default, as both command lines show it."""
    text = spec.metadata.get("help", "")
    if "(default:" in text:
        return text
    default = spec.default if spec.default is not MISSING else spec.default_factory()  # type: ignore[misc]
    return f"{text} (default: {default})"


def value_type(hint: Any) -> type:
    """The one value type a field takes: ``float`` for ``float | None``."""
    if get_origin(hint) in (Union, types.UnionType):
        options = [t for t in get_args(hint) if t is not type(None)]
        if len(options) != 1:
            raise TypeError(f"a config field takes one type, not {hint}")
        return options[0]
    return hint


class CommandParser(argparse.ArgumentParser):
    """Raises :class:`ArgumentError` instead of printing usage and exiting, so each caller words the error."""

    def error(self, message: str):  # type: ignore[override]
        raise ArgumentError(message)


def command_parser(command: str, parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The options of ``python -m training <command>`` (into ``parser`` when given, e.g. a subparser)."""
    config = COMMANDS[command]
    parser = parser or CommandParser(prog=f"python -m training {command}", description=config.__doc__)
    add_arguments(parser, config)
    return parser


def from_namespace(config: type[DataConfig], namespace: argparse.Namespace) -> DataConfig:
    """The config of the fields the namespace holds, the rest at their defaults."""
    names = {f.name for f in fields(config) if f.init}
    return config(**{k: v for k, v in vars(namespace).items() if k in names})


def parse(command: str, argv: list[str]) -> DataConfig:
    """``argv`` of ``python -m training <command>`` as its config; :class:`ArgumentError` on bad input."""
    return from_namespace(COMMANDS[command], command_parser(command).parse_args(argv))


def field_types(config: type[DataConfig]) -> dict[str, type]:
    """Each settable field's value type (what a ``curator.toml [train]`` key must hold)."""
    hints = get_type_hints(config)
    return {f.name: value_type(hints[f.name]) for f in fields(config) if f.init}


def to_argv(overrides: dict[str, Any]) -> list[str]:
    """``--name value`` (``--name`` / ``--no-name`` for booleans) for each overridden field."""
    argv: list[str] = []
    for name, value in overrides.items():
        flag = name.replace("_", "-")
        argv += [f"--{flag}" if value else f"--no-{flag}"] if isinstance(value, bool) else [f"--{flag}", str(value)]
    return argv
