"""Backends: the models behind the agents. ``scripted`` is offline; ``openai`` speaks the Chat Completions API."""
from __future__ import annotations

from ..config import SimConfig
from .base import Backend


def make_backend(config: SimConfig) -> Backend:
    """The backend ``config.backend`` names (the openai client is imported only when used)."""
    if config.backend == "openai":
        from .openai import OpenAIBackend

        return OpenAIBackend(config)
    from .scripted import ScriptedBackend

    return ScriptedBackend(config)
