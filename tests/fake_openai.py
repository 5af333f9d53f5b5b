"""A loopback OpenAI-compatible Chat Completions server for tests and benchmarks.

A real socket on 127.0.0.1, so the real ``openai`` client (retries, timeouts,
keep-alive, JSON decoding) is what gets tested. Python's ``ThreadingHTTPServer``
with HTTP/1.1 keep-alive, Nagle off and a deep listen backlog: without those the
server, not the client, is what a benchmark measures.

    with FakeOpenAI() as server:                   # server.base_url → http://127.0.0.1:PORT/v1
        server.script(Step.error(429, retry_after=0.1), Step.tool_call("getWeatherForecast", {"city": "Oslo"}),
                      role="assistant")            # the next assistant requests get these, in order
        ...
        server.requests                            # every request: role, body, headers

Without a script, requests get plausible answers by role (told apart by the
simulator's system prompts): the request writer gets a JSON array of requests,
the assistant calls the first tool and then answers (calling again, up to three
calls, while the feedback looks like an error), the executor returns JSON, and the
semantic judge (``curator.judging``) finds every call it is asked about ok and the
answer supported (``Step.verdict`` scripts another verdict).
``latency`` adds a fixed delay to every request (the benchmark's mode).

Run standalone (the benchmark runs it in its own process):
``python tests/fake_openai.py --latency 0.1`` prints ``listening http://127.0.0.1:PORT/v1``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from curator.judging import prompt as judge_prompt
from curator.sim import prompts


@dataclass
class Step:
    """One scripted response. Build with the class methods."""

    status: int = 200
    body: Any = None  # a dict (sent as JSON), a str (sent as is), or None: the automatic answer
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    message: dict[str, Any] | None = None  # the assistant message of a 200 completion

    @classmethod
    def tool_call(cls, name: str, arguments: dict[str, Any] | str, call_id: str | None = None) -> "Step":
        """A completion calling ``name``; string ``arguments`` are sent verbatim (they need not be JSON)."""
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        call = {"id": call_id or f"call_{next(_ids)}", "type": "function",
                "function": {"name": name, "arguments": text}}
        return cls(message={"role": "assistant", "content": None, "tool_calls": [call]})

    @classmethod
    def answer(cls, text: str) -> "Step":
        return cls(message={"role": "assistant", "content": text})

    @classmethod
    def verdict(cls, calls: dict[int, tuple[str, str]] | None = None, answer: tuple[str, str] | None = None,
                confidence: float = 0.9) -> "Step":
        """A judge's reply: ``calls`` maps call numbers to ``(verdict, reason)``, ``answer`` is ``(verdict, reason)``
        (None: the reply's answer is null); sent as the text a model would write."""
        entries = [{"call": n, "verdict": v, "reason": r, "confidence": confidence}
                   for n, (v, r) in sorted((calls or {}).items())]
        shown = {"verdict": answer[0], "reason": answer[1], "confidence": confidence} if answer else None
        return cls.answer(json.dumps({"calls": entries, "answer": shown}))

    @classmethod
    def error(cls, status: int, retry_after: float | None = None, message: str = "scripted error") -> "Step":
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        return cls(status=status, headers=headers,
                   body={"error": {"message": message, "type": "server_error", "code": None}})

    @classmethod
    def malformed(cls) -> "Step":
        """A 200 whose JSON body is cut off."""
        return cls(body='{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"index": 0, "mess')

    @classmethod
    def slow(cls, seconds: float, then: "Step | None" = None) -> "Step":
        """Answer (``then``, or the automatic answer) only after ``seconds``: a client timeout."""
        step = then or cls()
        step.delay = seconds
        return step

    @classmethod
    def drop_connection(cls) -> "Step":
        return cls(drop=True)


_ids = itertools.count(1)


@dataclass
class Recorded:
    role: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float  # time.monotonic() when the request arrived


def role_of(body: dict[str, Any]) -> str:
    """``assistant`` (has tools), ``writer``, ``user``, ``executor``, ``designer`` or ``judge``, by the system
    prompt."""
    if body.get("tools"):
        return "assistant"
    system = next((m.get("content") or "" for m in body.get("messages", []) if m.get("role") == "system"), "")
    for role, opening in (("writer", prompts.USER_WRITER), ("user", prompts.USER_ANSWERER),
                          ("executor", prompts.EXECUTOR), ("designer", prompts.DESIGNER),
                          ("judge", judge_prompt.SYSTEM)):
        if system.startswith(opening):
            return role
    return "assistant"


class FakeOpenAI:
    def __init__(self, latency: float = 0.0, host: str = "127.0.0.1", port: int = 0, record: bool = True):
        self.latency = latency
        self.record = record
        self.requests: list[Recorded] = []
        self._scripts: dict[str | None, deque[Step]] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._server = _Server((host, port), _Handler)
        self._server.fake = self
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "FakeOpenAI":
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, *steps: Step, role: str | None = None) -> None:
        """Queue responses for the next requests of ``role`` (any role when None), in order."""
        with self._lock:
            self._scripts.setdefault(role, deque()).extend(steps)

    def roles(self) -> list[str]:
        return [r.role for r in self.requests]

    # -- called from the handler threads ------------------------------------------------------
    def _take(self, role: str, body: dict[str, Any], headers: dict[str, str]) -> Step:
        with self._lock:
            if self.record:
                self.requests.append(Recorded(role, body, headers, time.monotonic()))
            for key in (role, None):
                if self._scripts.get(key):
                    return self._scripts[key].popleft()
        return Step()

    def respond(self, role: str, body: dict[str, Any], step: Step) -> tuple[int, dict[str, str], bytes]:
        if step.status != 200 or step.body is not None:
            text = step.body if isinstance(step.body, str) else json.dumps(step.body)
            return step.status, {"Content-Type": "application/json", **step.headers}, text.encode()
        message = step.message or self._automatic(role, body)
        completion = {
            "id": f"chatcmpl-{next(self._counter)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
        return 200, {"Content-Type": "application/json", **step.headers}, json.dumps(completion).encode()

    def _automatic(self, role: str, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages", [])
        if role == "writer":
            wanted = re.search(r"write (\d+) different", messages[0].get("content", ""))
            count = int(wanted.group(1)) if wanted else 3
            numbers = [next(self._counter) for _ in range(count)]
            return _text(json.dumps([f"Request {n}: what is the weather like in Oslo this week?" for n in numbers]))
        if role == "user":
            return _text("Oslo, please.")
        if role == "executor":
            return _text(json.dumps({"status": "ok", "temperature": 21.5, "condition": "sunny"}))
        if role == "judge":
            request = next(m.get("content") or "" for m in messages if m.get("role") == "user")
            return _text(json.dumps(_all_fine(request)))
        if role == "designer":
            if "List the" in messages[0].get("content", ""):
                return _text("searchThings: search things; inputs: query; output: list")
            return _text(json.dumps(SPEC))
        if not body.get("tools"):
            return _text("Hello from the fake server.")
        last = messages[-1] if messages else {}
        calls = sum(1 for m in messages if m.get("tool_calls"))
        if last.get("role") == "tool" and (not _looks_failed(last.get("content")) or calls >= 3):
            return _text(f"Here is what I found: {str(last.get('content'))[:80]}")
        tool = body["tools"][0]["function"]
        return Step.tool_call(tool["name"], _arguments(tool.get("parameters") or {})).message or {}


def _all_fine(request: str) -> dict[str, Any]:
    """The judge's reply that finds every call it is asked about ok and the answer (when asked) supported."""
    asked = json.loads(request[request.index("{"):])["judge"]
    fine = {"reason": "as asked", "confidence": 0.9}
    return {"calls": [{"call": n, "verdict": "ok", **fine} for n in asked["calls"]],
            "answer": {"verdict": "supported", **fine} if asked["answer"] else None}


def _looks_failed(content: Any) -> bool:
    """Tool feedback that is not a JSON object without an ``error`` (the fake assistant then calls again)."""
    try:
        value = json.loads(content)
    except (TypeError, ValueError):
        return True
    return not isinstance(value, dict) or "error" in value


def _text(content: str) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def _arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """Values for the required parameters that pass simple schemas."""
    out: dict[str, Any] = {}
    for name in schema.get("required") or []:
        prop = (schema.get("properties") or {}).get(name) or {}
        kind = prop.get("type")
        if prop.get("enum"):
            out[name] = prop["enum"][0]
        elif kind in ("integer", "number"):
            out[name] = prop.get("minimum", 1) + (1 if "exclusiveMinimum" in prop else 0)
        elif kind == "boolean":
            out[name] = True
        elif kind == "array":
            out[name] = ["Oslo"]
        elif prop.get("format") == "date":
            out[name] = "2025-01-01"
        else:
            out[name] = "Oslo"
    return out


SPEC = {
    "openapi": "3.0.0",
    "info": {"title": "Things", "version": "1.0.0", "description": "Search things."},
    "paths": {"/things": {"get": {
        "operationId": "searchThings", "description": "Search things by words.",
        "parameters": [{"name": "query", "in": "query", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"results": {"type": "array", "items": {"type": "string"}}}}}}}},
    }}},
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True
    fake: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about a client that went away (a run stopped with requests in flight); loud about the rest."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._send(200, {"Content-Type": "application/json"},
                   json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode())

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(400, {"Content-Type": "application/json"}, b'{"error": {"message": "invalid JSON body"}}')
            return
        role = role_of(body)
        step = fake._take(role, body, {k.lower(): v for k, v in self.headers.items()})
        if step.delay or fake.latency:
            time.sleep(step.delay + fake.latency)
        if step.drop:
            self.close_connection = True
            return
        self._send(*fake.respond(role, body, step))

    def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            self.close_connection = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeOpenAI(latency=args.latency, port=args.port, record=False).start()
    print(f"listening {server.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
