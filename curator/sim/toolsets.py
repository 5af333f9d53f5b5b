"""Where a simulation's tools come from, and what the agents need to know about them.

A toolset comes from the store (imported ToolAlpaca or OpenAPI, generated, or a
demo added earlier), from an OpenAPI 3 file, from a JSON list of function
schemas, or from the demo toolsets shipped in ``demo/``. The demos are written
by us; their files hold, beside each function schema, the response schema
(``returns``) and a few user requests (``requests``) the scripted backend fills
with concrete values.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from store import Store, Tool, Toolset
from store.errors import InputError
from store.toolcalls import Toolbox, function_of

DEMO_DIR = Path(__file__).with_name("demo")
#: The demo that holds every demo tool: 25 tools, many sharing long name prefixes.
EVERYDAY = "everyday"


def demo_names() -> list[str]:
    return sorted(p.stem for p in DEMO_DIR.glob("*.json")) + [EVERYDAY]


def demo_toolset(name: str) -> Toolset | None:
    """A demo toolset by name, or None; ``everyday`` merges all of them."""
    if name == EVERYDAY:
        parts = [demo_toolset(n) for n in demo_names() if n != EVERYDAY]
        tools = [t for part in parts if part for t in part.tools]
        spec = {"name": EVERYDAY, "description": "All demo tools together.",
                "tools": [t for part in parts if part and part.spec for t in part.spec["tools"]]}
        return Toolset(EVERYDAY, tools, spec["description"], "demo", spec)
    path = DEMO_DIR / f"{name}.json"
    if not path.is_file():
        return None
    spec = json.loads(path.read_text(encoding="utf-8"))
    tools = [Tool(t["name"], t["description"], t["parameters"]) for t in spec["tools"]]
    return Toolset(spec["name"], tools, spec["description"], "demo", spec)


def resolve(store: Store, name: str) -> Toolset:
    """The toolset called ``name`` from the store, else the demo of that name (added to the store)."""
    found = store.toolset(name)
    if found is not None:
        return found
    demo = demo_toolset(name)
    if demo is None:
        known = sorted(set(store.toolset_names()) | set(demo_names()))
        raise InputError("toolset", f"no toolset named {name!r} (known: {', '.join(known)})", name)
    store.add_toolset(demo)
    return demo


def from_openapi_file(path: str | os.PathLike[str], name: str | None = None) -> Toolset:
    """An OpenAPI 3 JSON file as a toolset (one tool per operation), named after the file by default."""
    from store.formats.openapi import toolset_from_openapi
    from store.formats.files import read_json

    return toolset_from_openapi(read_json(path), name or Path(path).stem, str(path))


def from_functions_file(path: str | os.PathLike[str], name: str | None = None) -> Toolset:
    """A JSON list of function schemas (bare or ``{"type": "function", ...}``), or ``{"tools": [...]}``."""
    from store.formats.files import json_type
    from store.formats.files import read_json

    source = str(path)
    data = read_json(path)
    items = data.get("tools") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise InputError(source, f"expected a non-empty JSON list of function schemas, got {json_type(data)}")
    tools: list[Tool] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(function_of(item).get("name"), str):
            raise InputError(source, "each function needs a 'name'", f"tools[{i}]")
        try:
            tool = Tool.from_openai(item)
        except (KeyError, TypeError) as exc:
            raise InputError(source, f"not a function schema: {exc}", f"tools[{i}]") from None
        if any(t.name == tool.name for t in tools):
            raise InputError(source, f"two functions are named {tool.name!r}", f"tools[{i}]")
        tools.append(tool)
    Toolbox([t.to_openai() for t in tools])  # compiles every schema: a broken one fails here, not mid-run
    description = data.get("description", "") if isinstance(data, dict) else ""
    return Toolset(name or Path(path).stem, tools, description, source, {"tools": items})


@dataclass
class SimToolset:
    """A toolset as the agents use it: schemas compiled once, response schemas and request templates found."""

    toolset: Toolset
    box: Toolbox = field(init=False)

    def __post_init__(self) -> None:
        self.box = Toolbox(self.openai_tools)

    @property
    def name(self) -> str:
        return self.toolset.name

    @property
    def description(self) -> str:
        return self.toolset.description

    @cached_property
    def openai_tools(self) -> list[dict[str, Any]]:
        return self.toolset.openai_tools()

    @cached_property
    def by_name(self) -> dict[str, Tool]:
        return {t.name: t for t in self.toolset.tools}

    @cached_property
    def _extras(self) -> dict[str, dict[str, Any]]:
        """Per tool: ``returns`` (response schema) and ``requests`` (templates), from the spec when it has them."""
        spec = self.toolset.spec or {}
        if isinstance(spec.get("paths"), dict):
            return {name: {"returns": schema} for name, schema in _openapi_responses(spec).items()}
        entries = spec.get("tools") if isinstance(spec.get("tools"), list) else []
        return {function_of(e).get("name"): e for e in entries if isinstance(e, Mapping)}

    def returns(self, tool: str) -> dict[str, Any] | None:
        schema = self._extras.get(tool, {}).get("returns")
        return schema if isinstance(schema, dict) else None

    def requests(self, tool: str) -> list[str]:
        templates = self._extras.get(tool, {}).get("requests")
        return [t for t in templates if isinstance(t, str)] if isinstance(templates, list) else []


def _openapi_responses(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """operationId → the JSON schema of its first 2xx (or default) JSON response, local ``$ref``s inlined."""
    out: dict[str, dict[str, Any]] = {}
    for item in spec["paths"].values():
        if not isinstance(item, dict):
            continue
        for operation in item.values():
            if not isinstance(operation, dict) or not isinstance(operation.get("operationId"), str):
                continue
            responses = operation.get("responses") if isinstance(operation.get("responses"), dict) else {}
            codes = sorted(c for c in responses if str(c).startswith("2")) + ["default"]
            for code in codes:
                content = _inline(spec, responses.get(code), 0)
                media = content.get("content", {}) if isinstance(content, dict) else {}
                schema = next((m.get("schema") for k, m in media.items() if "json" in k and isinstance(m, dict)), None)
                if isinstance(schema, dict):
                    out[operation["operationId"].strip()] = _inline(spec, schema, 0)
                    break
    return out


def _inline(spec: dict[str, Any], node: Any, depth: int) -> Any:
    """``node`` with local ``$ref``s replaced by their targets (a response schema to draw values from)."""
    if depth > 8:
        return {}
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = spec
            for part in ref[2:].split("/"):
                target = target.get(part) if isinstance(target, dict) else None
            return _inline(spec, target, depth + 1) if target is not None else {}
        return {k: _inline(spec, v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(spec, v, depth + 1) for v in node]
    return node
