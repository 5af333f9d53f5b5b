"""What every training run is told; each algorithm's options extend it (as TRL's configs extend
``TrainingArguments``). Stored as the run's config."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from training.tiny import TinyConfig


@dataclass
class LoraOptions:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"

    def peft_config(self):
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules,
            task_type="CAUSAL_LM",
        )


@dataclass
class RunOptions:
    base_model: str = "tiny"
    data: str | None = None
    db: str | None = None
    output: str = "runs/train"
    max_steps: int = -1
    epochs: float = 1.0
    batch_size: int = 4
    grad_accum: int = 1
    learning_rate: float = 2e-4
    lora: LoraOptions = field(default_factory=LoraOptions)
    tiny: TinyConfig = field(default_factory=TinyConfig)
    chat_template: str | None = None
    seed: int = 0
    logging_steps: int = 1
    save_steps: int = 100

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
