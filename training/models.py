"""Load a base model and tokenizer (tiny, hub id, local directory or adapter directory) and save them back."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from training.data import Renderer, rendered_texts
from training.errors import TrainingError
from training.templates import SPECIAL_TOKENS, TEMPLATES, resolve_template
from training.tiny import TinyConfig, build

TINY = "tiny"
TINY_FILE = "tiny_config.json"
BASE_DIR = "base"


def device_and_dtype():
    """CUDA with bf16 when present, CPU with float32 otherwise."""
    import torch

    if torch.cuda.is_available():
        return "cuda", (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return "cpu", torch.float32


def device_args() -> dict[str, bool]:
    """The precision and device arguments every trainer config gets: bf16 on a GPU that has it, else CPU."""
    import torch

    cuda = torch.cuda.is_available()
    return {"bf16": cuda and torch.cuda.is_bf16_supported(), "use_cpu": not cuda}


def load(
    name: str,
    tiny: TinyConfig | None = None,
    records: Sequence[Mapping[str, Any]] | None = None,
    chat_template: str | None = None,
    trainable_adapter: bool = False,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for ``tiny``, a hub id, a model directory or a saved adapter directory.

    ``records`` (rendered with the tiny template) train the tiny tokenizer;
    ``chat_template`` (a style name or a Jinja file) replaces the tokenizer's
    template or supplies a missing one.
    """
    if name == TINY:
        tiny = tiny or TinyConfig()
        try:
            renderer = Renderer(TEMPLATES[tiny.template], SPECIAL_TOKENS[tiny.template])
        except KeyError:
            raise TrainingError(f"unknown tiny template {tiny.template!r}: use one of {', '.join(TEMPLATES)}") from None
        corpus = list(rendered_texts(records, renderer)) if records else None
        model, tokenizer = build(tiny, corpus)
    else:
        model, tokenizer = _load_pretrained(name, trainable_adapter)
    if chat_template:
        try:
            tokenizer.chat_template = resolve_template(chat_template)
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
    if not getattr(tokenizer, "chat_template", None):
        raise TrainingError(f"the tokenizer of {name} has no chat template; pass --chat-template chatml|llama3|plain|FILE")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _load_pretrained(name: str, trainable_adapter: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(name)
    adapter = path / "adapter_config.json"
    base_name = name
    if adapter.is_file():
        base_name = _adapter_base(path, json.loads(adapter.read_text()))
    _, dtype = device_and_dtype()
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(base_name, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"model not found: {name} ({_first_line(exc)})") from None
    if adapter.is_file():
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(path), is_trainable=trainable_adapter)
    return model, tokenizer


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


def save(model, tokenizer, output: Path, tiny_base: bool = False) -> None:
    """Save the adapter (or the full model) and the tokenizer in ``output``.

    ``tiny_base``: the adapter's base is ``output/base`` (see :func:`save_tiny_base`).
    """
    output.mkdir(parents=True, exist_ok=True)
    tiny_adapter = tiny_base and hasattr(model, "peft_config")
    if tiny_adapter:
        for config in model.peft_config.values():
            config.base_model_name_or_path = str((output / BASE_DIR).resolve())
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    if tiny_adapter:
        # relative, so the directory can move: loading resolves it inside the adapter's directory
        path = output / "adapter_config.json"
        config = json.loads(path.read_text())
        config["base_model_name_or_path"] = BASE_DIR
        path.write_text(json.dumps(config, indent=2))
