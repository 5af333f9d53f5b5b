"""Type names of published function-calling datasets, as JSON Schema.

xLAM / APIGen writes Python-ish type names (``"str"``, ``"List[int]"``,
``"Dict[str, Any]"``, ``"str, optional"``, ``"int, default=5"``); BFCL writes
JSON-Schema-like trees with its own names (``"dict"``, ``"float"``, ``"tuple"``,
``"any"``, ``"String"``). Both become plain JSON Schema here. A name neither
knows (``"callable"``, ``"HashMap"``) becomes no type constraint rather than
an error: the importer keeps the tool, and a call is never refused for it.
"""
from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

#: Lower-cased type names → JSON Schema type; None means "any value".
_TYPES: dict[str, str | None] = {
    "str": "string", "string": "string", "char": "string",
    "int": "integer", "integer": "integer", "long": "integer", "short": "integer", "byte": "integer",
    "float": "number", "double": "number", "number": "number", "decimal": "number",
    "bool": "boolean", "boolean": "boolean",
    "list": "array", "array": "array", "tuple": "array", "set": "array", "sequence": "array", "arraylist": "array",
    "dict": "object", "object": "object", "mapping": "object", "hashmap": "object",
    "none": "null", "null": "null", "nonetype": "null",
    "any": None, "object_any": None,
}
#: Generic containers whose first argument is the type of their items.
_ITEM_GENERICS = {"list", "set", "sequence", "tuple", "iterable"}


def python_type(text: str) -> tuple[dict[str, Any], bool]:
    """The schema of a Python-ish type name, and whether it says the value is optional.

    ``"List[int]"`` → ``{"type": "array", "items": {"type": "integer"}}``; ``"str, optional"``
    and ``"int, default=5"`` are optional (``Optional[str]`` too); ``"Union[int, float]"``
    → ``{"type": ["integer", "number"]}``.
    """
    head, *tail = _split_top(text.strip(), maxsplit=1)
    note = tail[0].lower() if tail else ""
    schema, inner_optional = _expression(head.strip())
    optional = "optional" in note or "default" in note
    return schema, optional or inner_optional


def _expression(text: str) -> tuple[dict[str, Any], bool]:
    name, args = _generic(text)
    lowered = name.lower().removeprefix("typing.")
    if lowered == "optional" and args:
        return _expression(args[0])[0], True
    if lowered == "union" and args:
        members = [_expression(a)[0] for a in args]
        return _union(members), any(m.get("type") == "null" for m in members)
    if lowered in _ITEM_GENERICS and args and args[-1] != "...":
        items = _union([_expression(a)[0] for a in args]) if lowered == "tuple" else _expression(args[0])[0]
        return {"type": "array", **({"items": items} if items else {})}, False
    if lowered in ("dict", "mapping") and len(args) == 2:
        values = _expression(args[1])[0]
        return {"type": "object", **({"additionalProperties": values} if values else {})}, False
    kind = _TYPES.get(lowered)
    return ({"type": kind} if kind else {}), False


def _union(members: list[dict[str, Any]]) -> dict[str, Any]:
    """One schema accepting any of ``members`` (an unconstrained member makes the whole unconstrained)."""
    if any(not m for m in members):
        return {}
    if all(set(m) == {"type"} and isinstance(m["type"], str) for m in members):
        kinds = list(dict.fromkeys(m["type"] for m in members))
        return {"type": kinds[0] if len(kinds) == 1 else kinds}
    return {"anyOf": members}


def _generic(text: str) -> tuple[str, list[str]]:
    """``"Dict[str, List[int]]"`` → ``("Dict", ["str", "List[int]"])``; a bare name has no arguments."""
    if not text.endswith("]") or "[" not in text:
        return text, []
    name, _, rest = text.partition("[")
    return name.strip(), [a.strip() for a in _split_top(rest[:-1])]


def _split_top(text: str, maxsplit: int = -1) -> list[str]:
    """Split at commas outside brackets (``"Dict[str, int], optional"`` → two parts)."""
    parts: list[str] = []
    depth = start = 0
    for index, char in enumerate(text):
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == "," and depth == 0 and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append(text[start:index])
            start = index + 1
    return parts + [text[start:]]


def bfcl_schema(node: Any) -> Any:
    """A BFCL parameter tree as JSON Schema: type names mapped (any case), ``properties``, ``items`` and
    ``additionalProperties`` converted recursively, everything else (descriptions, enums, defaults) kept."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    if isinstance(out.get("type"), str):
        kind = _TYPES.get(out["type"].lower(), None)
        if kind is None:
            del out["type"]
        else:
            out["type"] = kind
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: bfcl_schema(value) for name, value in out["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = bfcl_schema(out[key])
    return out


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why ``schema`` is not a valid JSON Schema (``"at 'properties/q/enum': …"``), or None."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        return f"not a valid JSON schema at '{where}': {exc.message[:120]}"
    except (TypeError, ValueError) as exc:  # e.g. a non-string key jsonschema cannot walk
        return f"not a valid JSON schema: {exc}"
    return None
