"""The loss mask of one trajectory, as a training run would see it (no torch here).

The record is written as a one-line JSONL file and ``python -m training preview
--json`` renders it with the base model's tokenizer and chat template in a
subprocess (the app never imports torch), with the SFT settings of ``[train]``:
the same code, weights and template the run started by ``T`` uses.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curator.settings import TrainSettings
from store import CuratorError
from store.formats.jsonl import record_line

#: Seconds a preview may take: loading a large tokenizer from disk is the slow part.
TIMEOUT = 300


class PreviewError(CuratorError):
    """The preview could not be made, in the training process's own one line."""


@dataclass(frozen=True)
class Preview:
    """Every token of the rendered trajectory with its loss weight (0 masked, 1 trained, more: a PKT key token)."""

    id: str
    tokens: list[tuple[str, float]]
    refused: str | None
    truncated: bool

    def count(self, test: Any) -> int:
        return sum(1 for _, weight in self.tokens if test(weight))

    def summary(self) -> str:
        if self.refused:
            return f"refused, not trained: {self.refused}"
        line = (f"{len(self.tokens):,} tokens: {self.count(lambda w: w > 0):,} trained, "
                f"{self.count(lambda w: w > 1):,} of them key tokens (PKT), the rest masked or prompt")
        return line + (" · truncated at max_length" if self.truncated else "")


def preview(record: dict[str, Any], settings: TrainSettings, timeout: float = TIMEOUT) -> Preview:
    """The preview of ``record`` (``Store.record``) under ``settings``' SFT configuration."""
    with tempfile.TemporaryDirectory(prefix="curator-preview-") as folder:
        data = Path(folder) / "trajectory.jsonl"
        data.write_text(record_line(record), encoding="utf-8")
        argv = [sys.executable, "-m", "training", "preview", "--data", str(data), "--json",
                *TrainSettings("sft", settings.overrides).argv()]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise PreviewError(f"the preview took longer than {timeout:.0f} s") from None
        except OSError as exc:
            raise PreviewError(f"could not start {argv[0]}: {exc}") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        said = next((line for line in lines if line.startswith("error: ")), lines[-1] if lines else "")
        raise PreviewError(said.removeprefix("error: ") or f"python -m training preview exited {done.returncode}")
    try:  # the last line; str.splitlines would also split at a NEL or U+2028 inside a token's text
        shown = json.loads(done.stdout.rstrip("\n").rpartition("\n")[2])
    except ValueError:
        raise PreviewError("python -m training preview printed no JSON line") from None
    return Preview(shown["id"], [(text, float(weight)) for text, weight in shown["tokens"]], shown["refused"],
                   bool(shown["truncated"]))
