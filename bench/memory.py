"""Memory of one SFT step at a real vocabulary: run as ``python -m bench.memory``.

One forward + backward of a Qwen2-like model built offline (vocabulary 151,936, hidden
64, 2 layers: the output layer dominates, as at a real sequence length), batch 2 ×
1024 with a quarter of the tokens trained (MAE/PKT weights 1 and 9, the rest 0), with

* ``built-in``: the model's own causal-LM loss (``labels=``), every position's logits upcast;
* ``full logits``: the weighted loss as it was, ``weighted_ce_sum`` over the model's logits;
* ``chunked``: :func:`training.loss.weighted_ce`, what the trainer runs now.

Each variant runs in a fresh process; its memory is the peak resident set of the step
(``getrusage``) above the resident set once the model and batch are built. ``--dtype
bfloat16`` holds the weights in bf16 as a GPU run does (there the logits are bf16 and the
fp32 copy comes on top); the default float32 is how a CPU trains. Goal: chunked ≤ 1.0×
built-in in memory, and far below the full-logits loss.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

VARIANTS = ("built-in", "full logits", "chunked")
VOCABULARY = 151_936


def model_and_batch(args: argparse.Namespace):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from training.data import IGNORE

    config = Qwen2Config(vocab_size=VOCABULARY, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=args.length,
                         tie_word_embeddings=True)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(getattr(torch, args.dtype))
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCABULARY, (args.batch, args.length), generator=generator)
    mask = torch.ones_like(ids)
    mask[-1, -args.length // 10:] = 0  # the last row is a tenth shorter: padding
    # each 128-token turn ends in a trained reply of a quarter of it, its first tokens PKT key tokens
    position = torch.arange(args.length) % 128
    weights = ((position >= 128 * (1 - args.trainable)).float() * (1 + 8 * (position % 32 < 3).float()))
    weights = weights.expand(args.batch, -1) * mask
    labels = torch.where(weights > 0, ids, IGNORE)
    return model, {"input_ids": ids, "attention_mask": mask}, labels, weights


def step(variant: str, model, inputs, labels, weights) -> None:
    from training.loss import weighted_ce, weighted_ce_sum

    total = weights[:, 1:].sum()
    if variant == "built-in":
        loss = model(**inputs, labels=labels).loss
    elif variant == "full logits":
        loss = weighted_ce_sum(model(**inputs).logits, labels, weights) / total
    else:
        loss = weighted_ce(model, inputs, labels, weights)[0] / total
    loss.backward()
    model.zero_grad(set_to_none=True)


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One variant in this process: the step's peak memory above the loaded model, and its best time."""
    import torch

    torch.set_num_threads(args.threads)
    model, inputs, labels, weights = model_and_batch(args)
    loaded = resident_mb()
    start = time.perf_counter()
    step(args.child, model, inputs, labels, weights)
    times = [time.perf_counter() - start]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    for _ in range(args.repeats - 1):
        start = time.perf_counter()
        step(args.child, model, inputs, labels, weights)
        times.append(time.perf_counter() - start)
    return {"variant": args.child, "peak_mb": peak - loaded, "seconds": min(times)}


def run(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.memory", "--child", variant, "--dtype", args.dtype,
            "--batch", str(args.batch), "--length", str(args.length), "--trainable", str(args.trainable),
            "--repeats", str(args.repeats), "--threads", str(args.threads)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: dict[str, dict[str, Any]]) -> str:
    base, old = results["built-in"], results["full logits"]
    lines = [f"{'loss':<12} {'peak MB':>9} {'× built-in':>11} {'× full':>7} {'ms/step':>8} {'time × built-in':>16} "
             f"{'time × full':>12}"]
    for name, r in results.items():
        lines.append(f"{name:<12} {r['peak_mb']:>9.0f} {r['peak_mb'] / base['peak_mb']:>10.2f}× "
                     f"{r['peak_mb'] / old['peak_mb']:>6.2f}× {r['seconds'] * 1e3:>8.0f} "
                     f"{r['seconds'] / base['seconds']:>15.2f}× {r['seconds'] / old['seconds']:>11.2f}×")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--trainable", type=float, default=0.25, help="the share of each turn that trains")
    p.add_argument("--repeats", type=int, default=3, help="steps timed per variant (the best counts)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    results = {variant: run(variant, args) for variant in VARIANTS}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"one SFT step, vocabulary {VOCABULARY:,}, batch {args.batch} × {args.length}, "
          f"{args.trainable:.0%} of tokens trained, {args.dtype} weights, {args.threads} thread(s), CPU")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
