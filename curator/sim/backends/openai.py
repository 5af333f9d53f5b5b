"""The ``openai`` backend: any OpenAI-compatible Chat Completions server, a model and base URL per role.

vLLM, Ollama, llama.cpp's server and OpenAI itself all speak this API. The key
comes from the environment variable the config names, is handed to the client
and nowhere else (never stored, logged or put in an error message); a local
server that needs none gets a placeholder. A server may echo the key (``invalid
key Bearer sk-…``) in an error or even a completion: everything a server sends
passes ``store.redaction.redact`` here, before it becomes a message or a reason.

The client's own retries are off: this module retries (``retry.py``) so that
every trajectory sees the same policy, retries are counted, and an exhausted
budget becomes a trajectory's failure reason instead of an exception. All
requests share one gate of ``concurrency`` slots, so instruction writing and
trajectories together never exceed the configured concurrency.

One client per base URL, on the SDK's aiohttp transport (``openai[aiohttp]``)
with a pool of ``concurrency`` keep-alive connections. The default httpx2
transport probes every idle connection of its pool on each request and each
response (``has_expired``: a ``poll`` and a ``getpeername`` per connection), so
its CPU per request grows with the pool: profiled with bench/sim.py, 86 probes
per request at concurrency 256, and the client, not the server, was the limit.
"""
from __future__ import annotations

import asyncio
import json
import random
import re
from typing import Any

import httpx2
import openai

from store import Message
from store.errors import InputError
from store.redaction import redact, redact_value, register_secret
from store.toolcalls import ToolCall

from .. import prompts
from ..config import ROLES, SimConfig
from ..focus import focus_at
from ..retry import Backoff, retry_after, retryable_status
from ..toolsets import SimToolset
from .base import Backend, Episode, FatalModelError, Instruction, ModelError, Reply, Written

#: A model's answer wrapped in a Markdown code fence.
_FENCE = re.compile(r"\A\s*```[\w-]*\s*\n?(.*?)\n?```\s*\Z", re.DOTALL)
#: How often a reply in the wrong format (not a JSON array, not JSON) is asked for again.
FORMAT_ATTEMPTS = 3
_FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)


class MalformedResponse(Exception):
    """The server answered 200 with something that is not a chat completion."""


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(self, config: SimConfig, backoff: Backoff | None = None):
        self.config = config
        self.backoff = backoff or Backoff()
        self.requests = 0
        self.retries = 0
        self._gate = asyncio.Semaphore(config.concurrency)
        self._rng = random.Random()
        self._clients: dict[str | None, openai.AsyncOpenAI] = {}
        self._functions: dict[str, str] = {}
        for role in ROLES:
            url = config.role_base_url(role)
            if url not in self._clients:
                self._clients[url] = self._client(url)

    def _client(self, base_url: str | None) -> openai.AsyncOpenAI:
        key = self.config.api_key()
        register_secret(key)
        if key is None and base_url is None:
            raise InputError("simulate", f"no API key: set the environment variable {self.config.api_key_env} "
                             "(or give --base-url for a local server that needs none)", "api_key_env")
        pool = httpx2.Limits(max_connections=self.config.concurrency,
                             max_keepalive_connections=self.config.concurrency)
        return openai.AsyncOpenAI(api_key=key or "no-key-needed", base_url=base_url, max_retries=0,
                                  timeout=self.config.request_timeout,
                                  http_client=openai.DefaultAioHttpClient(limits=pool))

    def model(self, role: str) -> str:
        return self.config.role_model(role) or ""

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()

    # -- one request, retried ---------------------------------------------------------------
    async def _chat(self, role: str, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """The reply message of one chat completion, as the JSON object the server sent (keys redacted)."""
        try:
            return redact_value(await self._attempts(role, messages, **extra))
        except ModelError as exc:
            raise type(exc)(role, redact(exc.reason)) from None

    async def _attempts(self, role: str, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        client = self._clients[self.config.role_base_url(role)]
        for attempt in range(self.config.max_retries + 1):
            hinted: float | None = None
            try:
                self.requests += 1
                body = {"model": self.model(role), "messages": messages, "temperature": self.config.temperature,
                        **extra}
                async with self._gate:
                    # ``post`` is ``chat.completions.create`` minus its walk over the request's
                    # TypedDicts and the response's pydantic models: together ~2.5 ms of CPU per
                    # request with a toolset's schemas (profiled with bench/sim.py). The client still
                    # sends, times out and raises the API's errors; the body is plain JSON both ways.
                    raw = await client.post("/chat/completions", body=body, cast_to=bytes)
                return _reply_message(json.loads(raw))
            except _FATAL as exc:
                raise FatalModelError(role, _describe(exc)) from None
            except openai.APIStatusError as exc:
                if not retryable_status(exc.status_code):
                    raise ModelError(role, _describe(exc)) from None
                failure = _describe(exc)
                hinted = retry_after(exc.response.headers)
            except openai.APIConnectionError as exc:  # a timeout is one too
                failure = self._unreached(exc)
            except (MalformedResponse, ValueError) as exc:
                failure = f"malformed response ({type(exc).__name__}: {redact(str(exc))[:120]})"
            if attempt == self.config.max_retries:
                raise ModelError(role, f"{failure}; gave up after {attempt + 1} attempts")
            self.retries += 1
            await asyncio.sleep(self.backoff.delay(attempt, hinted, self._rng))
        raise AssertionError("unreachable")

    def _unreached(self, exc: openai.APIConnectionError) -> str:
        """``timed out after 60 s`` or ``connection error (…)``, told apart by the exception at the root of
        the chain: the SDK's aiohttp adapter raises a connect timeout for every aiohttp connection error
        (a refused connection, a server that hung up)."""
        root: BaseException = exc
        while root.__cause__ is not None:
            root = root.__cause__
        if isinstance(root, TimeoutError) or root is exc and isinstance(exc, openai.APITimeoutError):
            return f"timed out after {self.config.request_timeout:g} s"
        return f"connection error ({root})"

    async def text(self, role: str, messages: list[dict[str, Any]]) -> str:
        """The text of one reply to ``messages`` as ``role`` (the simulation's, or the judge's): one request through
        the shared gate, retried, redacted."""
        content = (await self._chat(role, messages)).get("content")
        return content if isinstance(content, str) else ""

    # -- the roles ----------------------------------------------------------------------------
    async def instructions(self, toolset: SimToolset, start: int, count: int,
                           avoid: Written) -> list[Instruction]:
        aims = [aim for i in range(start, start + count) if (aim := focus_at(self.config.focus, i))]
        for _ in range(FORMAT_ATTEMPTS):
            asked = prompts.write_requests(toolset, count, avoid.latest(prompts.SHOWN_WRITTEN), aims)
            found = _string_list(await self.text("user", asked))
            fresh = list(dict.fromkeys(t for t in found if t not in avoid))
            if fresh:
                return [Instruction(text) for text in fresh[:count]]
        raise ModelError("user", f"no JSON array of requests in {FORMAT_ATTEMPTS} answers")

    async def answer(self, episode: Episode, question: str) -> str:
        transcript = [m.to_openai() for m in episode.messages]
        return await self.text("user", prompts.answer_question(episode.toolset, episode.instruction.text,
                                                                 transcript, question))

    async def act(self, episode: Episode) -> Reply:
        reply = await self._chat("assistant", [_outgoing(m) for m in episode.messages],
                                 tools=episode.toolset.openai_tools)
        content, calls = reply.get("content"), reply.get("tool_calls")
        return Reply(content=content if isinstance(content, str) else None,
                     tool_calls=calls if isinstance(calls, list) and calls else None)

    async def respond(self, episode: Episode, call: ToolCall) -> str:
        text = ""
        for _ in range(FORMAT_ATTEMPTS):
            text = _unfenced(await self.text("executor", prompts.execute(episode.toolset, call, episode.memory)))
            try:
                json.loads(text)
                return text
            except ValueError:
                continue
        return text  # the tool answered in prose: kept as it is, the flagger reads it

    async def design(self, name: str, description: str, feedback: str | None) -> str:
        if name not in self._functions:
            self._functions[name] = await self.text("user", prompts.describe_functions(name, description))
        return _unfenced(await self.text("user", prompts.write_spec(name, description, self._functions[name],
                                                                     feedback)))


def _reply_message(completion: Any) -> dict[str, Any]:
    choices = completion.get("choices") if isinstance(completion, dict) else None
    message = choices[0].get("message") if isinstance(choices, list) and choices and isinstance(choices[0], dict) \
        else None
    if not isinstance(message, dict):
        raise MalformedResponse("the server's answer is not a chat completion")
    return message


def _outgoing(message: Message) -> dict[str, Any]:
    """A stored message as the API takes it (no training weight, no raw text)."""
    out = message.to_openai()
    out.pop("weight", None)
    out.pop("weight_source", None)
    out.pop("raw", None)
    if out["role"] == "assistant" and out.get("content") is None and not out.get("tool_calls"):
        out["content"] = ""
    return out


def _unfenced(text: str) -> str:
    match = _FENCE.match(text)
    return (match.group(1) if match else text).strip()


def _string_list(text: str) -> list[str]:
    """The strings of the first JSON array in ``text`` (objects count by their first string value)."""
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end <= start:
        return []
    try:
        items = json.loads(text[start:end + 1])
    except ValueError:
        return []
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            item = next((v for v in item.values() if isinstance(v, str)), None)
        if isinstance(item, str) and item.strip():
            out.append(item.strip())
    return out


def _describe(exc: openai.APIStatusError) -> str:
    """``HTTP 404: model 'x' not found``: the status and the server's own message, nothing from the request."""
    message = exc.message
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        message = str(inner.get("message") or message)
    return f"HTTP {exc.status_code}: {redact(message)[:200]}"  # redacted before it is cut: no half key
