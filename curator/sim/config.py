"""``SimConfig``: everything one simulation run needs; ``curator.toml [simulate]`` loads straight into it."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any

from store.errors import InputError

BACKENDS = ("scripted", "openai")
ROLES = ("user", "assistant", "executor")
#: The mistakes the scripted assistant plants before a correct call, and their default relative weights.
ERROR_KINDS: dict[str, float] = {
    "wrong_tool": 3.0,
    "tool_hallucination": 2.0,
    "param_hallucination": 2.0,
    "param_missing": 2.0,
    "param_invalid": 2.0,
    "parse_error": 1.0,
    "tool_call_failure": 1.0,
}


@dataclass
class SimConfig:
    """One run. Models and base URLs are per agent role; a role without its own uses the assistant's.

    ``error_rate``, ``error_mix`` and ``clarify_rate`` drive the scripted backend only:
    ``error_rate`` is the chance that an intended call is preceded by one erroneous
    attempt (kind drawn from ``error_mix``), after which the assistant recovers.
    ``instability_rate`` applies to every backend: the executor answers that share of
    well-formed calls with a timeout or 5xx instead of a response.
    ``focus`` (``curator simulate --fill-gaps`` fills it from the coverage report) maps tools to
    parameters the user agent should ask for: see ``curator.sim.focus``.
    """

    toolset: str = "weather"
    n: int = 20
    concurrency: int = 8
    backend: str = "scripted"
    seed: int = 0
    model: str | None = None
    user_model: str | None = None
    executor_model: str | None = None
    base_url: str | None = None
    user_base_url: str | None = None
    executor_base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_steps: int = 8
    max_questions: int = 2
    instability_rate: float = 0.03
    error_rate: float = 0.2
    error_mix: dict[str, float] = field(default_factory=lambda: dict(ERROR_KINDS))
    clarify_rate: float = 0.1
    request_timeout: float = 60.0
    max_retries: int = 5
    temperature: float = 0.7
    instruction_batch: int = 5
    flag: bool = True
    focus: dict[str, list[str]] = field(default_factory=dict)

    def with_changes(self, **changes: Any) -> "SimConfig":
        """A checked copy with ``changes`` applied (None means: keep the setting)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None}).checked()

    def checked(self) -> "SimConfig":
        """Self, after checking the values a user can get wrong; problems are ``InputError``s naming the field."""
        def bad(name: str, problem: str) -> InputError:
            return InputError("simulate", problem, name)

        if self.backend not in BACKENDS:
            raise bad("backend", f"unknown backend {self.backend!r} (choose {' or '.join(BACKENDS)})")
        for name in ("n", "concurrency", "max_steps", "instruction_batch"):
            if getattr(self, name) < 1:
                raise bad(name, "must be at least 1")
        for name in ("max_questions", "max_retries"):
            if getattr(self, name) < 0:
                raise bad(name, "must be 0 or more")
        for name in ("instability_rate", "error_rate", "clarify_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(name, "must be between 0 and 1")
        unknown = set(self.error_mix) - set(ERROR_KINDS)
        if unknown:
            raise bad("error_mix", f"unknown error kind(s) {', '.join(sorted(unknown))} "
                                   f"(known: {', '.join(ERROR_KINDS)})")
        if not all(math.isfinite(w) and w >= 0 for w in self.error_mix.values()) or (
                self.error_rate and not any(self.error_mix.values())):
            raise bad("error_mix", "weights must be finite, ≥ 0 and not all 0")
        if not (math.isfinite(self.request_timeout) and self.request_timeout > 0):
            raise bad("request_timeout", "must be a positive number of seconds")
        if not (isinstance(self.focus, dict) and all(
                isinstance(tool, str) and isinstance(params, list) and all(isinstance(p, str) for p in params)
                for tool, params in self.focus.items())):
            raise bad("focus", "must map tool names to lists of parameter names")
        if self.backend == "openai" and not self.model:
            raise bad("model", "the openai backend needs a model name (--model or [simulate] model)")
        return self

    def role_model(self, role: str) -> str | None:
        return {"user": self.user_model, "executor": self.executor_model}.get(role) or self.model

    def role_base_url(self, role: str) -> str | None:
        return {"user": self.user_base_url, "executor": self.executor_base_url}.get(role) or self.base_url

    def api_key(self) -> str | None:
        """The key, read from the environment when a client is made; never stored on the config."""
        return os.environ.get(self.api_key_env)
