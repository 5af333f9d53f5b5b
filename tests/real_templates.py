"""Real published chat templates, read in place, and what a test needs to try each offline.

Each case names where its text lives (``../shared/fixtures/chat_templates`` or the
installed TRL package's ``trl/chat_templates``, see tests/data/chat_templates/SOURCES.md),
the special tokens its tokenizer has (so the offline byte-level BPE keeps them whole),
and the test's own oracle: a regular expression, written from the template's
documented turn markers, whose group 1 is what one assistant message produces
(content, calls, end of turn). The oracle knows nothing of how training finds spans.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import fixture_path

QWEN_TOKENS = ["<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
LLAMA_TOKENS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|python_tag|>",
                "<|eom_id|>"]
MISTRAL_TOKENS = ["[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_CALLS]", "[TOOL_RESULTS]",
                  "[/TOOL_RESULTS]"]
DEEPSEEK_TOKENS = ["<｜User｜>", "<｜Assistant｜>", "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>",
                   "<｜tool▁call▁end｜>", "<｜tool▁sep｜>", "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>",
                   "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"]
LFM_TOKENS = ["<|im_start|>", "<|im_end|>", "<|tool_list_start|>", "<|tool_list_end|>", "<|tool_call_start|>",
              "<|tool_call_end|>", "<|tool_response_start|>", "<|tool_response_end|>"]


@dataclass(frozen=True)
class Case:
    name: str
    where: str  # "fixture" or "trl"
    file: str
    special: dict[str, str]
    extra: list[str] = field(default_factory=list)
    assistant: str = ""  # the oracle: group 1 is one assistant message's output
    tools: bool = True  # whether the template renders tool calls at all

    def path(self) -> Path:
        if self.where == "fixture":
            return fixture_path(f"chat_templates/{self.file}")
        trl = pytest.importorskip("trl")
        path = Path(trl.__file__).parent / "chat_templates" / self.file
        if not path.exists():
            pytest.skip(f"{path} is not in the installed TRL")
        return path

    def oracle(self, text: str) -> list[tuple[int, int]]:
        """Character ranges of the assistant outputs in ``text``, in order."""
        return [m.span(1) for m in re.finditer(self.assistant, text, re.DOTALL)]


CHATML = r"<\|im_start\|>assistant\n(.*?<\|im_end\|>)"
LLAMA = r"<\|start_header_id\|>assistant<\|end_header_id\|>\n\n(.*?<\|eot_id\|>)"
MISTRAL = r"\[/(?:INST|TOOL_RESULTS)\]((?:(?!\[/?(?:INST|TOOL_RESULTS|AVAILABLE_TOOLS)\]).)*?</s>)"

CASES = [
    Case("qwen2.5 (fixture)", "fixture", "qwen2_5_instruct.jinja",
         {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, QWEN_TOKENS, CHATML),
    Case("llama3.1 (fixture)", "fixture", "llama3_1_instruct.jinja",
         {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<pad>"}, LLAMA_TOKENS, LLAMA),
    Case("mistral v0.3 (fixture)", "fixture", "mistral_v0_3_instruct.jinja",
         {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}, MISTRAL_TOKENS, MISTRAL),
    Case("qwen3", "trl", "qwen3.jinja", {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
         [*QWEN_TOKENS, "<think>", "</think>"], CHATML),
    Case("qwen3-instruct-2507", "trl", "qwen3_instruct_2507.jinja",
         {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}, QWEN_TOKENS, CHATML),
    Case("llama3.2", "trl", "llama3_2.jinja",
         {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<pad>"}, LLAMA_TOKENS, LLAMA),
    Case("deepseek-v3", "trl", "deepseekv3.jinja",
         {"bos_token": "<｜begin▁of▁sentence｜>", "eos_token": "<｜end▁of▁sentence｜>", "pad_token": "<pad>"},
         DEEPSEEK_TOKENS, r"(?:<｜Assistant｜>|<｜tool▁outputs▁end｜>)(.*?<｜end▁of▁sentence｜>)"),
    Case("lfm2", "trl", "lfm2_v2.jinja",
         {"bos_token": "<|startoftext|>", "eos_token": "<|im_end|>", "pad_token": "<|pad|>"}, LFM_TOKENS, CHATML),
    # Gemma's eos is <eos>, its turns end with <end_of_turn>: the end of turn is found by closing the turn.
    Case("gemma3", "trl", "gemma3.jinja", {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"},
         ["<start_of_turn>", "<end_of_turn>"], r"<start_of_turn>model\n(.*?<end_of_turn>)", tools=False),
    # Phi-3.5 ends a conversation (not a turn) with eos: it closes the last answer.
    Case("phi3.5", "trl", "phi3_5.jinja", {"eos_token": "<|endoftext|>", "pad_token": "<pad>"},
         ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
         r"<\|assistant\|>\n(.*?<\|end\|>(?:\n<\|endoftext\|>$)?)", tools=False),
]


def template_text(case: Case) -> str:
    return case.path().read_text()
