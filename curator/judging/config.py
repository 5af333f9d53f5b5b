"""``JudgeConfig``: the semantic judge's settings; ``curator.toml [judge]`` loads straight into it.

Every default lives here. ``model = "scripted"`` is the offline scripted judge; any other model is asked on
an OpenAI-compatible server (``base_url``; OpenAI's own when unset), with the key read from the environment
variable ``api_key_env`` names (never from the file).
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

from store.errors import InputError

from curator.sim.config import SimConfig

#: The model name, and ``--judge`` value, of the offline judge.
SCRIPTED = "scripted"


@dataclass
class JudgeConfig:
    model: str | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    #: Requests in flight at once.
    concurrency: int = 4
    request_timeout: float = 120.0
    #: Retries of one request (429, 5xx, timeouts, connection errors), as the simulation's.
    max_retries: int = 5
    #: Replies asked for per trajectory when one is not in the reply format; then "judge reply unreadable".
    reply_attempts: int = 3
    temperature: float = 0.0

    @property
    def scripted(self) -> bool:
        return self.model == SCRIPTED

    def with_changes(self, **changes: Any) -> "JudgeConfig":
        """A checked copy with ``changes`` applied (None means: keep the setting)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None}).checked()

    def checked(self) -> "JudgeConfig":
        """Self, after checking what a user can get wrong; problems are ``InputError``s naming the field."""
        def bad(name: str, problem: str) -> InputError:
            return InputError("judge", problem, name)

        if not self.model or not self.model.strip():
            raise bad("model", f"no judge model: set [judge] model or give --model (or --judge {SCRIPTED}, "
                               "the offline judge)")
        for name in ("concurrency", "reply_attempts"):
            if getattr(self, name) < 1:
                raise bad(name, "must be at least 1")
        if self.max_retries < 0:
            raise bad("max_retries", "must be 0 or more")
        if not (math.isfinite(self.request_timeout) and self.request_timeout > 0):
            raise bad("request_timeout", "must be a positive number of seconds")
        if not 0.0 <= self.temperature <= 2.0:
            raise bad("temperature", "must be between 0 and 2")
        if not self.scripted and self.base_url is None and not os.environ.get(self.api_key_env):
            raise bad("api_key_env", f"no API key: set the environment variable {self.api_key_env} "
                                     "(or give --base-url for a local server that needs none)")
        return self

    def client_config(self) -> SimConfig:
        """The settings of the OpenAI client the judge shares with the simulation (retries, gate, redaction)."""
        return SimConfig(backend="openai", model=self.model, base_url=self.base_url, api_key_env=self.api_key_env,
                         concurrency=self.concurrency, request_timeout=self.request_timeout,
                         max_retries=self.max_retries, temperature=self.temperature).checked()
