"""The semantic judge (APIGen's third stage): does each call do what the user asked, is the answer backed by
the tool results? Not ``store.toolcalls.judge`` (the rule-based error-type reward against a gold call).

``config.py`` holds the settings (``curator.toml [judge]``), ``case.py`` what is asked about a trajectory,
``prompt.py`` and ``reply.py`` the request and the reply format, ``client.py`` the judge that asks a model on
an OpenAI-compatible server and ``scripted.py`` the offline one beside it, ``run.py`` judging a store;
``store.verdicts`` keeps the verdicts. Light to import: ``curator.settings`` reads ``config.py``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Judge
    from .config import JudgeConfig


def make_judge(config: "JudgeConfig") -> "Judge":
    """The judge ``config`` names: the scripted one for model ``scripted``, else the model's (a checked config)."""
    config = config.checked()
    if config.scripted:
        from .scripted import ScriptedJudge

        return ScriptedJudge()
    from .client import OpenAIJudge

    return OpenAIJudge(config)
