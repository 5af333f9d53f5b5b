"""Single-step tool-call evaluation (RoTBench's TS / PI / CF) of a local model or an OpenAI-compatible endpoint.

Gold items come from the store's gold calls (simulated, or imported from a
benchmark: ToolAlpaca golden answers, xLAM answers, BFCL possible answers), or
from a JSONL file of gold items (``{"id", "tools", "messages", "calls"}``) or of
trajectories, whose trainable call steps become items. Every prediction is
judged by ``store.toolcalls.judge``, the same judge as the executor and the
GRPO reward. Rates are given over all items and per source (the benchmark an
item came from), since a score over a mix of benchmarks says little alone.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from store.toolcalls import CallParseError, ToolCall, judge, parse_call, parse_openai_call
from training.config import EvalConfig
from training.data import DB_SUFFIXES, iter_steps, load_records
from training.errors import TrainingError
from training.templates import Generation, parse_generation

PREDICTIONS_FILE = "predictions.jsonl"
METRICS = ("ts", "pi", "cf", "parse_error", "tool_hallucination", "param_hallucination", "no_call", "reward")


#: The source of items made from a file's trajectories rather than from gold calls.
TRAJECTORY_STEPS = "trajectory steps"


@dataclass
class Item:
    id: str
    tools: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    calls: list[ToolCall]
    source: str = TRAJECTORY_STEPS


def gold_items(data: str | None, db: str | None) -> list[Item]:
    """The evaluation items: store gold calls, a gold JSONL, or the call steps of trajectories."""
    store_path = data if data and Path(data).suffix in DB_SUFFIXES else (db if not data else None)
    if store_path:
        items = _store_gold(store_path)
        if items:
            return items
    return list(_items_from_rows(load_records(data, db)))


def _store_gold(path: str) -> list[Item]:
    from store import Store, StoreError

    if not Path(path).exists():
        raise TrainingError(f"store not found: {path}")
    try:
        with Store.open(path, create=False) as store:
            return [Item(g.id, g.tools, g.messages, list(g.calls), g.source) for g in store.gold_items()]
    except StoreError as exc:
        raise TrainingError(str(exc)) from None


def _items_from_rows(rows: Iterable[Mapping[str, Any]]) -> Iterable[Item]:
    for row in rows:
        if "calls" in row:
            calls = [parse_call(c["name"], c.get("arguments")) for c in row["calls"]]
            yield Item(str(row.get("id", "")), row.get("tools") or [], row["messages"], calls,
                       str(row.get("source") or "gold file"))
            continue
        if (row.get("meta") or {}).get("decision") in {"reject", "skip"}:
            continue
        for n, (context, message) in enumerate(iter_steps(row)):
            try:
                calls = [parse_openai_call(c) for c in message["tool_calls"][:1]]
            except CallParseError:
                continue
            yield Item(f"{row.get('id', '')}:{n}", row.get("tools") or [], context, calls)


class LocalModel:
    """Greedy generation with a local model through its own chat template."""

    def __init__(self, config: EvalConfig):
        import torch

        from training import models
        from training.data import Renderer

        torch.manual_seed(config.seed)
        self.model, self.tokenizer = models.load(config.model, config.tiny, chat_template=config.chat_template)
        self.device, _ = models.device_and_dtype()
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        self.renderer = Renderer.of(self.tokenizer)
        self.config = config

    def predict(self, items: Sequence[Item]) -> list[Generation]:
        import torch

        out: list[Generation] = []
        for start in range(0, len(items), self.config.batch_size):
            batch = items[start : start + self.config.batch_size]
            prompts = [self.renderer.prompt(item.messages, item.tools) for item in batch]
            enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            with torch.no_grad():
                generated = self.model.generate(
                    **enc,
                    max_new_tokens=self.config.max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                    eos_token_id=self.tokenizer.eos_token_id,
                )
            for row in generated[:, enc["input_ids"].shape[1] :]:
                out.append(parse_generation(self.tokenizer.decode(row, skip_special_tokens=False)))
        return out


class EndpointModel:
    """Any OpenAI-compatible chat endpoint, with the tools passed as tools."""

    def __init__(self, config: EvalConfig):
        from openai import OpenAI

        self.client = OpenAI(base_url=config.base_url, api_key=os.environ.get(config.api_key_env) or "EMPTY")
        self.config = config

    def predict(self, items: Sequence[Item]) -> list[Generation]:
        return [self._one(item) for item in items]

    def _one(self, item: Item) -> Generation:
        from openai import OpenAIError

        try:
            response = self.client.chat.completions.create(
                model=self.config.model,
                messages=_openai_messages(item.messages),
                tools=item.tools or None,
                temperature=0,
                max_tokens=self.config.max_new_tokens,
            )
        except OpenAIError as exc:
            raise TrainingError(f"endpoint {self.config.base_url}: {exc}") from None
        message = response.choices[0].message
        if message.tool_calls:
            try:
                return Generation(message.content or "", [parse_openai_call(c.model_dump()) for c in message.tool_calls])
            except CallParseError as exc:
                return Generation(message.content or "", error=str(exc))
        return parse_generation(message.content or "")


def _openai_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Messages as the API takes them: no ``weight`` and no None values."""
    return [{k: v for k, v in m.items() if k != "weight" and v is not None} for m in messages]


def score(items: Sequence[Item], generations: Sequence[Generation]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Rates over the items, and one judged record per prediction.

    A call-shaped answer that cannot be read is a parse error; an answer with no
    call is ``no_call``; both count as wrong (reward of an unparseable call).
    Only the first predicted call is judged: the items are single-step.
    """
    records = []
    for item, gen in zip(items, generations):
        predicted: Any = gen.calls[0] if gen.calls else gen.content
        verdict = judge(predicted, item.calls, item.tools)
        codes = set(verdict.codes)
        row = {
            "ts": verdict.ts,
            "pi": verdict.pi,
            "cf": verdict.cf,
            "parse_error": gen.parse_error,
            "tool_hallucination": "tool_hallucination" in codes,
            "param_hallucination": "param_hallucination" in codes,
            "no_call": not gen.calls and not gen.parse_error,
            "reward": verdict.reward,
        }
        records.append(
            {
                "id": item.id,
                "source": item.source,
                "predicted": [{"name": c.name, "arguments": c.arguments} for c in gen.calls],
                "content": gen.content,
                "error": gen.error,
                "codes": list(verdict.codes),
                **row,
            }
        )
    return rates(records), records


def rates(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Each metric's mean over the judged ``records`` (``n``: how many)."""
    n = len(records)
    metrics: dict[str, float] = {key: (sum(float(r[key]) for r in records) / n if n else 0.0) for key in METRICS}
    metrics["n"] = n
    return metrics


def by_source(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """``rates`` per source, in the order the sources first appear."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault(record["source"], []).append(record)
    return {source: rates(group) for source, group in groups.items()}


def table(columns: Mapping[str, Mapping[str, float]], title: str) -> str:
    """The metrics as a small text table, one column per entry of ``columns`` (e.g. all items, then each source)."""
    labels = {
        "n": "items",
        "ts": "TS (tool)",
        "pi": "PI (tool + params)",
        "cf": "CF (tool + params + values)",
        "parse_error": "parse errors",
        "tool_hallucination": "tool hallucinations",
        "param_hallucination": "param hallucinations",
        "no_call": "no call",
        "reward": "mean reward",
    }
    width = max(len(v) for v in labels.values())
    cells = [max(9, len(name)) for name in columns]
    header = f"{'':<{width}}" + "".join(f"  {name:>{w}}" for name, w in zip(columns, cells))
    lines = [title, header, "-" * len(header)]
    for key, label in labels.items():
        row = f"{label:<{width}}"
        for metrics, w in zip(columns.values(), cells):
            value = metrics.get(key, 0)
            shown = f"{int(value)}" if key == "n" else (f"{value:+.3f}" if key == "reward" else f"{value:.1%}")
            row += f"  {shown:>{w}}"
        lines.append(row)
    return "\n".join(lines)


def items_of(config: EvalConfig) -> list[Item]:
    """The gold items ``config`` evaluates on (of its source, the first ``limit``); a ``TrainingError`` when none."""
    items = gold_items(config.data, config.db)
    if config.source:
        sources = sorted({item.source for item in items})
        items = [item for item in items if item.source == config.source]
        if not items:
            raise TrainingError(f"no gold items from source {config.source!r}; the sources here are: "
                                f"{', '.join(sources) or 'none'}")
    if config.limit:
        items = items[: config.limit]
    if not items:
        raise TrainingError("no gold items to evaluate on")
    return items


def evaluate(config: EvalConfig, recorder) -> dict[str, Any]:
    """Predict, judge, save the predictions, print the table; returns the run summary."""
    items = items_of(config)
    recorder.start({"source": config.data or config.db, "items": len(items)})
    model = EndpointModel(config) if config.base_url else LocalModel(config)
    metrics, records = score(items, model.predict(items))
    sources = by_source(records)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / PREDICTIONS_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    recorder.log(0, {k: v for k, v in metrics.items() if k != "n"})
    columns = {"all": metrics, **sources} if len(sources) > 1 else sources
    print(table(columns, f"{config.model} on {len(items)} gold calls, by source"))
    return {"status": "completed", "metrics": metrics, "by_source": sources, "output": str(output)}
