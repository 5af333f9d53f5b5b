"""The error codes an annotator or the auto-flagger can put on a message.

One table, used by the flagger, the review TUI's tag picker, the exporters and
the trainer's mask policy. See DESIGN.md, "Error taxonomy".
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    code: str
    meaning: str
    found_by: str
    masks_by_default: bool = True


CODES: tuple[ErrorCode, ...] = (
    ErrorCode("parse_error", "assistant output is neither a valid call nor an answer", "parser"),
    ErrorCode("tool_hallucination", "calls a tool that is not in the toolset", "call check, feedback"),
    ErrorCode("param_hallucination", "passes an argument the tool does not define", "call check, feedback"),
    ErrorCode("param_missing", "leaves out a required argument", "call check, feedback"),
    ErrorCode("param_invalid", "value breaks the schema (type, enum, format)", "call check, feedback"),
    ErrorCode("tool_call_failure", "the tool answered this call with an error", "feedback"),
    ErrorCode("tool_instability", "the tool failed for reasons outside the call", "feedback"),
    ErrorCode("wrong_tool", "a real tool, but not the right one", "human, or against gold"),
    ErrorCode("param_redundant", "a real but unneeded argument", "human, or against gold"),
    ErrorCode("content_error", "right tool and arguments, wrong values", "human, or against gold"),
    ErrorCode("answer_unsupported", "final answer not backed by the observations", "human"),
    # A whole-trajectory tag for the review queue to filter or hide (``store.dedup``): it masks no message.
    ErrorCode("duplicate", "near-duplicate of another trajectory", "dedup", masks_by_default=False),
    ErrorCode("other", "anything else, with a note", "human"),
)

BY_CODE: dict[str, ErrorCode] = {c.code: c for c in CODES}
CODE_NAMES: tuple[str, ...] = tuple(c.code for c in CODES)

#: The code ``curator dedup`` puts on every member of a cluster of near-duplicates but the one it keeps.
DUPLICATE = "duplicate"

#: Codes that describe a malformed call (found without asking the tool).
CALL_CHECK_CODES = frozenset(
    {"parse_error", "tool_hallucination", "param_hallucination", "param_missing", "param_invalid"}
)


@dataclass(frozen=True)
class MaskPolicy:
    """The codes whose presence on an assistant message gives it training weight 0.

    One value, built once from ``curator.toml [flag]`` (``curator.settings.FlagConfig.policy``)
    and handed to every flagging call: the simulation, imports, ``curator flag``, the
    review screen and the training snapshot all weigh messages by the same policy.
    """

    codes: frozenset[str]

    @classmethod
    def of(cls, mask_instability: bool = True) -> "MaskPolicy":
        """Every code that masks by default; tool instability only when ``mask_instability``."""
        codes = {c.code for c in CODES if c.masks_by_default}
        if not mask_instability:
            codes.discard("tool_instability")
        return cls(frozenset(codes))

    @property
    def masks_instability(self) -> bool:
        return "tool_instability" in self.codes

    def masks(self, code: str) -> bool:
        return code in self.codes


def check_code(code: str) -> str:
    """Return ``code`` if it is a known error code, else raise ValueError naming it."""
    if code not in BY_CODE:
        raise ValueError(f"unknown error code {code!r} (known: {', '.join(CODE_NAMES)})")
    return code
