"""Several processes on the CPU: run as ``python -m bench.ddp``.

(a) ``python -m training sft`` on the tiny model, one process with batch 4 (the baseline) against two
    processes (``torchrun``, gloo) with batch 2 each: the same global batch, seed and data. The loss of each
    step for both, their largest difference, and the time ratio (two processes / one), of the whole run and
    of the steps after the first (the run minus start-up: imports, the tiny build, the process group).
(b) Encoding the examples once: every process encoding the records itself (the baseline) against the
    main process writing them for the others and each of those reading them back (``training.distributed``).
On a CPU the two processes share its cores, so (a) shows the equivalence and the overhead, not a speed-up.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from training import distributed, models
from training.config import TinyConfig
from training.data import Encoder
from training.recorder import METRICS_FILE

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from training_fixtures import records, write_jsonl  # noqa: E402


def run(command: list[str], output: Path) -> tuple[float, list[dict]]:
    """Wall seconds of ``command`` and the rows of its metrics log."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:6])} … failed:\n{done.stderr[-2000:]}")
    return seconds, [json.loads(line) for line in (output / METRICS_FILE).read_text().splitlines()]


def training(data: Path, work: Path, steps: int) -> dict:
    same = ["sft", "--data", str(data), "--max-steps", str(steps), "--lora-dropout", "0", "--threads", "1",
            "--save-steps", str(steps + 1)]
    one, two = work / "one", work / "two"
    wall_one, rows_one = run([sys.executable, "-m", "training", *same, "--batch-size", "4", "--output", str(one)], one)
    wall_two, rows_two = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                              "-m", "training", *same, "--batch-size", "2", "--output", str(two)], two)
    steady_one = rows_one[-1]["time"] - rows_one[0]["time"]
    steady_two = rows_two[-1]["time"] - rows_two[0]["time"]
    return {"losses": [(a["step"], a["loss"], b["loss"]) for a, b in zip(rows_one, rows_two, strict=True)],
            "max_difference": max(abs(a["loss"] - b["loss"]) for a, b in zip(rows_one, rows_two)),
            "wall": (wall_one, wall_two), "steps_after_first": (steady_one, steady_two)}


def encoding(n: int, work: Path, repeats: int) -> dict:
    rows = records(n, extra_turns=2)
    tokenizer = models.load_tokenizer("tiny", TinyConfig(), rows)
    path = work / distributed.ENCODED_FILE
    encode, write, read = [], [], []
    for _ in range(repeats):  # interleaved, so load spikes hit all alike
        start = time.perf_counter()
        kept, examples = Encoder(tokenizer, max_length=4096).encode_all(rows)
        encode.append(time.perf_counter() - start)
        start = time.perf_counter()
        distributed._write(path, list(range(len(kept))), examples)
        write.append(time.perf_counter() - start)
        start = time.perf_counter()
        distributed._read(path)
        read.append(time.perf_counter() - start)
    return {"records": n, "tokens": int(sum(len(e.input_ids) for e in examples)), "encode": min(encode),
            "write": min(write), "read": min(read), "file_mb": path.stat().st_size / 1e6}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ddp", description=__doc__)
    p.add_argument("--trajectories", type=int, default=16, help="records the training runs learn from")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--encode-records", type=int, default=2000, help="records (b) encodes")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = write_jsonl(work / "data.jsonl", records(args.trajectories))
        results = {"training": training(data, work, args.steps),
                   "encoding": encoding(args.encode_records, work, args.repeats)}
    if args.json:
        print(json.dumps(results))
        return 0
    t, e = results["training"], results["encoding"]
    print(f"(a) sft on the tiny model, {args.trajectories} trajectories, {args.steps} steps, global batch 4")
    print(f"{'step':>4} {'1 process x 4':>14} {'2 processes x 2':>16} {'difference':>11}")
    for step, a, b in t["losses"]:
        print(f"{step:>4} {a:>14.6f} {b:>16.6f} {abs(a - b):>11.2e}")
    print(f"max difference {t['max_difference']:.2e}")
    print(f"{'time':<26} {'1 process':>10} {'2 processes':>12} {'ratio':>7}")
    for name, (a, b) in (("whole run (s)", t["wall"]), ("steps after the first (s)", t["steps_after_first"])):
        print(f"{name:<26} {a:>10.2f} {b:>12.2f} {b / a:>6.2f}x")
    print(f"\n(b) encoding {e['records']} records ({e['tokens']:,} tokens) once; best of {args.repeats}")
    print(f"{'each process encodes (baseline)':<40} {e['encode']:>7.3f} s")
    print(f"{'main writes them':<40} {e['write']:>7.3f} s  ({e['file_mb']:.1f} MB)")
    print(f"{'each other process reads them':<40} {e['read']:>7.3f} s  {e['read'] / e['encode']:.3f}x the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
