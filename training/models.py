"""Load a base model and tokenizer (tiny, hub id, local directory or adapter directory) and save them back."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from training.config import DEMO, TINY, LengthLimitedConfig, TinyConfig, TrainingConfig
from training.data import Renderer, rendered_texts
from training.errors import TrainingError
from training.templates import SPECIAL_TOKENS, TEMPLATES, resolve_template
from training.tiny import build, build_tokenizer

TINY_FILE = "tiny_config.json"
BASE_DIR = "base"


@dataclass(frozen=True)
class Precision:
    """How a run computes, chosen from the hardware (:func:`choose_precision`): the one place that decides."""

    device: str  # "cuda" or "cpu"
    where: str  # the device for people: "cuda:0 (NVIDIA A10G)", "cpu"
    dtype: str  # the torch dtype weights load in
    amp: str  # the trainer's mixed precision: "bf16", "fp16" (with loss scaling) or "fp32" (none)

    def arguments(self) -> dict[str, bool]:
        """The ``TrainingArguments`` fields of this precision and device."""
        return {"bf16": self.amp == "bf16", "fp16": self.amp == "fp16", "use_cpu": self.device == "cpu"}

    def describe(self) -> str:
        return f"{'fp16 with loss scaling' if self.amp == 'fp16' else self.amp} on {self.where}"


def choose_precision(cuda: bool, bf16: bool, gpu: str = "cuda:0") -> Precision:
    """bf16 on a GPU that has it, fp16 with loss scaling on one that has not (a T4, a V100), fp32 on a CPU.

    Under fp16 the weights load in fp16, which halves a LoRA run's frozen base; the loss scaler
    needs the weights that train in fp32 ("Attempting to unscale FP16 gradients" otherwise): peft
    makes LoRA adapters fp32 (``autocast_adapter_dtype``), and :func:`trainable_in_fp32` upcasts a
    full fine-tune's. ``gpu`` names the device in :meth:`Precision.describe`.
    """
    if not cuda:
        return Precision("cpu", "cpu", "float32", "fp32")
    if bf16:
        return Precision("cuda", gpu, "bfloat16", "bf16")
    return Precision("cuda", gpu, "float16", "fp16")


def precision() -> Precision:
    """:func:`choose_precision` for this machine's hardware."""
    import torch

    if not torch.cuda.is_available():
        return choose_precision(False, False)
    index = torch.cuda.current_device()
    return choose_precision(True, torch.cuda.is_bf16_supported(),
                            f"cuda:{index} ({torch.cuda.get_device_name(index)})")


def device_and_dtype():
    """The device a model runs on and the torch dtype its weights load in (see :func:`choose_precision`)."""
    import torch

    chosen = precision()
    return chosen.device, getattr(torch, chosen.dtype)


def gradient_checkpointing(asked: bool | None, chosen: Precision) -> bool:
    """``--gradient-checkpointing`` as given, else on where a GPU trains (the config leaves it unset only for
    a hub model or a model directory): activations, not weights, fill a GPU at a real sequence length."""
    return chosen.device == "cuda" if asked is None else asked


def trainable_in_fp32(model) -> None:
    """Upcast the fp16 parameters that train to fp32, as fp16 mixed precision's loss scaler needs."""
    import torch

    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype == torch.float16:
            parameter.data = parameter.data.float()


def load(
    name: str,
    tiny: TinyConfig | None = None,
    records: Sequence[Mapping[str, Any]] | None = None,
    chat_template: str | None = None,
    trainable_adapter: bool = False,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for ``tiny``, ``demo``, a hub id, a model directory or a saved adapter directory.

    ``records`` (rendered with the tiny template) train the tiny tokenizer;
    ``chat_template`` (a style name or a Jinja file) replaces the tokenizer's
    template or supplies a missing one. The tokenizer is checked before any
    weights are loaded.
    """
    if name == TINY:
        tiny = tiny or TinyConfig()
        model, tokenizer = build(tiny, _tiny_corpus(tiny, records))
        return model, _checked(tokenizer, name, chat_template)
    name = located(name)
    path = Path(name).expanduser()
    if not path.exists() and (name.startswith((".", "/", "~")) or name.count("/") > 1):
        raise TrainingError(f"model not found: {name} (no such directory)")
    tokenizer = _checked(_pretrained(name, "AutoTokenizer", name), name, chat_template)
    adapter = path / "adapter_config.json"
    if not adapter.is_file():
        return _pretrained(name, "AutoModelForCausalLM", name), tokenizer
    from peft import PeftModel

    base = _pretrained(_weights_of(name), "AutoModelForCausalLM", name)
    return PeftModel.from_pretrained(base, str(path), is_trainable=trainable_adapter), tokenizer


def located(name: str) -> str:
    """The directory or hub id a model name stands for: ``demo`` is the cached demo base (built when missing)."""
    if name != DEMO:
        return name
    from training import demo_base

    return str(demo_base.ensure())


def is_adapter(name: str) -> bool:
    """True when ``name`` is a directory holding a LoRA adapter rather than a full model."""
    return name not in (TINY, DEMO) and (Path(name).expanduser() / "adapter_config.json").is_file()


def wrap_lora(model, config: TrainingConfig):
    """The model with fresh LoRA adapters as ``config`` says (initialised from ``config.seed``), or as it is when
    it already carries a trainable adapter (an adapter directory given as the base model)."""
    if hasattr(model, "peft_config"):
        return model
    import torch
    from peft import LoraConfig, get_peft_model

    modules = config.lora_target_modules
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=modules if modules == "all-linear" else [m.strip() for m in modules.split(",")],
        task_type="CAUSAL_LM",
    )
    with torch.random.fork_rng():  # the adapter's random half from --seed, whatever ran before in the process
        torch.manual_seed(config.seed)
        return get_peft_model(model, lora)


def context_length(model_config: Any) -> int | None:
    """The positions a model was built for (``max_position_embeddings`` of its config), when the config says."""
    length = getattr(model_config, "max_position_embeddings", None)
    return int(length) if isinstance(length, int) and length > 0 else None


def max_length(config: LengthLimitedConfig, model_config: Any = None) -> int:
    """``config.max_length`` as given, else the base model's context length capped by ``config.max_length_cap``.

    ``model_config`` is the loaded model's config; without it (a preview, and DPO's arguments, which come
    before the weights) the base model's own config file is read: the tiny config, or ``AutoConfig`` of the
    model, or of an adapter directory's base.
    """
    if config.max_length is not None:
        return config.max_length
    if model_config is None:
        model_config = config.tiny if config.base_model == TINY else _pretrained(
            _weights_of(located(config.base_model)), "AutoConfig", config.base_model)
    context = context_length(model_config)
    return min(context, config.max_length_cap) if context else config.max_length_cap


def load_tokenizer(
    name: str,
    tiny: TinyConfig | None = None,
    records: Sequence[Mapping[str, Any]] | None = None,
    chat_template: str | None = None,
):
    """The tokenizer :func:`load` would give, without loading or building any weights."""
    if name == TINY:
        tiny = tiny or TinyConfig()
        return _checked(build_tokenizer(tiny, _tiny_corpus(tiny, records)), name, chat_template)
    name = located(name)
    path = Path(name).expanduser()
    if not path.exists() and (name.startswith((".", "/", "~")) or name.count("/") > 1):
        raise TrainingError(f"model not found: {name} (no such directory)")
    return _checked(_pretrained(name, "AutoTokenizer", name), name, chat_template)


def _tiny_corpus(tiny: TinyConfig, records: Sequence[Mapping[str, Any]] | None) -> list[str] | None:
    """The records rendered with the tiny template: what the tiny tokenizer is trained on."""
    try:
        renderer = Renderer(TEMPLATES[tiny.template], SPECIAL_TOKENS[tiny.template])
    except KeyError:
        raise TrainingError(f"unknown tiny template {tiny.template!r}: use one of {', '.join(TEMPLATES)}") from None
    return list(rendered_texts(records, renderer)) if records else None


def _pretrained(name: str, auto_class: str, asked: str):
    """``Auto*.from_pretrained`` with a not-found error that names what the user asked for."""
    import transformers

    kwargs = {"dtype": device_and_dtype()[1]} if auto_class == "AutoModelForCausalLM" else {}
    try:
        return getattr(transformers, auto_class).from_pretrained(name, **kwargs)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"model not found: {asked} ({_first_line(exc)})") from None


def _checked(tokenizer, name: str, chat_template: str | None):
    if chat_template:
        try:
            tokenizer.chat_template = resolve_template(chat_template)
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
    if not getattr(tokenizer, "chat_template", None):
        raise TrainingError(f"the tokenizer of {name} has no chat template; pass --chat-template chatml|llama3|plain|FILE")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _weights_of(name: str) -> str:
    """The model whose weights (and config) ``name`` uses: an adapter directory's base, else ``name``."""
    adapter = Path(name).expanduser() / "adapter_config.json"
    return _adapter_base(adapter.parent, json.loads(adapter.read_text())) if adapter.is_file() else name


def _adapter_base(path: Path, config: dict[str, Any]) -> str:
    """The adapter's base model; a relative name is a directory inside the adapter's own (the tiny base)."""
    base = config.get("base_model_name_or_path") or ""
    local = path / base
    return str(local) if base and local.is_dir() else base


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def save_tiny_base(model, tokenizer, output: Path, tiny: TinyConfig) -> None:
    """Keep the freshly built tiny model in ``output/base`` so a LoRA adapter over it loads on its own later."""
    model.save_pretrained(output / BASE_DIR)
    tokenizer.save_pretrained(output / BASE_DIR)
    (output / TINY_FILE).write_text(json.dumps(tiny.to_dict(), indent=2))


def save(trainer, output: Path, tiny_base: bool = False) -> None:
    """Save the adapter (or the full model) and the tokenizer in ``output``, through the trainer.

    ``trainer.save_model`` gathers a sharded model first (FSDP, ZeRO-3: every process takes part) and writes from
    the main process only. ``tiny_base``: the adapter's base is ``output/base`` (see :func:`save_tiny_base`).
    """
    model = trainer.model
    tiny_adapter = tiny_base and hasattr(model, "peft_config")
    if tiny_adapter:
        for config in model.peft_config.values():
            config.base_model_name_or_path = str((output / BASE_DIR).resolve())
    trainer.save_model(str(output))
    if tiny_adapter and trainer.args.should_save:
        # relative, so the directory can move: loading resolves it inside the adapter's directory
        path = output / "adapter_config.json"
        config = json.loads(path.read_text())
        config["base_model_name_or_path"] = BASE_DIR
        path.write_text(json.dumps(config, indent=2))


def train_and_save(trainer, output: Path, stop, *, tiny_base: bool, resume: str | None = None) -> dict[str, Any]:
    """Run a trainer to the end (or to a graceful stop), save what it trained, and summarise the run."""
    result = trainer.train(resume_from_checkpoint=resume)
    save(trainer, output, tiny_base=tiny_base)
    loss = result.training_loss
    return {
        "status": "cancelled" if stop.stopped else "completed",
        "steps": result.global_step,
        "train_loss": None if loss is None or math.isnan(loss) else float(loss),
        "output": str(output),
    }
