"""Reading a tool's feedback: is this answer an error, and which code does it mean?

Pure text in, ``Problem``s out (no store, no I/O); ``store.flagging`` combines it
with the call check. Structure first, words second: when the feedback is (or carries,
after a ``Status Code: NNN. Response:`` prefix) a JSON or Python-literal value, it is
an error only if its shape says so (a non-empty ``error``, ``success: false``,
a pydantic ``detail`` list, per-field messages, a non-zero exit code, an HTTP
status ≥ 400 ...); words inside a successful object ("Common errors in Python",
``error_rate``) never count, nor does a validator's verdict (``valid: false``).
A string payload in a bare envelope (ToolBench's ``{"error": "", "response": …}``)
is read as feedback of its own. Free text is an error only when an *alarm* phrase
says so (an exception line, ``Max retries exceeded``, ``is not a valid tool`` ...),
and never when it is a listing of timestamped log lines. Statuses count when stated
as numbers or names (``rpc error: code = NotFound``, ``<title>Page not found``).
Once something is known to be an error, its message picks the code: the first rule
in ``RULES`` that matches, else the HTTP status (5xx, 401, 408, 429 are the tool's
fault), else ``tool_call_failure``.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

from store.toolcalls import Problem



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
_NAME = r"(?P<param>[A-Za-z_][\w.\-]{0,63})"  # bounded: unbounded runs make scans quadratic
_ARG = r"(?:param(?:eter)?|argument|field|option|key|property)s?"

#: Ordered: the first rule that matches an error message gives its code.
RULES: tuple[Rule, ...] = (
    # The tool could not read its upstream's answer (before the parse rules: not the call's fault).
    _rule("tool_instability", r"requests\.exceptions\.JSONDecodeError|(?:response|reply) (?:body )?(?:is not|was not|could not be (?:parsed|decoded) as) (?:valid )?json"),
    # The tool could not read the call's arguments.
    _rule("parse_error", r"(?:could not|cannot|can't|unable to|failed to) (?:parse|decode)\b.{0,40}\b(?:json|arguments?|action input)"),
    _rule("parse_error", r"invalid json\b|arguments? (?:is|are) not valid json"),
    _rule("parse_error", r"(?:action input|arguments?|input) (?:must|should) be (?:an? )?(?:valid )?json"),
    _rule("parse_error", rf"could not parse (?:llm )?output|invalid format:?\s+missing {_Q}(?:action|thought)"),
    # Failures outside the call: network, overload, quota, credentials, bugs in the tool.
    _rule("tool_instability", r"max retries exceeded|read timed out|(?:connect|connection|read|request|gateway) ?time-?out|timed out\b"),
    _rule("tool_instability", r"\btimeout(?:error|exception)\b|\A\W*timeout\b\s*[:!-]|deadline exceeded"),
    _rule("tool_instability", r"\b(?:econnrefused|econnreset|enotfound|etimedout|eai_again|getaddrinfo)\b"),
    _rule("tool_instability", r"connection (?:error|refused|reset|aborted|closed|lost|failed)|connectionerror|failed to establish a new connection"),
    _rule("tool_instability", r"remote end closed connection|name resolution|name or service not known"),
    _rule("tool_instability", r"(?:cannot|can't|could not|unable to|failed to) connect\b|server disconnected|socket hang up"),
    _rule("tool_instability", r"(?:returned|received|got) an? empty (?:response|reply|body)|empty reply from server"),
    _rule("tool_instability", r"\A\W*(?:5\d\d )?(?:internal server error|bad gateway|service (?:temporarily )?unavailable|gateway time-?out)\W*\Z"),
    _rule("tool_instability", r"internal server error|bad gateway|service (?:temporarily )?unavailable|gateway time-?out", alarm=False),
    _rule("tool_instability", r"temporarily unable|(?:please )?try again later"),
    _rule("tool_instability", r"too many requests|rate ?limit|rate exceeded|throttl(?:ed|ing)|call frequency|quota (?:exceeded|reached)|usage_limit|request volume"),
    _rule("tool_instability", r"\bquota\b|over_query_limit|limit exceeded|(?:not (?:have )?enough|insufficient|out of) (?:api )?credits?\b", alarm=False),
    _rule("tool_instability", r"exceeded (?:the |your )?(?:\w+ )?quota|not subscribed to|upgrade your plan|\bapi does(?: not|n't) exists?"),
    _rule("tool_instability", r"\b401 client error|\b(?:invalid|missing|expired|revoked|no)[ _]?(?:an? |the )?(?:valid )?(?:api|access)[ _]?(?:key|token)"),
    _rule("tool_instability", r"unauthori[sz]ed|not[ _]auth(?:ed|enticated)|invalid[ _]auth|authentication|credentials", alarm=False),
    # The tool itself is broken: a bug (a null dereference) or its environment.
    _rule("tool_instability", r"'NoneType' object|nil pointer|NullPointerException|segmentation (?:fault|violation)|\A\s*panic: "),
    _rule("tool_instability", r"no module named|database is locked|\bout of memory\b"),
    _rule("tool_instability", r"is not json serializable"),
    # The tool does not exist.
    _rule("tool_hallucination", r"(?P<tool>[\w.\-]{1,64})['\"`]? is not a valid tool"),
    _rule("tool_hallucination", r"name ['\"](?P<tool>\w+)['\"] is not defined"),
    _rule("tool_hallucination", r"referenceerror: (?P<tool>[\w$]{1,64}) is not defined"),
    _rule("tool_hallucination", rf"(?:unknown|invalid|unsupported|no such) (?:tool|function|operation|action|endpoint|method)(?: name)?\b[:\s]*{_Q}(?P<tool>[\w.\-]{{1,64}})?"),
    _rule("tool_hallucination", rf"\bno (?:tool|function|operation|action|method) (?:named|called) {_Q}(?P<tool>[\w.\-]{{1,64}})"),
    _rule("tool_hallucination", rf"(?:tool|function|operation|action){_Q}\s+{_Q}(?P<tool>[\w.\-]{{1,64}}){_Q} (?:not found|does not exist|is not available)"),
    _rule("tool_hallucination", r"method not found:?\s*(?P<tool>[\w.\-]{1,64})?"),
    # An argument the tool does not define.
    _rule("param_hallucination", rf"unexpected keyword argument {_Q}{_NAME}"),
    _rule("param_hallucination", rf"(?:unknown|unrecogni[sz]ed|unexpected|unsupported|extra) (?:query |request |body )?{_ARG}\b(?: supplied| in input)?(?:[:\s]+{_Q}-{{0,2}}{_NAME})?"),
    _rule("param_hallucination", rf"additional properties are not allowed \({_Q}{_NAME}"),
    _rule("param_hallucination", rf"{_ARG} {_Q}{_NAME}{_Q} is not defined by type"),
    _rule("param_hallucination", rf"extra (?:inputs|fields) (?:are )?not permitted|unknown argument {_Q}{_NAME}"),
    _rule("param_hallucination", r"takes (?:from )?\d+ (?:to \d+ )?positional arguments? but \d+ (?:were|was) given"),
    _rule("param_hallucination", rf"{_ARG}\s+{_Q}{_NAME}{_Q}\s+(?:is )?not (?:supported|allowed|recogni[sz]ed|permitted)", alarm=False),
    # "A valid integer is required" is about the value, not its presence.
    _rule("param_invalid", r"\ba valid [\w ]{1,30}? is required", alarm=False),
    # A required argument left out.
    _rule("param_missing", rf"missing \d+ required (?:positional |keyword-only )?arguments?:\s*{_Q}{_NAME}"),
    _rule("param_missing", rf"(?:missing|required) (?:required )?{_ARG}[:\s]+{_Q}{_NAME}"),
    _rule("param_missing", rf"(?:missing (?:the )?|requires (?:the )?{_ARG} )['\"`]{_NAME}['\"`]"),
    _rule("param_missing", rf"(?:missing (?:the )?|requires (?:the )?{_ARG} ){_NAME} {_ARG}\b"),
    _rule("param_missing", rf"{_ARG} {_Q}{_NAME}{_Q}[^.\n]{{0,60}}?(?:is not present|was not (?:provided|supplied|given))"),
    _rule("param_missing", r"\bmissing[_ ](?:field|param(?:eter)?|argument)\b"),
    _rule("param_missing", rf"{_Q}{_NAME}{_Q} is a required property"),
    _rule("param_missing", rf"(?:the |an? )?{_Q}{_NAME}{_Q} (?:{_ARG} )?is (?:a )?required|field required", alarm=False),
    _rule("param_missing", r"can't be blank|(?:may|must) not be (?:blank|empty|null)", alarm=False),
    _rule("param_missing", r"validation errors? for \w+\s*\n(?P<param>\w+)\s*\n\s*field required"),
    # A value that breaks the schema.
    _rule("param_invalid", r"invalid literal for \w+\(\)"),
    _rule("param_invalid", r"is not one of \[|is not of type '"),
    _rule("param_invalid", r"does not match format|for input string:|failed to convert value|cannot unmarshal \w+ into Go (?:struct field (?:\w+\.)*(?P<param>\w+)|value)"),
    _rule("param_invalid", r"validation errors? for \w+\s*\n(?P<param>\w+)\s*\n"),
    _rule("param_invalid", rf"invalid (?:\w+ )?(?:value|format|type) (?:for |of )?(?:{_ARG} )?{_Q}{_NAME}?", alarm=False),
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
    _rule("tool_call_failure", r"\A\s*(?:[\w.]{1,64}\.)?\w{0,64}(?:error|exception)\b\s*:|traceback \(most recent call last\)"),
    _rule("tool_call_failure", r"\A\W*(?:error|fatal error|failure)\b\s*(?:[:!(\-]|executing|calling|while|occurred)|\A\W*(?-i:ERROR)\b"),
    _rule("tool_call_failure", r"\ban error (?:has )?occurred\b|\b(?:tool|function|api|request) call failed\b|\brequest failed\b"),
    _rule("tool_call_failure", r"\A\W*(?:not found|bad request|forbidden|method not allowed|unprocessable entity|gone)\W*\Z"),
    _rule("tool_call_failure", r"\b4\d\d client error\b"),
    _rule("tool_call_failure", r"^[\w.\-/]{1,64}:(?: line \d+:)? (?:(?:fatal )?error:|cannot (?:access|open|stat|create|remove)\b)|command not found|no such file or directory"),
    _rule("tool_call_failure", r"(?:did not|could not|couldn't|cannot|unable to) understand (?:your |the )?(?:input|query|request)|validation failed\b"),
)

#: Keys (lower-cased, spaces as underscores) whose non-empty value reports an error.
_ERROR_KEYS = ("error", "errors", "error_message", "errormessage", "error_msg", "errmsg", "exception", "fault")

#: HTTP statuses that mean the tool, not the call, failed.
_INSTABILITY_STATUSES = frozenset({401, 407, 408, 429})

#: Statuses stated by name: HTTP reason phrases and gRPC's canonical codes (which
#: Google's JSON APIs spell ``PERMISSION_DENIED``), as the HTTP status they mean.
_STATUS_NAMES = {
    "bad request": 400, "invalid argument": 400, "failed precondition": 400, "out of range": 400,
    "unauthorized": 401, "unauthenticated": 401, "forbidden": 403, "permission denied": 403,
    "not found": 404, "page not found": 404, "method not allowed": 405, "conflict": 409, "already exists": 409,
    "aborted": 409, "unprocessable entity": 422, "too many requests": 429, "resource exhausted": 429,
    "internal server error": 500, "server error": 500, "internal": 500, "unknown": 500, "data loss": 500,
    "not implemented": 501, "unimplemented": 501, "bad gateway": 502, "service unavailable": 503,
    "unavailable": 503, "gateway time out": 504, "deadline exceeded": 504,
}
_NAMED_STATUS = "|".join(name.replace(" ", r"[ _\-]?") for name in sorted(_STATUS_NAMES, key=len, reverse=True))

#: Where feedback states an HTTP status: a leading status line (ToolAlpaca's
#: ``Status Code: 400. Response: …``, ``HTTP/1.1 404``), the wording of HTTP
#: clients (requests, urllib, axios, openai) anywhere, an HTML error page's title
#: (``404 Not Found``, Django's ``Page not found at /x/``, ``Server Error (500)``;
#: nothing else may follow the name, so a page titled "Forbidden Planet" has none),
#: or a gRPC status (``rpc error: code = NotFound desc = …``).
_STATUS = re.compile(
    r"\A\s*(?:status(?: code)?|http(?:/\d(?:\.\d)?)?)[:\s]\s*(\d{3})\b"
    r"|status code:?\s*(\d{3})\b|http error:?\s*(\d{3})\b|error code:?\s*(\d{3})\b"
    r"|\b(\d{3}) (?:client|server) error\b|<title>\s*(\d{3})\b|(?:returned|responded with)(?: status| http)?\s+(\d{3})\b"
    rf"|<title>\s*({_NAMED_STATUS})(?:\s*\(\d{{3}}\)|\s+at\s[^<]*)?\s*</title>|\brpc error: code = ({_NAMED_STATUS})\b",
    re.IGNORECASE,
)
#: Between a status line and the body: ". Response: ", " Unprocessable Entity: ", " - ".
_BODY_START = re.compile(r"\A[^{\[\n]{0,60}?(?=[{\[])")
#: A log line opens with a date and time: ``2024-05-02 10:11:03``, ``[2024-05-02T10:11:03Z]``.
_LOG_LINE = re.compile(r"\A\W{0,2}\d{4}-\d\d-\d\d[T ]\d\d:\d\d")
#: ReAct logs (ToolAlpaca, LangChain) put the feedback after "Observation:".
_REACT_PREFIX = re.compile(r"\A\s*observation:\s*", re.IGNORECASE)
_PYDANTIC_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie", "form"})
_MESSAGE_KEYS = ("message", "msg", "detail", "error", "info", "information", "note", "description", "reason", "type", "text")
#: Keys that may sit beside a bare message without making it a payload.
_ENVELOPE_KEYS = ("code", "status", "documentation_url", "more_info", "help")
#: An envelope's one payload key; a string there is feedback of its own (ToolBench: ``{"error": "", "response": "…"}``).
_PAYLOAD_KEYS = ("response", "result", "output")
#: A command's exit status: non-zero is a failure.
_EXIT_KEYS = ("exit_code", "exitcode", "returncode", "return_code", "exit_status")
#: A validator's verdict: an object carrying one reports on the data it was given, not on the call.
_VERDICT_KEYS = ("valid", "is_valid", "isvalid")
_PARAM_CODES = frozenset({"param_hallucination", "param_missing", "param_invalid"})


def classify_feedback(text: str | None) -> list[Problem]:
    """What the feedback says is wrong, as problems; empty when it reports success."""
    text = _REACT_PREFIX.sub("", (text or "").strip())
    if not text:
        return []
    value = _structured(text)
    if value is not _NOTHING:
        return _from_value(value, None)
    status, rest = _status_of(text)
    value = _structured(rest)
    if value is not _NOTHING:
        return _from_value(value, status)
    if status is not None:
        return [] if status < 400 else [_from_message(text, status)]
    return [] if _is_log(text) else _from_alarm(text)


def _status_of(text: str) -> tuple[int | None, str]:
    """The HTTP status the feedback states, and the text after it."""
    match = _STATUS.search(text)
    if not match:
        return None, text
    found = next(g for g in match.groups() if g)
    status = int(found) if found.isdigit() else _named_status(found)
    rest = text[match.end():]
    body = _BODY_START.match(rest)
    return status, rest[body.end():] if body else rest.strip()


def _named_status(name: str) -> int:
    """The status a name of ``_STATUS_NAMES`` means, however it is spelt (``NotFound``, ``NOT_FOUND``)."""
    key = re.sub(r"[ _\-]", "", name).lower()
    return next(status for phrase, status in _STATUS_NAMES.items() if phrase.replace(" ", "") == key)


def _is_log(text: str) -> bool:
    """Two or more lines that each open with a timestamp: a log the tool returned, its errors are data."""
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) >= 2 and all(_LOG_LINE.match(line) for line in lines)


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
    return [_from_message(_text_of(value), status)]


def _from_object(obj: Mapping[str, Any], status: int | None) -> list[Problem]:
    """Problems an object reports by its shape (``status``: the one stated outside it)."""
    lowered = {str(k).lower().replace(" ", "_"): v for k, v in obj.items()}
    if any(isinstance(lowered.get(k), bool) for k in _VERDICT_KEYS):
        return []
    detail = lowered.get("detail")
    if isinstance(detail, list) and detail and all(isinstance(d, Mapping) for d in detail):
        return [_pydantic_problem(d) for d in detail]
    fields = _field_errors(lowered.get("errors")) or _bare_field_errors(obj)
    problems = [_from_message(message, None, param=name) for name, message in fields]
    if problems:
        return problems
    status = _object_status(lowered) or status
    if _says_error(lowered) or (status is not None and status >= 400):
        return [_from_message(_text_of(obj), status)]
    if _message_only(lowered):
        return _from_alarm(_text_of({k: v for k, v in lowered.items() if k in _MESSAGE_KEYS}))
    payload = _payload(lowered)
    return [] if payload is None else classify_feedback(payload)


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


def _bare_field_errors(obj: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Per-field validation errors that are the whole object (Django REST framework, marshmallow).

    ``{"email": ["This field is required."]}``: every value a list of messages, and
    every message one that a parameter rule reads; ``{"tags": ["a", "b"]}`` is data.
    """
    lists = obj.values()
    if not obj or not all(isinstance(v, list) and v and all(isinstance(m, str) for m in v) for v in lists):
        return []
    return _field_errors(obj) if all(_first_rule(m)[1] in _PARAM_CODES for v in lists for m in v) else []


def _payload(obj: Mapping[str, Any]) -> str | None:
    """The string an envelope carries: an (empty) error slot, one payload key, and status keys at most.

    Without the error slot, ``{"result": "Connection refused means no process listens"}`` is an answer.
    """
    keys = [k for k in obj if k in _PAYLOAD_KEYS]
    if len(keys) != 1 or not isinstance(obj[keys[0]], str) or not any(k in _ERROR_KEYS for k in obj):
        return None
    return obj[keys[0]] if all(k in _PAYLOAD_KEYS or k in _ERROR_KEYS or k in _ENVELOPE_KEYS for k in obj) else None


def _says_error(obj: Mapping[str, Any]) -> bool:
    return (
        any(_truthy(obj.get(k)) for k in _ERROR_KEYS)
        or obj.get("success") is False
        or obj.get("ok") is False
        or obj.get("iserror") is True
        or obj.get("is_error") is True
        or str(obj.get("status", "")).lower() in {"error", "fail"}
        or set(obj) == {"detail"}
        or any(type(obj.get(k)) is int and obj[k] != 0 for k in _EXIT_KEYS)
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
        return [_from_message(text, None)]
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


def _from_message(text: str, status: int | None, param: str | None = None) -> Problem:
    """The one problem an error message describes.

    The first matching rule names it; a status of 5xx, 401, 407, 408 or 429 turns
    an unexplained failure (no rule, or only a generic ``tool_call_failure`` one)
    into ``tool_instability``.
    """
    match, code = _first_rule(text)
    if code == "tool_call_failure" and status is not None and (status >= 500 or status in _INSTABILITY_STATUSES):
        code = "tool_instability"
    names = match.groupdict() if match else {}
    return Problem(code, shorten(text), tool=names.get("tool"), param=param or names.get("param"))


def _first_rule(text: str) -> tuple[re.Match[str] | None, str]:
    """The match and code of the first rule that matches ``text``; ``tool_call_failure`` when none does."""
    return next(((m, r.code) for r in RULES if (m := r.pattern.search(text))), (None, "tool_call_failure"))


def _text_of(value: Any) -> str:
    """The human-readable text inside a value: its strings, joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return " ".join(_text_of(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return " ".join(_text_of(v) for v in value)
    return ""


def shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
