"""A dataset folder ready for the Hugging Face Hub: ``data/train.jsonl`` plus a dataset card (``README.md``).

``datasets.load_dataset(FOLDER)`` reads it as it is (the card's ``configs`` names
the file), and ``huggingface-cli upload`` publishes it. The data is the default
JSONL export (weights, corrections, notes; ``tools`` and ``meta`` as JSON text);
the card holds what a reader of the dataset needs to trust it: counts, toolsets,
the error codes found and how many of them train at weight 0, and how the data was
made. JSONL rather than Parquet: it needs no library beyond the standard one and
the Hub's viewer reads it.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..db import Store
from ..errors import CuratorError
from ..taxonomy import BY_CODE, CODES
from .files import atomic_output, write_lines
from .jsonl import record_line
from .summary import ExportSummary

DATA_FILE = "data/train.jsonl"
CARD_FILE = "README.md"


@dataclass
class CardCounts:
    """What the card reports, counted while the data streams out."""

    toolsets: Counter[str] = field(default_factory=Counter)
    origins: Counter[tuple[str, str]] = field(default_factory=Counter)
    tagged: Counter[str] = field(default_factory=Counter)
    masked: Counter[str] = field(default_factory=Counter)
    assistant_messages: int = 0
    weight_zero: int = 0

    def add(self, record: dict[str, Any]) -> None:
        meta = record["meta"]
        if meta.get("derived_from"):
            return
        self.toolsets[meta.get("toolset") or "(none)"] += 1
        self.origins[(meta.get("source") or "", meta.get("model") or "")] += 1
        weights = {i: m.get("weight") for i, m in enumerate(record["messages"]) if m["role"] == "assistant"}
        self.assistant_messages += len(weights)
        self.weight_zero += sum(w == 0 for w in weights.values())
        for tag in meta.get("tags") or ():
            self.tagged[tag["code"]] += 1
            if weights.get(tag["message"]) == 0:
                self.masked[tag["code"]] += 1


def export_hub(store: Store, out: str | os.PathLike[str], status: str = "accepted") -> ExportSummary:
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise CuratorError(f"{folder}: is a file; the hub format writes a folder (data/ and README.md)")
    try:
        (folder / "data").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CuratorError(f"{folder}: cannot create the folder: {exc.strerror or exc}") from None
    summary, counts = ExportSummary(), CardCounts()
    encoded_tools: dict[int, tuple[list[Any], str]] = {}

    def lines() -> Iterator[str]:
        for record in store.iter_records(status):
            summary.count(record)
            counts.add(record)
            yield record_line(record, encoded_tools)

    write_lines(folder / DATA_FILE, lines())
    with atomic_output(folder / CARD_FILE) as temp:
        temp.write_text(dataset_card(folder.name, status, summary, counts), encoding="utf-8")
    return summary


def dataset_card(name: str, status: str, summary: ExportSummary, counts: CardCounts) -> str:
    """The card: YAML front matter the Hub and ``datasets`` read, then tables for people."""
    lines = [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        f"    path: {DATA_FILE}",
        "task_categories:",
        "- text-generation",
        "tags:",
        "- tool-use",
        "- function-calling",
        "- curator",
        "---",
        "",
        f"# {name}",
        "",
        f"Tool-use conversations curated with curator: {summary.trajectories} trajectories ({status} in review)"
        + (f" and {summary.examples} correction examples" if summary.examples else "") + ".",
        "",
        "## Format",
        "",
        f"`{DATA_FILE}`, one example a line: `id`, `messages` (OpenAI chat messages; every assistant message "
        "carries `weight`: 1 trains, 0 is context only), `tools` (the OpenAI function tools, as JSON text) and "
        "`meta` (JSON text: toolset, source, model, review decision, error tags, corrections, notes). `tools` and "
        "`meta` are text so every line has the same schema whatever it carries; decode them with `json.loads`. "
        "A line whose `meta` has `derived_from` is a correction example: the conversation up to a call an "
        "annotator fixed, then the fix at weight 1.",
        "",
        f"Assistant messages: {counts.assistant_messages}, of which {counts.weight_zero} at weight 0.",
        "",
        "## Toolsets",
        "",
        "| toolset | trajectories |",
        "|---|---:|",
        *(f"| {_cell(t)} | {n} |" for t, n in counts.toolsets.most_common()),
        "",
        "## Error codes",
        "",
        "Tags on messages, from the automatic flagger (tool feedback and schema checks) and from annotators "
        "(a human tag or un-tag overrides the flagger). \"at weight 0\" counts the tagged messages that do not "
        "train.",
        "",
        "| code | meaning | masks by default | tagged | at weight 0 |",
        "|---|---|---|---:|---:|",
        *(f"| `{c.code}` | {c.meaning} | {'yes' if c.masks_by_default else 'no'} | {counts.tagged[c.code]} | "
          f"{counts.masked[c.code]} |" for c in CODES if counts.tagged[c.code]),
        *(f"| `{_cell(code)}` | (not a curator code) | | {n} | {counts.masked[code]} |"
          for code, n in counts.tagged.items() if code not in BY_CODE),
        "",
        "## How it was made",
        "",
        "| source | model | trajectories |",
        "|---|---|---:|",
        *(f"| {_cell(s)} | {_cell(m)} | {n} |" for (s, m), n in counts.origins.most_common()),
        "",
        "Simulated trajectories come from curator's multi-agent simulation (a user agent, the assistant and a "
        "tool executor); imported ones from the file named in their toolset's source. "
        + ("Every trajectory here was accepted by an annotator." if status == "accepted"
           else f"Review filter of this export: {status}."),
        "",
    ]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text as one Markdown table cell (no column breaks, no line breaks)."""
    return text.replace("|", "\\|").replace("\n", " ")
