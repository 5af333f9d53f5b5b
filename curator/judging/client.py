"""The model judge: asks any OpenAI-compatible Chat Completions server (vLLM, Ollama, llama.cpp, OpenAI).

Requests go through the simulation's ``OpenAIBackend``, so the judge has its guarantees: the real
``AsyncOpenAI`` client, one gate of ``concurrency`` requests, retries with backoff (``curator.sim.retry``),
fatal errors for a bad key or model, and everything the server sends redacted of the key before it becomes
a reason or an error. A reply not in the format (``reply.py``) is asked for again, told what was wrong,
up to ``reply_attempts`` times.
"""
from __future__ import annotations


from curator.sim.backends.openai import OpenAIBackend
from store.verdicts import Verdict

from . import prompt
from .base import Judge
from .case import Case
from .config import JudgeConfig
from .reply import UnreadableReply, read_reply

#: The role name requests and errors carry ("judge model: HTTP 401: …").
ROLE = "judge"


class OpenAIJudge(Judge):
    def __init__(self, config: JudgeConfig):
        self.config = config
        self.model = config.model or ""
        self.concurrency = config.concurrency
        self._backend = OpenAIBackend(config.client_config())

    @property
    def requests(self) -> int:
        return self._backend.requests

    @property
    def retries(self) -> int:
        return self._backend.retries

    async def verdict(self, case: Case) -> Verdict:
        messages = prompt.messages(case)
        problem = ""
        for _ in range(self.config.reply_attempts):
            text = await self._backend.text(ROLE, messages)
            try:
                return read_reply(text, case, self.model)
            except UnreadableReply as exc:
                problem = str(exc)
                messages = [*messages, {"role": "assistant", "content": text}, prompt.again(problem)]
        raise UnreadableReply(f"{problem} (the last of {self.config.reply_attempts} replies)")


    async def aclose(self) -> None:
        await self._backend.aclose()
