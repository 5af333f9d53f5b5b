"""``python -m training preview``: the tokens a training run sees, coloured by their loss weight.

Renders trajectories with the real tokenizer and chat template, exactly as SFT
encodes them (:class:`training.data.Encoder`), and prints every token: weight 0
dim, weight 1 bold green, PKT key tokens highlighted with their weight. Everything
shown came from data, so it is printed through ``rich.text.Text`` (never parsed
as markup) with control characters made visible. ``--json`` prints one object a
trajectory instead: ``{"id", "tokens": [[text, weight], …], "refused", "truncated"}``,
whose token texts concatenate to the render (its kept prefix when truncated).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Mapping

from store.text import by_weight, inert
from training.config import SFTConfig, command_parser, from_namespace
from training.data import Encoder, Example, load_records
from training.errors import TrainingError

EXIT_BAD_INPUT = 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    """SFT's options (the same fields and defaults: what is previewed is what SFT would train), and which to show."""
    command_parser("sft", p)
    p.add_argument("--id", action="append", help="only this trajectory (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object per trajectory")


def run(args: argparse.Namespace) -> int:
    """Print the preview; bad input is one ``error:`` line and exit status 2."""
    try:
        records, encoder = _prepare(from_namespace(SFTConfig, args), args.id)
        for record in records:
            example = encoder.encode(record)
            if args.json:
                print(json.dumps(as_json(example), ensure_ascii=False))
            else:
                show(record, example)
        return 0
    except TrainingError as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # the reader stopped (`| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _prepare(config: SFTConfig, ids: list[str] | None) -> tuple[list[dict[str, Any]], Encoder]:
    from training import models

    if not config.data:
        raise TrainingError("no dataset: pass --data FILE (a JSONL export or a curated SQLite file)")
    records = load_records(config.data)
    if ids:
        wanted = set(ids)
        records = [r for r in records if str(r.get("id")) in wanted]
        missing = wanted - {str(r.get("id")) for r in records}
        if missing:
            raise TrainingError(f"{config.data}: no trajectory {', '.join(sorted(missing))}")
    if not records:
        raise TrainingError(f"{config.data}: no trajectory to preview")
    tokenizer = models.load_tokenizer(config.base_model, config.tiny, records, config.chat_template)
    return records, Encoder(tokenizer, max_length=models.max_length(config), w_max=config.w_max, mae=config.mae)


def token_texts(example: Example) -> list[str]:
    """Each token's characters of the render; together exactly the render (its kept prefix when truncated).

    Characters no token's offsets cover go to the token before them, and tokens
    sharing characters (bytes of one character) give them to the first.
    """
    texts, cursor = [], 0
    for _, end in (example.offsets if example.offsets is not None else []):
        end = int(end)
        texts.append(example.text[cursor:end] if end > cursor else "")
        cursor = max(cursor, end)
    if texts and not example.truncated:
        texts[-1] += example.text[cursor:]
    return texts


def as_json(example: Example) -> dict[str, Any]:
    weights = [float(w) for w in example.weights]
    tokens = [[text, int(w) if w.is_integer() else round(w, 4)] for text, w in zip(token_texts(example), weights)]
    return {"id": example.id, "tokens": tokens, "refused": example.refused, "truncated": example.truncated}


def show(record: Mapping[str, Any], example: Example) -> None:
    """The coloured tokens of one trajectory, then its summary."""
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    console.print(inert(f"── {example.id} ", style="bold"))
    console.print(by_weight(zip(token_texts(example), (float(w) for w in example.weights))))
    for line in summary(record, example):
        console.print(inert(line))


def summary(record: Mapping[str, Any], example: Example) -> list[str]:
    """Trainable and masked tokens, the masked messages and why, key tokens, truncation or refusal."""
    if example.refused:
        return [f"refused: {example.refused}"]
    weights = example.weights
    masked_tokens = int(((example.labels != -100) & (weights == 0)).sum())
    lines = [f"tokens {len(weights)}: trainable {example.trainable}, masked {masked_tokens}, "
             f"key {int((weights > 1).sum())}" + (" (truncated)" if example.truncated else "")]
    tags = (record.get("meta") or {}).get("tags") or []
    for index, message in enumerate(record["messages"]):
        if message.get("role") == "assistant" and message.get("weight", 1) == 0:
            why = sorted({t.get("code", "?") for t in tags if isinstance(t, dict) and t.get("message") == index})
            lines.append(f"masked message {index}: weight 0" + (f" ({', '.join(why)})" if why else ""))
    return lines
