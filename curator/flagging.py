"""Auto-flagging: executor feedback and call checks → error tags → MAE weights.

Two sources of evidence about one assistant tool call:

- the call check (``store.toolcalls.Toolbox.check``): the call against the toolset's
  schemas, authoritative about the call's shape;
- the tool's feedback (``classify_feedback``): what the tool or simulator answered.

Reading feedback. Structure first, words second: when the feedback is (or carries,
after a ``Status Code: NNN. Response:`` prefix) a JSON or Python-literal value, it is
an error only if its shape says so (a non-empty ``error``, ``success: false``,
a pydantic ``detail`` list, an HTTP status ≥ 400 ...); words inside a successful
object ("Common errors in Python", ``error_rate``) never count. Free text is an
error only when an *alarm* phrase says so (an exception line, ``Max retries
exceeded``, ``is not a valid tool`` ...). Once something is known to be an error,
its message picks the code: the first rule in ``RULES`` that matches, else the HTTP
status (5xx, 401, 408, 429 are the tool's fault), else ``tool_call_failure``.
"""
from __future__ import annotations

import ast
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from store.taxonomy import default_mask_policy
from store.toolcalls import CallParseError, Problem, Toolbox, ToolCall, parse_openai_call


# --- Reading feedback -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A message pattern and the code it means.

    ``alarm``: the pattern alone shows that free text is an error report; the
    generic ones ("invalid city", "must be valid") only choose the code once that
    is known, since successful answers use those words too. Named groups ``param`` and
    ``tool`` fill the problem's names.
    """

    code: str
    pattern: re.Pattern[str]
    alarm: bool = True


def _rule(code: str, pattern: str, alarm: bool = True) -> Rule:
    return Rule(code, re.compile(pattern, re.IGNORECASE | re.MULTILINE), alarm)


_Q = r"""['"`]?"""  # an optional quote around a name
_NAME = r"(?P<param>[A-Za-z_][\w.\-]*)"
_ARG = r"(?:parameter|argument|field|option|key|property)s?"

#: Ordered: the first rule that matches an error message gives its code.
RULES: tuple[Rule, ...] = (
    # The tool could not read the call's arguments.
    _rule("parse_error", r"(?:could not|cannot|can't|unable to|failed to) (?:parse|decode)\b.{0,40}\b(?:json|arguments?|action input)"),
    _rule("parse_error", r"invalid json\b|arguments? (?:is|are) not valid json"),
    _rule("parse_error", r"(?:action input|arguments?|input) (?:must|should) be (?:an? )?(?:valid )?json"),
    # Failures outside the call: network, overload, quota, credentials, bugs in the tool.
    _rule("tool_instability", r"max retries exceeded|read timed out|(?:connect|connection|read|request|gateway) ?time-?out|timed out\b"),
    _rule("tool_instability", r"\btimeout(?:error|exception)\b|\A\W*timeout\b\s*[:!-]|deadline exceeded"),
    _rule("tool_instability", r"\b(?:econnrefused|econnreset|enotfound|etimedout|eai_again|getaddrinfo)\b"),
    _rule("tool_instability", r"connection (?:error|refused|reset|aborted|closed|lost|failed)|connectionerror|failed to establish a new connection"),
    _rule("tool_instability", r"remote end closed connection|name resolution|name or service not known"),
    _rule("tool_instability", r"\A\W*(?:5\d\d )?(?:internal server error|bad gateway|service (?:temporarily )?unavailable|gateway time-?out)\W*\Z"),
    _rule("tool_instability", r"internal server error|bad gateway|service (?:temporarily )?unavailable|gateway time-?out", alarm=False),
    _rule("tool_instability", r"temporarily unable|(?:please )?try again later"),
    _rule("tool_instability", r"too many requests|rate ?limit|call frequency|quota (?:exceeded|reached)|usage_limit|request volume"),
    _rule("tool_instability", r"\bquota\b|over_query_limit|limit exceeded|(?:not (?:have )?enough|insufficient|out of) (?:api )?credits?\b", alarm=False),
    _rule("tool_instability", r"\b401 client error|invalid[ _]?(?:api|access)[ _]?key"),
    _rule("tool_instability", r"unauthori[sz]ed|not authenticated|authentication|credentials", alarm=False),
    _rule("tool_instability", r"is not json serializable"),
    # The tool does not exist.
    _rule("tool_hallucination", r"(?P<tool>[\w.\-]+)['\"`]? is not a valid tool"),
    _rule("tool_hallucination", r"name ['\"](?P<tool>\w+)['\"] is not defined"),
    _rule("tool_hallucination", rf"(?:unknown|invalid|unsupported|no such) (?:tool|function|operation|action|endpoint)\b[:\s]*{_Q}(?P<tool>[\w.\-]+)?"),
    _rule("tool_hallucination", rf"(?:tool|function|operation|action){_Q}\s+{_Q}(?P<tool>[\w.\-]+){_Q} (?:not found|does not exist|is not available)"),
    _rule("tool_hallucination", r"method not found:?\s*(?P<tool>[\w.\-]+)?"),
    # An argument the tool does not define.
    _rule("param_hallucination", rf"unexpected keyword argument {_Q}{_NAME}"),
    _rule("param_hallucination", rf"(?:unknown|unrecogni[sz]ed|unexpected|unsupported|extra) (?:query |request |body )?{_ARG}(?: supplied)?[:\s]+{_Q}{_NAME}"),
    _rule("param_hallucination", rf"extra (?:inputs|fields) (?:are )?not permitted|unknown argument {_Q}{_NAME}"),
    _rule("param_hallucination", r"takes (?:from )?\d+ (?:to \d+ )?positional arguments? but \d+ (?:were|was) given"),
    _rule("param_hallucination", rf"{_ARG}\s+{_Q}{_NAME}{_Q}\s+(?:is )?not (?:supported|allowed|recogni[sz]ed|permitted)", alarm=False),
    # A required argument left out.
    _rule("param_missing", rf"missing \d+ required (?:positional |keyword-only )?arguments?:\s*{_Q}{_NAME}"),
    _rule("param_missing", rf"(?:missing|required) (?:required )?{_ARG}[:\s]+{_Q}{_NAME}"),
    _rule("param_missing", rf"(?:missing (?:the )?|requires (?:the )?{_ARG} ){_Q}{_NAME}{_Q}(?: {_ARG}\b)?"),
    _rule("param_missing", rf"\bmissing[_ ](?:field|param(?:eter)?|argument)\b"),
    _rule("param_missing", rf"{_Q}{_NAME}{_Q} is a required property"),
    _rule("param_missing", rf"(?:the |an? )?{_Q}{_NAME}{_Q} (?:{_ARG} )?is (?:a )?required|field required", alarm=False),
    _rule("param_missing", r"validation errors? for \w+\s*\n(?P<param>\w+)\s*\n\s*field required"),
    # A value that breaks the schema.
    _rule("param_invalid", r"invalid literal for \w+\(\)"),
    _rule("param_invalid", r"is not one of \[|is not of type '"),
    _rule("param_invalid", r"validation errors? for \w+\s*\n(?P<param>\w+)\s*\n"),
    _rule("param_invalid", rf"invalid (?:value|format|type) (?:for |of )?(?:{_ARG} )?{_Q}{_NAME}?", alarm=False),
    _rule("param_invalid", rf"invalid {_ARG}[:\s]+{_Q}{_NAME}|input should be|is not a valid \w+", alarm=False),
    _rule(
        "param_invalid",
        rf"{_Q}{_NAME}{_Q} (?:must|should) be (?:an? )?(?:valid |positive )?(?:integer|number|string|boolean|date|one of|between|in)\b",
        alarm=False,
    ),
    _rule("param_invalid", rf"(?:must|should) be (?:an? )?valid|\binvalid (?!api call|request\b){_Q}{_NAME}", alarm=False),
    _rule("param_invalid", rf"\bwrong {_NAME}", alarm=False),
    _rule("param_invalid", r"\b(?:unknown|unsupported) \w+(?: \w+)? (?:code|id|value|symbol|unit|format)s?\b", alarm=False),
    # The tool answered this call with an error of its own.
    _rule("tool_call_failure", r"invalid api call|response error"),
    _rule("tool_call_failure", r"\A\s*(?:[\w.]+\.)?\w*(?:error|exception)\b\s*:|traceback \(most recent call last\)"),
    _rule("tool_call_failure", r"\A\W*(?:error|fatal error|failure)\b\s*(?:[:!(\-]|executing|calling|while|occurred)|\A\W*(?-i:ERROR)\b"),
    _rule("tool_call_failure", r"\ban error (?:has )?occurred\b|\b(?:tool|function|api|request) call failed\b|\brequest failed\b"),
    _rule("tool_call_failure", r"\A\W*(?:not found|bad request|forbidden|method not allowed|unprocessable entity|gone)\W*\Z"),
    _rule("tool_call_failure", r"\b4\d\d client error\b"),
)

#: Keys (lower-cased, spaces as underscores) whose non-empty value reports an error.
_ERROR_KEYS = ("error", "errors", "error_message", "errormessage", "error_msg", "errmsg", "exception", "fault")

#: HTTP statuses that mean the tool, not the call, failed.
_INSTABILITY_STATUSES = frozenset({401, 407, 408, 429})

#: Where feedback states an HTTP status: a leading status line (ToolAlpaca's
#: ``Status Code: 400. Response: …``, ``HTTP/1.1 404``), the wording of HTTP
#: clients (requests, urllib, axios, openai) anywhere, or an HTML error page's title.
_STATUS = re.compile(
    r"\A\s*(?:status(?: code)?|http(?:/\d(?:\.\d)?)?)[:\s]\s*(\d{3})\b"
    r"|status code:?\s*(\d{3})\b|http error:?\s*(\d{3})\b|error code:?\s*(\d{3})\b"
    r"|\b(\d{3}) (?:client|server) error\b|<title>\s*(\d{3})\b|(?:returned|responded with)(?: status| http)?\s+(\d{3})\b",
    re.IGNORECASE,
)
#: Between a status line and the body: ". Response: ", " Unprocessable Entity: ", " - ".
_BODY_START = re.compile(r"\A[^{\[\n]{0,60}?(?=[{\[])")
#: ReAct logs (ToolAlpaca, LangChain) put the feedback after "Observation:".
_REACT_PREFIX = re.compile(r"\A\s*observation:\s*", re.IGNORECASE)
_PYDANTIC_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie", "form"})
_MESSAGE_KEYS = ("message", "msg", "detail", "error", "info", "information", "note", "description", "reason", "type", "text")
#: Keys that may sit beside a bare message without making it a payload.
_ENVELOPE_KEYS = ("code", "status", "documentation_url", "more_info", "help")


def classify_feedback(text: str | None) -> list[Problem]:
    """What the feedback says is wrong, as problems; empty when it reports success."""
    text = _REACT_PREFIX.sub("", (text or "").strip())
    if not text:
        return []
    status, rest = _status_of(text)
    value = _structured(rest)
    if value is not _NOTHING:
        return _from_value(value, status)
    if status is not None:
        return [] if status < 400 else _from_message(text, status)
    return _from_alarm(text)


def _status_of(text: str) -> tuple[int | None, str]:
    """The HTTP status the feedback states, and the text after it."""
    match = _STATUS.search(text)
    if not match:
        return None, text
    status = int(next(g for g in match.groups() if g))
    rest = text[match.end():]
    body = _BODY_START.match(rest)
    return status, rest[body.end():] if body else rest.strip()


_NOTHING = object()


def _structured(text: str) -> Any:
    """The JSON (or Python-literal) value the text is, or opens with; else ``_NOTHING``.

    Trailing prose after the value (ToolAlpaca appends advice) is ignored.
    """
    if not text or text[0] not in "{[":
        return _NOTHING
    try:
        return json.JSONDecoder().raw_decode(text)[0]
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return _NOTHING


def _from_value(value: Any, status: int | None) -> list[Problem]:
    problems = _from_object(value, status) if isinstance(value, Mapping) else []
    if problems or status is None or status < 400:
        return problems
    return _from_message(_text_of(value), status)


def _from_object(obj: Mapping[str, Any], status: int | None) -> list[Problem]:
    """Problems an object reports by its shape (``status``: the one stated outside it)."""
    lowered = {str(k).lower().replace(" ", "_"): v for k, v in obj.items()}
    problems: list[Problem] = []
    detail = lowered.get("detail")
    if isinstance(detail, list) and detail and all(isinstance(d, Mapping) for d in detail):
        return [_pydantic_problem(d) for d in detail]
    for name, message in _field_errors(lowered.get("errors")):
        problems.append(_from_message(message, None, param=name)[0])
    if problems:
        return problems
    status = _object_status(lowered) or status
    if _says_error(lowered) or (status is not None and status >= 400):
        return _from_message(_text_of(obj), status)
    if _message_only(lowered):
        return _from_alarm(_text_of({k: v for k, v in lowered.items() if k in _MESSAGE_KEYS}))
    return []


def _field_errors(errors: Any) -> list[tuple[str, str]]:
    """(argument, message) pairs of per-field validation errors.

    Laravel: ``{"email": ["must be valid"]}``; GitHub: ``[{"field": "title", "code": "missing_field"}]``.
    """
    if isinstance(errors, Mapping):
        return [(str(name), _text_of(message)) for name, message in errors.items()]
    if isinstance(errors, list):
        return [
            (str(e.get("field") or e.get("param")), _text_of(e))
            for e in errors
            if isinstance(e, Mapping) and (e.get("field") or e.get("param"))
        ]
    return []


def _says_error(obj: Mapping[str, Any]) -> bool:
    return (
        any(_truthy(obj.get(k)) for k in _ERROR_KEYS)
        or obj.get("success") is False
        or obj.get("ok") is False
        or obj.get("iserror") is True
        or obj.get("is_error") is True
        or str(obj.get("status", "")).lower() in {"error", "fail"}
        or set(obj) == {"detail"}
    )


def _truthy(value: Any) -> bool:
    return value not in (None, False, "", [], {}) and not (isinstance(value, str) and not value.strip())


def _object_status(obj: Mapping[str, Any]) -> int | None:
    """An HTTP-like status in the object (``status``, ``status_code``, ``cod``, ``code``)."""
    for key in ("status_code", "statuscode", "status", "cod", "code"):
        value = obj.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, str)) and str(value).strip().isdigit() and 100 <= int(value) <= 599:
            return int(value)
    return None


def _message_only(obj: Mapping[str, Any]) -> bool:
    """An object of nothing but message text: rate-limit notes and the like."""
    return any(k in _MESSAGE_KEYS for k in obj) and all(k in _MESSAGE_KEYS or k in _ENVELOPE_KEYS for k in obj)


def _from_alarm(text: str) -> list[Problem]:
    if any(r.alarm and r.pattern.search(text) for r in RULES):
        return _from_message(text, None)
    return []


def _pydantic_problem(item: Mapping[str, Any]) -> Problem:
    """One entry of a FastAPI/pydantic 422 ``detail`` list (v1 or v2)."""
    kind = str(item.get("type", ""))
    msg = str(item.get("msg", ""))
    loc = [str(p) for p in item.get("loc") or [] if str(p) not in _PYDANTIC_LOCATIONS]
    param = loc[0] if loc else None
    if kind in ("missing", "value_error.missing") or msg.lower() == "field required":
        code = "param_missing"
    elif kind in ("extra_forbidden", "value_error.extra") or "not permitted" in msg.lower():
        code = "param_hallucination"
    else:
        code = "param_invalid"
    return Problem(code, msg or kind, param=param)


def _from_message(text: str, status: int | None, param: str | None = None) -> list[Problem]:
    """The one problem an error message describes.

    The first matching rule names it; a status of 5xx, 401, 407, 408 or 429 turns
    an unexplained failure (no rule, or only a generic ``tool_call_failure`` one)
    into ``tool_instability``.
    """
    match, code = next(((m, r.code) for r in RULES if (m := r.pattern.search(text))), (None, "tool_call_failure"))
    if code == "tool_call_failure" and status is not None and (status >= 500 or status in _INSTABILITY_STATUSES):
        code = "tool_instability"
    names = match.groupdict() if match else {}
    return [Problem(code, _shorten(text), tool=names.get("tool"), param=param or names.get("param"))]


def _text_of(value: Any) -> str:
    """The human-readable text inside a value: its strings, joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return " ".join(_text_of(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return " ".join(_text_of(v) for v in value)
    return ""


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
