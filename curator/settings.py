"""`curator.toml`: the simulation's settings, the mask policy, the training overrides, who reviews how, and
the semantic judge.

Holds the *name* of the environment variable with the API key, never the key.
The TUI writes remembered choices back with ``save``; unknown keys are kept.
"""
from __future__ import annotations

import os
import tomllib
import types
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Union, get_origin, get_type_hints

import tomli_w

from curator.judging.config import JudgeConfig
from curator.sim.config import SimConfig
from store.decisions import DEFAULT_RULE, RULES
from store.errors import InputError
from store.taxonomy import MaskPolicy
from training.config import TRAINING, ArgumentError, TrainingConfig, field_types, to_argv, value_type

DEFAULT_FILE = "curator.toml"


@dataclass
class FlagConfig:
    mask_instability: bool = True

    def policy(self) -> MaskPolicy:
        """The one mask policy of this config: every flagging call is handed it."""
        return MaskPolicy.of(self.mask_instability)


#: ``[train]`` keys that name no setting: the launcher chooses the data, the store and the output.
_LAUNCHER_FIELDS = frozenset({"data", "db", "output"})


@dataclass
class TrainSettings:
    """``[train]``: the algorithm ``T`` runs, and the training-config fields this project overrides.

    Every default lives in :mod:`training.config`; the table holds only what differs
    from it, so a run started by ``T``, ``curator train`` or ``python -m training``
    with the same overrides records the same configuration.
    """

    algorithm: str = "sft"
    overrides: dict[str, Any] = field(default_factory=dict)
    #: Defaults the store brings (the demo store's recipe, ``curator.demo_model``): under the overrides, never
    #: saved to ``[train]``.
    preset: dict[str, Any] = field(default_factory=dict)

    def config(self, **changes: Any) -> TrainingConfig:
        """The effective config of :attr:`algorithm`: its defaults, the preset, the overrides, then ``changes``."""
        return TRAINING[self.algorithm](**self.applicable({**self.preset, **self.overrides, **changes}))

    def applicable(self, overrides: dict[str, Any]) -> dict[str, Any]:
        """The overrides :attr:`algorithm`'s config has a field for (``w_max`` is SFT's alone)."""
        names = field_types(TRAINING[self.algorithm])
        return {k: v for k, v in overrides.items() if k in names}

    def argv(self) -> list[str]:
        """The ``python -m training <algorithm>`` options the preset and the overrides stand for."""
        return to_argv(self.applicable({**self.preset, **self.overrides}))

    def with_changes(self, algorithm: str, overrides: dict[str, Any]) -> "TrainSettings":
        """Other overrides (and algorithm) over the same preset."""
        return TrainSettings(algorithm, overrides, self.preset)

    def to_table(self) -> dict[str, Any]:
        """``[train]`` as it is saved: the algorithm unless it is the default one, and the overrides."""
        chosen = {"algorithm": self.algorithm} if self.algorithm != TrainSettings.algorithm else {}
        return {**chosen, **{k: v for k, v in self.overrides.items() if v is not None}}

    @classmethod
    def from_table(cls, table: dict[str, Any], source: str) -> "TrainSettings":
        """``[train]`` checked key by key against the training configs' fields and types."""
        algorithm = table.get("algorithm", "sft")
        if algorithm not in TRAINING:
            raise InputError(source, f"must be one of {', '.join(TRAINING)}, got {algorithm!r}", "train.algorithm")
        known: dict[str, type] = {}
        for config in TRAINING.values():
            known.update(field_types(config))
        overrides = {}
        for key, value in table.items():
            if key == "algorithm":
                continue
            if key not in known or key in _LAUNCHER_FIELDS:
                raise InputError(source, "not a training setting (see python -m training sft --help)", f"train.{key}")
            overrides[key] = _typed(value, known[key], source, f"train.{key}")
        settings = cls(algorithm, overrides)
        try:
            settings.config()
        except ArgumentError as exc:
            raise InputError(source, str(exc), "train") from None
        return settings


@dataclass
class ReviewSettings:
    """``[review]``: who records the reviews (``curator --annotator`` wins over it, it over the OS user) and the
    rule several annotators' reviews are decided by (``store.decisions``)."""

    annotator: str | None = None
    rule: str = DEFAULT_RULE

    @classmethod
    def from_table(cls, table: dict[str, Any], source: str) -> "ReviewSettings":
        """``[review]`` checked key by key: an unknown key, a wrong type, an empty name or an unknown rule is refused."""
        hints = get_type_hints(cls)
        for key, value in table.items():
            if key not in hints:
                raise InputError(source, f"not a review setting (one of {', '.join(hints)})", f"review.{key}")
            _typed(value, hints[key], source, f"review.{key}")
        settings = cls(**table)
        if settings.annotator is not None and not settings.annotator.strip():
            raise InputError(source, "must name the annotator, got an empty string", "review.annotator")
        if settings.rule not in RULES:
            raise InputError(source, f"must be one of {', '.join(RULES)}, got {settings.rule!r}", "review.rule")
        return settings


@dataclass
class Config:
    simulate: SimConfig = field(default_factory=SimConfig)
    flag: FlagConfig = field(default_factory=FlagConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    review: ReviewSettings = field(default_factory=ReviewSettings)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the choices the app remembers, ``[train]`` and ``[flag]`` (the ``T`` dialog's), to the config file.

        Each holds only what differs from the defaults (and keys this version does not know);
        one left empty is dropped, and every other table and key of the file is kept as it
        was. With nothing to remember and no file yet, no file is made.
        """
        target = Path(path or self.path or DEFAULT_FILE)
        remembered = {"train": self.train.to_table(), "flag": _changed(self.flag, self.extra.get("flag", {}))}
        data = {k: v for k, v in {**self.extra, **remembered}.items() if v or k not in remembered}
        if data or target.exists():
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
            tmp.replace(target)
        self.path = target
        return target


_SECTIONS = {"simulate": SimConfig, "flag": FlagConfig}


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
    for name in ("simulate", "flag", "train", "review", "judge"):
        if not isinstance(data.get(name, {}), dict):
            raise InputError(str(target), f"[{name}] must be a table", name)
    for name, cls in _SECTIONS.items():
        setattr(config, name, _section(cls, data.get(name, {}), str(target), name))
    config.train = TrainSettings.from_table(data.get("train", {}), str(target))
    config.review = ReviewSettings.from_table(data.get("review", {}), str(target))
    config.judge = _section(JudgeConfig, data.get("judge", {}), str(target), "judge", strict=True)
    return config


def _changed(section: Any, table: dict[str, Any]) -> dict[str, Any]:
    """``table``'s keys this version does not know, and the section's values that differ from its defaults."""
    defaults = type(section)()
    known = {f.name for f in fields(section) if f.init}
    kept = {k: v for k, v in table.items() if k not in known}
    return {**kept, **{k: v for k, v in asdict(section).items()
                       if k in known and v is not None and v != getattr(defaults, k)}}


def _section(cls: type, table: dict[str, Any], source: str, name: str, *, strict: bool = False) -> Any:
    """The section's dataclass from its table, each value type-checked; with ``strict`` an unknown key is refused."""
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls) if f.init}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "api_key":
            raise InputError(source, "never write a key here: set api_key_env to the name of an environment "
                             "variable that holds it", f"{name}.{key}")
        if key in known:
            values[key] = _typed(value, hints[key], source, f"{name}.{key}")
        elif strict:
            raise InputError(source, f"not a {name} setting (one of {', '.join(sorted(known))})", f"{name}.{key}")
    return cls(**values)


def _typed(value: Any, hint: Any, source: str, where: str) -> Any:
    """``value`` when TOML gave the type the field takes (an integer for a float is a float), else an error."""
    expected = get_origin(hint) or hint
    if get_origin(hint) in (Union, types.UnionType):
        expected = value_type(hint)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
        raise InputError(source, f"must be {expected.__name__}, got {value!r}", where)
    return value
