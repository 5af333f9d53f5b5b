"""API keys out of everything curator stores, exports and prints, including a server's echo of them.

A key is read from the environment variable a config names (``api_key_env``) and handed to the
HTTP client; ``register_secret`` is called with its value at that moment, and ``redact`` replaces
it from then on. It is applied where text from a server enters curator (the openai backend's
replies and errors), where rows are written (messages, reasons, run errors and configs), where
lines are exported and where the CLI prints an error, so one missed path is caught by the next.

A server may cut the key short when it echoes it (``invalid key Bearer sk-abc…``): every run of
the key's characters that starts with its first ``PREFIX`` characters is replaced, however far it
goes.
"""
from __future__ import annotations

import os
from typing import Any, overload

#: What a key becomes.
MASK = "[redacted]"
#: Values shorter than this are not treated as keys (a placeholder, an empty variable).
MIN_LENGTH = 8
#: A run of this many of a key's first characters is taken for (the start of) the key.
PREFIX = 12

_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Redact ``value`` from now on (ignored when shorter than ``MIN_LENGTH``)."""
    if value and len(value.strip()) >= MIN_LENGTH:
        _secrets.add(value.strip())


def register_key_env(name: str | None) -> None:
    """Redact the value of the environment variable ``name``, when it is set."""
    if name:
        register_secret(os.environ.get(name))


@overload
def redact(text: str) -> str: ...
@overload
def redact(text: None) -> None: ...
def redact(text: str | None) -> str | None:
    """``text`` with every registered key (or a cut-off start of one) replaced by ``MASK``."""
    if text is None:
        return None
    for secret in _secrets:
        if secret[:PREFIX] in text:
            text = _replace(text, secret)
    return text


def redact_value(value: Any) -> Any:
    """``value`` (decoded JSON: dicts, lists, strings …) with ``redact`` applied to every string in it."""
    if not _secrets:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    return value


def _replace(text: str, secret: str) -> str:
    head = secret[:PREFIX]
    out, start = [], 0
    while (found := text.find(head, start)) >= 0:
        end = found + len(head)
        while end - found < len(secret) and end < len(text) and text[end] == secret[end - found]:
            end += 1
        out += [text[start:found], MASK]
        start = end
    out.append(text[start:])
    return "".join(out)
