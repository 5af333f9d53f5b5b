"""Toolset generation, ToolAlpaca's first step: an API's name and description → a validated OpenAPI 3 spec.

The backend is asked for the API's functions and then its spec; the spec must
be JSON, declare OpenAPI 3 and convert (``store.formats.openapi``) into valid
function schemas. A rejected spec is sent back with the reason, up to
``attempts`` times. The scripted backend designs a small plausible spec offline.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Iterable

from store import Toolset
from store.errors import InputError

from .backends.base import Backend, ModelError


@dataclass
class Generated:
    """One API's outcome: its toolset, or why it could not be made."""

    name: str
    toolset: Toolset | None = None
    error: str | None = None
    attempts: int = 0


def validate_spec(text: str, name: str) -> Toolset:
    """The toolset of a spec written as JSON text, or an ``InputError`` saying what is wrong with it."""
    from store.formats.openapi import toolset_from_openapi
    from store.safe_json import loads

    source = f"generated spec for {name}"
    try:
        spec: Any = loads(text)
    except ValueError as exc:
        raise InputError(source, f"not JSON: {exc}") from None
    if not isinstance(spec, dict) or not str(spec.get("openapi", "")).startswith("3"):
        raise InputError(source, "not an OpenAPI 3 document: it needs \"openapi\": \"3.0.0\" at the top level")
    toolset = toolset_from_openapi(spec, name, source)
    toolset.source = "generated"
    return toolset


async def generate_toolset(backend: Backend, name: str, description: str, attempts: int = 3) -> Generated:
    feedback: str | None = None
    for attempt in range(1, attempts + 1):
        try:
            text = await backend.design(name, description, feedback)
            return Generated(name, validate_spec(text, name), attempts=attempt)
        except InputError as exc:
            feedback = str(exc)
        except ModelError as exc:
            return Generated(name, error=str(exc), attempts=attempt)
    return Generated(name, error=f"no valid spec in {attempts} attempts; last problem: {feedback}", attempts=attempts)


async def generate_many(backend: Backend, apis: Iterable[tuple[str, str]], concurrency: int = 4,
                        attempts: int = 3) -> list[Generated]:
    """Several APIs at once (``--from FILE``), ``concurrency`` at a time, in the order given."""
    gate = asyncio.Semaphore(concurrency)

    async def one(name: str, description: str) -> Generated:
        async with gate:
            return await generate_toolset(backend, name, description, attempts)

    return list(await asyncio.gather(*(one(n, d) for n, d in apis)))


def read_api_list(data: Any, source: str) -> list[tuple[str, str]]:
    """(name, description) pairs from a JSON list of objects with name/description keys (any case, as in
    the public-apis list), or from an object mapping names to descriptions."""
    if isinstance(data, dict):
        return [(str(k), str(v)) for k, v in data.items()]
    if not isinstance(data, list) or not data:
        raise InputError(source, "expected a JSON list of {\"name\", \"description\"} objects")
    out = []
    for i, entry in enumerate(data):
        fields = {str(k).lower(): v for k, v in entry.items()} if isinstance(entry, dict) else {}
        name = fields.get("name") or fields.get("api")
        if not isinstance(name, str) or not name.strip():
            raise InputError(source, "each entry needs a name", i)
        out.append((name.strip(), str(fields.get("description") or "")))
    return out
