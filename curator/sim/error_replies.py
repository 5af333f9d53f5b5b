"""What the tool executor says when a call goes wrong, phrased the way real tools do.

Real feedback is a Python exception, a framework's 4xx body (FastAPI's 422
``detail`` list, an OpenAI-style ``error`` object), a plain ``{"error": …}``, or
a proxy's 5xx. The executor picks one phrasing at random per error, so a model
trained on the data learns to read feedback rather than one fixed string, and
each phrasing is one that ``store.feedback`` classifies back to its code.
"""
from __future__ import annotations

import json
import random
from typing import Any, Mapping

from store.toolcalls import Problem

_HTTP = {400: "Bad Request", 404: "Not Found", 422: "Unprocessable Entity", 502: "Bad Gateway",
         503: "Service Unavailable", 504: "Gateway Timeout", 429: "Too Many Requests"}


def http(status: int, body: Any) -> str:
    """An HTTP error as a tool wrapper reports it: ``HTTP 422 Unprocessable Entity: {...}``."""
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return f"HTTP {status} {_HTTP[status]}: {text}"


def error_json(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)


def _pydantic(kind: str, location: str, param: str, message: str, value: Any) -> str:
    return http(422, {"detail": [{"type": kind, "loc": [location, param], "msg": message, "input": value}]})


def tool_hallucination(rng: random.Random, tool: str, names: list[str]) -> str:
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return rng.choice([
        f"'{tool}' is not a valid tool, try one of [{shown}].",
        error_json(f"Unknown tool: {tool}"),
        http(404, {"error": f"No such operation: '{tool}'"}),
        f"NameError: name '{tool}' is not defined" if tool.isidentifier() else f"'{tool}' is not a valid tool.",
    ])


def param_hallucination(rng: random.Random, tool: str, param: str, value: Any) -> str:
    return rng.choice([
        f"TypeError: {tool}() got an unexpected keyword argument '{param}'",
        f"{tool}() got an unexpected keyword argument '{param}'",
        http(400, {"error": {"message": f"Unrecognized request argument supplied: {param}",
                             "type": "invalid_request_error", "param": param}}),
        _pydantic("extra_forbidden", "query", param, "Extra inputs are not permitted", value),
        error_json(f"unknown parameter '{param}'"),
    ])


def param_missing(rng: random.Random, tool: str, missing: list[str]) -> str:
    first = missing[0]
    if len(missing) == 1:
        python = f"{tool}() missing 1 required positional argument: '{first}'"
    else:
        listed = ", ".join(f"'{m}'" for m in missing[:-1]) + f" and '{missing[-1]}'"
        python = f"{tool}() missing {len(missing)} required positional arguments: {listed}"
    return rng.choice([
        f"TypeError: {python}",
        python,
        _pydantic("missing", "query", first, "Field required", None),
        error_json(f"Missing required parameter: {first}"),
        http(400, {"message": f"required parameter '{first}' is missing"}),
    ])


def param_invalid(rng: random.Random, tool: str, param: str, value: Any, schema: Mapping[str, Any] | None,
                  detail: str) -> str:
    kind, message = _pydantic_message(schema or {}, value)
    return rng.choice([
        _pydantic(kind, "query", param, message, value),
        http(400, {"error": f"Invalid value for '{param}': {detail}"}),
        f"ValueError: invalid value for '{param}': {detail}",
        error_json(detail),
    ])


def _pydantic_message(schema: Mapping[str, Any], value: Any) -> tuple[str, str]:
    """pydantic v2's error type and message for a value that breaks ``schema``."""
    if "enum" in schema:
        options = [f"'{o}'" for o in schema["enum"]]
        listed = options[0] if len(options) == 1 else ", ".join(options[:-1]) + f" or {options[-1]}"
        return "enum", f"Input should be {listed}"
    kind = schema.get("type")
    if kind == "integer" and isinstance(value, str):
        return "int_parsing", "Input should be a valid integer, unable to parse string as an integer"
    if kind == "number" and isinstance(value, str):
        return "float_parsing", "Input should be a valid number, unable to parse string as a number"
    if kind in ("integer", "number") and isinstance(value, (int, float)):
        if "minimum" in schema and value < schema["minimum"]:
            return "greater_than_equal", f"Input should be greater than or equal to {schema['minimum']}"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return "greater_than", f"Input should be greater than {schema['exclusiveMinimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return "less_than_equal", f"Input should be less than or equal to {schema['maximum']}"
    if schema.get("format") == "date":
        return "date_from_datetime_parsing", "Input should be a valid date in the format YYYY-MM-DD"
    if "pattern" in schema:
        return "string_pattern_mismatch", f"String should match pattern '{schema['pattern']}'"
    if kind == "boolean":
        return "bool_parsing", "Input should be a valid boolean, unable to interpret input"
    if kind == "array":
        return "list_type", "Input should be a valid list"
    return "string_type", "Input should be a valid string"


def parse_error(rng: random.Random, detail: str) -> str:
    return rng.choice([
        f"Could not parse the arguments as JSON: {detail}",
        http(400, {"error": f"Invalid JSON in arguments: {detail}"}),
        f"Error: arguments must be valid JSON ({detail})",
    ])


def instability(rng: random.Random, tool: str) -> str:
    host = "api.example.com"
    return rng.choice([
        http(503, "upstream connect error or disconnect/reset before headers. reset reason: overflow"),
        f"TimeoutError: the request to {tool} timed out after 30 seconds",
        http(502, "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"),
        http(504, {"error": "Gateway Timeout: the upstream server did not respond in time"}),
        f"requests.exceptions.ConnectionError: HTTPSConnectionPool(host='{host}', port=443): Max retries exceeded "
        f"with url: /v1/{tool} (Caused by NewConnectionError('Failed to establish a new connection: "
        "[Errno 111] Connection refused'))",
        http(429, {"error": "Too Many Requests: rate limit exceeded, retry in 20 seconds"}),
        error_json("Service temporarily unavailable, please try again later"),
    ])


def call_failure(rng: random.Random, param: str, value: Any) -> str:
    """The tool ran the (well-formed) call and failed on its values."""
    shown = value if isinstance(value, str) else json.dumps(value)
    return rng.choice([
        error_json(f"No results found for {param} '{shown}'"),
        http(404, {"message": f"{param} '{shown}' not found"}),
        f"Invalid API call: {param} '{shown}' does not exist",
    ])


def for_problems(rng: random.Random, tool: str, arguments: Mapping[str, Any], problems: list[Problem],
                 names: list[str], properties: Mapping[str, Any]) -> str:
    """Feedback for a malformed call: about its first problem, the way a real tool stops at the first."""
    first = problems[0]
    if first.code == "tool_hallucination":
        return tool_hallucination(rng, tool, names)
    if first.code == "param_hallucination":
        return param_hallucination(rng, tool, first.param or "", arguments.get(first.param or ""))
    if first.code == "param_missing":
        missing = [p.param or "" for p in problems if p.code == "param_missing"]
        return param_missing(rng, tool, missing)
    param = first.param or ""
    detail = first.detail.split(": ", 1)[-1]
    return param_invalid(rng, tool, param, arguments.get(param), properties.get(param), detail)
