"""`curator.toml`: backends, models, flagging policy and training defaults.

Holds the *name* of the environment variable with the API key, never the key.
The TUI writes remembered choices back with ``save``; unknown keys are kept.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

import tomli_w

from store.errors import InputError

DEFAULT_FILE = "curator.toml"


@dataclass
class SimulateConfig:
    backend: str = "scripted"
    toolset: str = "weather"
    n: int = 20
    concurrency: int = 8
    seed: int = 0
    base_url: str | None = None
    model: str | None = None
    user_model: str | None = None
    executor_model: str | None = None
    user_base_url: str | None = None
    executor_base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_steps: int = 8
    instability_rate: float = 0.03

    def api_key(self) -> str | None:
        """The key itself, read from the environment at call time (never stored)."""
        return os.environ.get(self.api_key_env)


@dataclass
class FlagConfig:
    mask_instability: bool = True


@dataclass
class TrainConfig:
    algorithm: str = "sft"
    base_model: str = "tiny"
    max_steps: int = 60
    epochs: float = 1.0
    lora_rank: int = 8
    w_max: float = 9.0
    mae: bool = True
    #: SFT's learning rate; None: the base model's default (:func:`default_learning_rate`).
    learning_rate: float | None = None

    @property
    def sft_learning_rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else default_learning_rate(self.base_model)


def default_learning_rate(base_model: str) -> float:
    """LoRA's usual 2e-4 for a pretrained base; 5e-3 for the tiny demo model, whose random weights barely move
    at 2e-4 (its loss went 6.99 → 6.88 over 30 steps, against 6.99 → 6.29 at 5e-3)."""
    return 5e-3 if base_model == "tiny" else 2e-4


@dataclass
class Config:
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    flag: FlagConfig = field(default_factory=FlagConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the config (keeping tables and keys this version does not know)."""
        target = Path(path or self.path or DEFAULT_FILE)
        data = dict(self.extra)
        for name in ("simulate", "flag", "train"):
            section = {k: v for k, v in asdict(getattr(self, name)).items() if v is not None}
            data[name] = {**data.get(name, {}), **section}
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
        tmp.replace(target)
        self.path = target
        return target


_SECTIONS = {"simulate": SimulateConfig, "flag": FlagConfig, "train": TrainConfig}


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """The config at ``path``, or ./curator.toml when present, or the defaults."""
    target = Path(path) if path else Path(DEFAULT_FILE)
    if not target.exists():
        if path:
            raise InputError(str(target), "no such config file")
        return Config(path=target)
    try:
        data = tomllib.loads(target.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(str(target), f"invalid TOML: {exc}") from None
    config = Config(path=target, extra=data)
    for name, cls in _SECTIONS.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise InputError(str(target), f"[{name}] must be a table", name)
        setattr(config, name, _section(cls, table, str(target), name))
    return config


def _section(cls: type, table: dict[str, Any], source: str, name: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "api_key":
            raise InputError(source, "never write a key here: set api_key_env to the name of an environment "
                             "variable that holds it", f"{name}.{key}")
        if key not in known:
            continue
        expected = _value_type(hints[key])
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            raise InputError(source, f"must be {expected.__name__}, got {value!r}", f"{name}.{key}")
        values[key] = value
    return cls(**values)


def _value_type(hint: Any) -> type:
    """The TOML value type a field takes: ``float`` for ``float | None``."""
    options = [t for t in get_args(hint) if t is not type(None)] or [hint]
    return options[0]
