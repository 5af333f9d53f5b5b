"""Training benchmarks: run as ``python -m bench.train``.

(a) data preparation (render, tokenize, MAE masks and PKT weights) against
    plain ``tokenizer.apply_chat_template(..., tokenize=True)`` on the same
    trajectories of 5+ assistant messages; goal ≥ 0.5×.
(a') our exact, verified spans against TRL's own masked path
    (``apply_chat_template(..., return_dict=True, return_assistant_tokens_mask=True)``
    on TRL's ``qwen2_5_training.jinja``, the Qwen2.5 template with
    ``{% generation %}`` tags), same tokenizer and trajectories; goal ≥ 2×.
(b) one training step (forward, weighted loss, backward) against the same
    step with the model's built-in loss on the same batch; goal ≤ 1.10×.
Times are the best of several repeats, which is what a shared CPU allows.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from training.data import Encoder, Renderer, rendered_texts, template_messages, template_tools
from training.loss import weighted_ce
from training.sft import Collator
from training.templates import SPECIAL_TOKENS, TEMPLATES
from training.tiny import TinyConfig, build, build_tokenizer, byte_level_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from training_fixtures import records  # noqa: E402


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def data_prep(style: str, rows: list[dict[str, Any]], repeats: int) -> tuple[float, float]:
    renderer = Renderer(TEMPLATES[style], SPECIAL_TOKENS[style])
    tok = build_tokenizer(TinyConfig(template=style), rendered_texts(rows, renderer))
    plain = best_of(repeats, lambda: [tok.apply_chat_template(r["messages"], tools=r["tools"], tokenize=True)
                                      for r in rows])
    ours = best_of(repeats, lambda: Encoder(tok).encode_all(rows))  # a fresh encoder: nothing cached yet
    return len(rows) / plain, len(rows) / ours


QWEN_SPECIAL = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
QWEN_EXTRA = ["<|im_start|>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]


def trl_training_template() -> str:
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / "qwen2_5_training.jinja").read_text()


def masked_prep(rows: list[dict[str, Any]], repeats: int) -> tuple[float, float]:
    """Trajectories per second: TRL's generation-tag mask, and our verified spans (all exact, none refused)."""
    template = trl_training_template()
    tok = byte_level_tokenizer(template, QWEN_SPECIAL, QWEN_EXTRA, rendered_texts(rows, Renderer(template, QWEN_SPECIAL)))
    shaped = [(template_messages(r["messages"]), template_tools(r["tools"])) for r in rows]
    examples = [Encoder(tok).encode(r) for r in rows]
    assert not any(e.refused for e in examples), "the bench template must be trainable exactly"

    def trl() -> None:
        for messages, tools in shaped:
            tok.apply_chat_template(messages, tools=tools, tokenize=True, return_dict=True,
                                    return_assistant_tokens_mask=True)

    base, ours = [], []
    for _ in range(repeats):  # interleaved, so load spikes hit both alike
        base.append(best_of(1, trl))
        ours.append(best_of(1, lambda: Encoder(tok).encode_all(rows)))  # a fresh encoder: nothing cached yet
    return len(rows) / min(base), len(rows) / min(ours)


def step_time(rows: list[dict[str, Any]], repeats: int, batch_size: int) -> tuple[float, float]:
    model, tok = build(TinyConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2), None)
    batch = Collator(tok.pad_token_id)([Encoder(tok).encode(r) for r in rows[:batch_size]])

    def builtin() -> None:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        out.loss.backward()

    def weighted() -> None:
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        loss = weighted_ce(model, inputs, batch["labels"], batch["weights"])[0] / batch["weights"][:, 1:].sum()
        loss.backward()

    builtin(), weighted()  # warm up
    base, ours = [], []
    for _ in range(repeats):  # interleaved, so load spikes hit both alike
        base.append(best_of(1, builtin))
        ours.append(best_of(1, weighted))
    return min(base), min(ours)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__)
    p.add_argument("--trajectories", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    random.seed(0)
    rows = records(args.trajectories, extra_turns=2)
    assistants = min(sum(m["role"] == "assistant" for m in r["messages"]) for r in rows)
    results = []
    for style in TEMPLATES:
        plain, ours = data_prep(style, rows, args.repeats)
        results.append({"bench": f"(a) data prep, {style}", "baseline": f"{plain:,.0f} traj/s",
                        "ours": f"{ours:,.0f} traj/s", "ratio": ours / plain, "goal": ">= 0.50"})
    trl, exact = masked_prep(rows, args.repeats)
    results.append({"bench": "(a') exact spans vs TRL mask", "baseline": f"{trl:,.0f} traj/s",
                    "ours": f"{exact:,.0f} traj/s", "ratio": exact / trl, "goal": ">= 2.00"})
    base, ours = step_time(rows, args.repeats, args.batch_size)
    results.append({"bench": "(b) train step, weighted loss", "baseline": f"{base * 1e3:.1f} ms",
                    "ours": f"{ours * 1e3:.1f} ms", "ratio": ours / base, "goal": "<= 1.10"})
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{args.trajectories} trajectories, >= {assistants} assistant messages each; best of {args.repeats}; "
          f"{args.threads} thread(s)")
    print(f"{'bench':<32} {'baseline':>14} {'ours':>14} {'ratio':>7}  goal")
    for r in results:
        print(f"{r['bench']:<32} {r['baseline']:>14} {r['ours']:>14} {r['ratio']:>6.2f}x  {r['goal']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
