"""OpenAPI → function-calling tools: one tool per operation, its inputs as one JSON-schema object.

Used by the ToolAlpaca importer and by the simulator's ``--openapi FILE``. The
specs it meets are often written by a model, so beyond OpenAPI 3 it accepts the
Swagger 2 habits they carry (``in: body`` / ``formData`` parameters, a type
directly on the parameter, ``required: true`` on a property, ``int`` for
``integer``). Anything it cannot turn into a valid schema is an ``InputError``
naming the operation (``POST /report``) and the problem.

Merging: path, query, header and cookie parameters become properties (path
parameters are always required); an object request body contributes its
properties and its ``required`` list, any other body becomes one ``body``
property. When two inputs share a name the first one wins (parameters before
the body), since a call has one argument per name.

Naming: a tool is named by its operation's ``operationId``; an operation without
one takes the name ``names`` (a ToolAlpaca ``Function_Projection``: name ->
``[path, method]``) gives its path and method, else the name ToolAlpaca's own
``tool_maker/natural_language_documentation.py`` derives: the path without its
leading ``/``, ``/`` turned into ``_`` and the braces of path parameters dropped,
then ``_`` and the method (``GET /jokes/random/{category}`` ->
``jokes_random_category_get``), so golden answers written against those names
find their tools.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from ..errors import InputError
from ..records import Tool, Toolset
from .files import json_type
from .schema_types import schema_problem

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PARAMETER_LOCATIONS = ("path", "query", "header", "cookie", "formData", "body")

#: Type names model-written specs use for the JSON-schema ones.
_TYPE_ALIASES = {
    "int": "integer", "long": "integer", "float": "number", "double": "number", "str": "string",
    "text": "string", "bool": "boolean", "dict": "object", "map": "object", "list": "array",
}
#: Types that are really formats of a string.
_STRING_FORMATS = {"date": "date", "datetime": "date-time", "date-time": "date-time", "file": "binary",
                   "binary": "binary", "uri": "uri", "url": "uri", "email": "email"}
_JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
#: OpenAPI-only schema keywords that JSON Schema does not have (``nullable`` is converted).
_OPENAPI_ONLY = frozenset({"nullable", "example", "xml", "externalDocs", "discriminator"})
#: Keys of a parameter object that are not part of its (Swagger 2, inline) schema.
_PARAMETER_KEYS = frozenset({"name", "in", "description", "required", "schema", "content", "style", "explode",
                             "allowEmptyValue", "allowReserved", "collectionFormat", "deprecated", "example",
                             "examples"})


def toolset_from_openapi(spec: Any, name: str, source: str,
                         names: Mapping[str, Sequence[str]] | None = None) -> Toolset:
    """A toolset named ``name`` with one tool per operation of ``spec``; ``source`` names the input in errors,
    ``names`` (tool name -> ``[path, method]``) names the operations that have no ``operationId``."""
    by_operation = {(path, method.lower()): tool_name for tool_name, (path, method) in (names or {}).items()}
    if not isinstance(spec, dict) or not isinstance(spec.get("paths"), dict):
        found = "an object without 'paths'" if isinstance(spec, dict) else json_type(spec)
        raise InputError(source, f"not an OpenAPI spec: expected an object with 'paths', got {found}")
    tools: list[Tool] = []
    seen: dict[str, str] = {}
    for path, item in spec["paths"].items():
        item = _Refs(spec, source, path).follow(item)
        if not isinstance(item, dict):
            raise InputError(source, f"path item must be an object, got {json_type(item)}", path)
        for method in HTTP_METHODS:
            if method not in item:
                continue
            where = f"{method.upper()} {path}"
            fallback = by_operation.get((path, method)) or derived_name(path, method)
            tool = _tool(spec, source, where, item, item[method], fallback)
            if tool.name in seen:
                raise InputError(source, f"tool name '{tool.name}' is also used by {seen[tool.name]}", where)
            seen[tool.name] = where
            tools.append(tool)
    if not tools:
        raise InputError(source, "the OpenAPI spec has no operations under 'paths'")
    info = spec.get("info") if isinstance(spec.get("info"), dict) else {}
    description = info.get("description") or info.get("title") or ""
    return Toolset(name=name, tools=tools, description=str(description), source=source, spec=spec)


def derived_name(path: str, method: str) -> str:
    """ToolAlpaca's name for an operation without ``operationId`` (see the module docstring)."""
    return path[1:].replace("/", "_").replace("{", "").replace("}", "") + "_" + method


def _tool(spec: dict[str, Any], source: str, where: str, item: dict[str, Any], operation: Any,
          fallback: str) -> Tool:
    refs = _Refs(spec, source, where)
    operation = refs.follow(operation)
    if not isinstance(operation, dict):
        raise InputError(source, f"operation must be an object, got {json_type(operation)}", where)
    name = operation.get("operationId")
    if not isinstance(name, str) or not name.strip():
        name = fallback
    description = operation.get("description") or operation.get("summary") or ""
    parameters = _merge_inputs(refs, item.get("parameters"), operation.get("parameters"),
                               operation.get("requestBody"))
    problem = schema_problem(parameters)
    if problem:
        raise InputError(source, f"parameters are {problem}", where)
    return Tool(name=name.strip(), description=str(description), parameters=parameters)


def _merge_inputs(refs: "_Refs", path_level: Any, operation_level: Any, body: Any) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []

    def add(name: str, schema: dict[str, Any], is_required: bool) -> None:
        if name in properties:
            return
        properties[name] = schema
        if is_required:
            required.append(name)

    for parameter in _parameters(refs, path_level, operation_level):
        location = parameter["in"]
        if location == "body":
            _add_body(refs, parameter.get("schema"), bool(parameter.get("required")), add)
            continue
        schema = _parameter_schema(refs, parameter)
        add(parameter["name"], schema, location == "path" or parameter.get("required") is True)
    if body is not None:
        body = refs.follow(body)
        if not isinstance(body, dict):
            raise refs.error(f"requestBody must be an object, got {json_type(body)}")
        _add_body(refs, _media_schema(refs, body.get("content"), "requestBody"), body.get("required") is True, add)
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


def _parameters(refs: "_Refs", path_level: Any, operation_level: Any) -> list[dict[str, Any]]:
    """Path-item parameters overridden by the operation's (same name and location)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for group in (path_level, operation_level):
        if group is None:
            continue
        if not isinstance(group, list):
            raise refs.error(f"'parameters' must be an array, got {json_type(group)}")
        for raw in group:
            parameter = refs.follow(raw)
            if not isinstance(parameter, dict):
                raise refs.error(f"a parameter must be an object, got {json_type(parameter)}")
            name, location = parameter.get("name"), parameter.get("in")
            if not isinstance(name, str) or not name:
                raise refs.error("a parameter has no name")
            if location not in PARAMETER_LOCATIONS:
                raise refs.error(f"parameter '{name}' has 'in': {location!r}; expected one of "
                                 f"{', '.join(PARAMETER_LOCATIONS)}")
            merged[(name, location)] = parameter
    return list(merged.values())


def _parameter_schema(refs: "_Refs", parameter: dict[str, Any]) -> dict[str, Any]:
    name = parameter["name"]
    if "schema" in parameter:
        raw = parameter["schema"]
    elif "content" in parameter:
        raw = _media_schema(refs, parameter["content"], f"parameter '{name}'")
    else:  # Swagger 2: the schema keywords sit on the parameter itself
        raw = {k: v for k, v in parameter.items() if k not in _PARAMETER_KEYS}
    schema = refs.schema(raw if raw is not None else {}, f"parameter '{name}'")
    if parameter.get("description") and not schema.get("description"):
        schema = {**schema, "description": parameter["description"]}
    return schema


def _media_schema(refs: "_Refs", content: Any, what: str) -> Any:
    """The schema of the JSON media type, else of the first media type that has one."""
    if content is None:
        return None
    if not isinstance(content, dict):
        raise refs.error(f"{what} 'content' must be an object, got {json_type(content)}")
    media = [content["application/json"]] if "application/json" in content else []
    media += [m for k, m in content.items() if k != "application/json"]
    for entry in media:
        if isinstance(entry, dict) and "schema" in entry:
            return entry["schema"]
    return None


def _add_body(refs: "_Refs", raw: Any, body_required: bool,
              add: Callable[[str, dict[str, Any], bool], None]) -> None:
    if raw is None:
        return
    schema = _flatten_all_of(refs.schema(raw, "requestBody"))
    if isinstance(schema.get("properties"), dict) and schema.get("type", "object") == "object":
        inner_required = set(schema.get("required") or ())
        for name, property_schema in schema["properties"].items():
            add(name, property_schema, name in inner_required)
    else:
        add("body", schema, body_required)


def _flatten_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    """An ``allOf`` of object schemas as one object (the usual shape of a composed request body)."""
    parts = schema.get("allOf")
    if not isinstance(parts, list) or not all(isinstance(p, dict) and "properties" in p for p in parts):
        return schema
    flat = {k: v for k, v in schema.items() if k != "allOf"}
    flat["type"] = "object"
    flat["properties"] = {**flat.get("properties", {})}
    required = list(flat.get("required") or [])
    for part in map(_flatten_all_of, parts):
        flat["properties"].update(part["properties"])
        required += [r for r in part.get("required") or [] if r not in required]
    if required:
        flat["required"] = required
    return flat


class _Refs:
    """Resolves local ``$ref``s of one spec and converts OpenAPI schemas to JSON Schema."""

    def __init__(self, spec: dict[str, Any], source: str, where: str):
        self.spec, self.source, self.where = spec, source, where

    def error(self, problem: str) -> InputError:
        return InputError(self.source, problem, self.where)

    def follow(self, node: Any, seen: tuple[str, ...] = ()) -> Any:
        """A non-schema object (path item, operation, parameter, request body) with its ``$ref`` chain followed."""
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen:
                raise self.error(f"$ref cycle: {' -> '.join((*seen, ref))}")
            seen = (*seen, ref)
            node = self._target(ref)
        return node

    def schema(self, node: Any, what: str, stack: tuple[str, ...] = ()) -> dict[str, Any]:
        """A JSON-schema copy of an OpenAPI schema with every ``$ref`` inlined.

        A reference back into a schema being inlined (a recursive type) becomes an
        unconstrained schema that says so, instead of recursing forever.
        """
        if not isinstance(node, dict):
            raise self.error(f"{what}: a schema must be an object, got {json_type(node)}")
        if isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in stack:
                return {"description": f"recursive reference to {ref}"}
            resolved = self.schema(self._target(ref), what, (*stack, ref))
            return {**resolved, "description": node["description"]} if node.get("description") else resolved
        out: dict[str, Any] = {}
        lifted_required: list[str] = []
        for key, value in node.items():
            if key in _OPENAPI_ONLY:
                continue
            if key == "properties" and isinstance(value, dict):
                out[key] = {}
                for name, sub in value.items():
                    if isinstance(sub, dict) and sub.get("required") is True:
                        lifted_required.append(name)
                    out[key][name] = self.schema(sub, f"{what} property '{name}'", stack)
            elif key in ("items", "additionalProperties", "not", "contains", "propertyNames") and isinstance(value,
                                                                                                              dict):
                out[key] = self.schema(value, what, stack)
            elif key in ("allOf", "anyOf", "oneOf", "prefixItems") and isinstance(value, list):
                out[key] = [self.schema(v, what, stack) for v in value]
            elif key == "required":
                if isinstance(value, list):
                    out[key] = [v for v in value if isinstance(v, str)]
            elif key == "type":
                out.update(self._type(value, what))
            elif key == "examples" and not isinstance(value, list):
                continue
            else:
                out[key] = value
        if lifted_required:
            out["required"] = [*out.get("required", []), *(r for r in lifted_required if r not in out.get(
                "required", []))]
        if not out.get("required"):
            out.pop("required", None)
        if node.get("nullable") is True and isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        return out

    def _type(self, value: Any, what: str) -> dict[str, Any]:
        names = value if isinstance(value, list) else [value]
        if not all(isinstance(n, str) for n in names):
            raise self.error(f"{what}: 'type' must be a string, got {json_type(value)}")
        types, extra = [], {}
        for raw in names:
            name = _TYPE_ALIASES.get(raw.strip().lower(), raw.strip().lower())
            if name in _STRING_FORMATS:
                name, extra = "string", {"format": _STRING_FORMATS[name]}
            if name not in _JSON_TYPES:
                raise self.error(f"{what}: unknown type {raw!r}")
            types.append(name)
        return {"type": types if isinstance(value, list) else types[0], **extra}

    def _target(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise self.error(f"$ref {ref!r} points outside the document (only local '#/...' references are supported)")
        node: Any = self.spec
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise self.error(f"$ref {ref!r} does not resolve")
        return node
