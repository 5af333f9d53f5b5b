"""iTool's loop, measured: ``python -m bench.itool [--seeds 0,1,2] [--loops tree,flat,tree+sft] [--smoke]``.

For each seed: the demo store (``bench.demo.demo_store``: a scripted simulation of the ``weather`` toolset
and held-out gold items whose requests the simulation never makes), every complete trajectory accepted,
exported sorted by content (``bench.ablation.export``: the store's order varies from run to run, and with
it every model), on the demo base (a tiny model pretrained once on the other demo toolsets). Two jobs:

- the loop, ``python -m training itool`` with the demo's SFT recipe as its warm-up (easy → medium → hard)
  and ``rounds`` rounds, once per kind of loop (``--loops``: its arms are named after it; the warm-up, the
  same in each, is reported once): ``tree``, the step-wise tree search (``search_iterations`` expansions of
  ``samples`` completions at each step); ``flat``, one level of as many samples (the same number of
  completions, every one a leaf after the prefix: the search before the tree); ``tree+sft``, the tree with
  the chosen side's NLL added to DPO's loss (``--dpo-sft-weight``, RPO); the loop scores the warm-up and
  each round on the gold items itself;
- mixed-order SFT: the same SFT with ``--no-curriculum`` (the trainer's shuffled order), then
  ``python -m training eval`` on the same items.

Everything is seeded (the seed fixes the simulation, the initial data order, the sampling of the buffer and
of the alternatives), so two runs of the benchmark give the same numbers on the same machine. The report,
``bench/itool.md``, is written again by each full run; whatever follows its ``## Reading`` heading is kept.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.ablation import export  # noqa: E402
from bench.demo import build_base, demo_store, review  # noqa: E402
from store import Store  # noqa: E402
from training.config import DEMO_TRAIN  # noqa: E402

REPORT = Path(__file__).with_name("itool.md")
READING = "## Reading"


@dataclass(frozen=True)
class Setup:
    """Everything the benchmark is told; the report prints it."""

    seeds: tuple[int, ...] = (0, 1, 2)
    trajectories: int = 48
    gold: int = 60
    rounds: int = 3
    warmup_steps: int = DEMO_TRAIN["max_steps"]
    batch_size: int = DEMO_TRAIN["batch_size"]
    learning_rate: float = DEMO_TRAIN["learning_rate"]
    buffer_size: int = 24
    samples: int = 4
    search_iterations: int = 4
    step_depth: int = 6
    temperature: float = 1.0
    rejected: str = "worst"
    sft_weight: float = 1.0
    loops: tuple[str, ...] = ("tree", "flat")
    dpo_beta: float = 0.1
    dpo_epochs: float = 2.0
    dpo_learning_rate: float = 5e-4
    jobs: int = 2
    threads: int = 1


FULL = Setup()
WARMUP = "warm-up SFT (easy → hard)"
SMOKE = replace(FULL, seeds=(0,), trajectories=8, gold=4, rounds=1, warmup_steps=4, buffer_size=2, samples=2,
                search_iterations=2)


def loop_options(setup: Setup, kind: str) -> list[str]:
    """The options of a kind of loop: the tree, one level of as many completions, the tree with RPO's NLL."""
    tree = ["--samples", str(setup.samples), "--search-iterations", str(setup.search_iterations),
            "--step-depth", str(setup.step_depth)]
    kinds = {"tree": tree, "tree+sft": [*tree, "--dpo-sft-weight", str(setup.sft_weight)],
             "flat": ["--samples", str(setup.samples * setup.search_iterations), "--search-iterations", "1",
                      "--step-depth", "1"]}
    if kind not in kinds:
        raise SystemExit(f"unknown loop {kind!r}: one of {', '.join(kinds)}")
    return kinds[kind]


@dataclass(frozen=True)
class Column:
    key: str
    title: str


#: Shares of the gold items (judged by ``store.toolcalls.judge``): TS / PI / CF higher is better, the rest
#: are error rates (lower is better).
COLUMNS = (Column("ts", "TS"), Column("pi", "PI"), Column("cf", "CF"), Column("wrong_tool", "wrong tool"),
           Column("tool_hallucination", "halluc. tool"), Column("param_hallucination", "halluc. param"),
           Column("param_missing", "missing param"), Column("param_redundant", "redundant param"),
           Column("content_error", "wrong value"), Column("parse_error", "parse error"), Column("no_call", "no call"))


def rates(predictions: Path) -> dict[str, float]:
    """The columns' rates (percent) over one evaluation's ``predictions.jsonl``."""
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    out = {}
    for column in COLUMNS:
        if column.key in ("ts", "pi", "cf", "parse_error", "no_call"):
            hits = sum(bool(r[column.key]) for r in rows)
        else:
            hits = sum(column.key in r["codes"] for r in rows)
        out[column.key] = 100.0 * hits / len(rows)
    return out


# -- one seed ------------------------------------------------------------------------------------------
def prepare(work: Path, seed: int, setup: Setup) -> tuple[Path, Path]:
    """The seed's demo store (complete trajectories accepted) and its sorted JSONL export."""
    db = work / f"demo-{seed}.db"
    demo_store(db, seed, setup.trajectories)
    review(db, "all complete")
    data = work / f"demo-{seed}.jsonl"
    export(db, data)
    return db, data


def sft_options(setup: Setup, seed: int) -> list[str]:
    return ["--base-model", "demo", "--full-finetune", "--max-steps", str(setup.warmup_steps),
            "--batch-size", str(setup.batch_size), "--lr", str(setup.learning_rate), "--seed", str(seed),
            "--threads", str(setup.threads)]


def training(*argv: str) -> float:
    """Run ``python -m training …``; its wall time."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "training", *argv], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"python -m training {argv[0]} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def loop_description(setup: Setup, kind: str) -> str:
    tree = (f"the step-wise tree search (`training/search.py`): the approved call's steps in the tree, then "
            f"{setup.search_iterations} iterations each expanding the node of highest UCT with {setup.samples} "
            f"completions, a turn cut into at most {setup.step_depth} steps, a pair at each fork")
    return {"tree": tree,
            "flat": f"one level of {setup.samples * setup.search_iterations} completions (as many as the tree's), "
                    f"the approved call over one of them",
            "tree+sft": f"{tree}, and the chosen side's NLL added to DPO's loss, weight {setup.sft_weight} "
                        f"(RPO, TRL's `loss_type` `sft`)"}[kind]


def run_loop(work: Path, db: Path, data: Path, seed: int, setup: Setup, kind: str) -> dict[str, Any]:
    """The loop of ``kind``: per part (warm-up, round 1 …) the gold rates, and per round what its search made."""
    out = work / f"loop-{seed}-{kind}"
    seconds = training("itool", "--data", str(data), "--db", str(db), "--gold", str(db), "--output", str(out),
                       *sft_options(setup, seed), "--iterations", str(setup.rounds),
                       "--buffer-size", str(setup.buffer_size), *loop_options(setup, kind),
                       "--temperature", str(setup.temperature), "--rejected", setup.rejected,
                       "--dpo-beta", str(setup.dpo_beta),
                       "--dpo-epochs", str(setup.dpo_epochs), "--dpo-learning-rate", str(setup.dpo_learning_rate),
                       "--eval-limit", str(setup.gold), "--no-score-pending")
    return {**loop_results(db, out, seed, setup, kind), "seconds": seconds}


def loop_results(db: Path, out: Path, seed: int, setup: Setup, kind: str) -> dict[str, Any]:
    """What the loop that wrote to ``out`` recorded in ``db`` and beside its parts."""
    with Store.open(db) as store:
        [loop] = [r for r in store.runs() if r.algorithm == "itool"
                   and Path(r.output_dir).resolve() == out.resolve()]
        parts = sorted((r for r in store.runs() if r.parent_id == loop.id), key=lambda r: r.created_at)
        searched = [search_summary(store, part) for part in parts[1:]]
    names = [WARMUP, *(f"+ round {n} ({kind})" for n in range(1, setup.rounds + 1))]
    arms = {name: rates(Path(part.output_dir) / "predictions.jsonl") for name, part in zip(names, parts)}
    if kind != setup.loops[0]:
        del arms[WARMUP]
    return {"seed": seed, "loop": kind, "arms": arms, "rounds": searched}


def search_summary(store: Store, part) -> dict[str, Any]:
    """What a round's run recorded of its buffer, search and DPO."""
    def last(key: str) -> float | None:
        values = store.run_metrics(part.id, key)
        return values[-1][1] if values else None

    kinds = {k[len("pairs_"):]: last(k) for (k,) in store.conn.execute(
        "SELECT DISTINCT key FROM run_metrics WHERE run_id = ? AND key LIKE 'pairs\\_%' ESCAPE '\\'", (part.id,))}
    margins = [v for _, v in store.run_metrics(part.id, "rewards/margins")]
    return {"ppl": {s: last(f"ppl_{s}") for s in ("easy", "medium", "hard")}, "buffer_ppl": last("buffer_ppl"),
            "pairs": last("pairs"), "below_root": last("below_root_pairs"), "nodes": last("tree_nodes"),
            "solved": last("steps_solved"), "kinds": kinds,
            "trained": part.dataset.get("pairs"), "loss": [v for _, v in store.run_metrics(part.id, "loss")],
            "margin_last": margins[-1] if margins else None}


def run_mixed(work: Path, db: Path, data: Path, seed: int, setup: Setup) -> dict[str, Any]:
    """Mixed-order SFT (the same recipe, no curriculum), scored on the same gold items."""
    out, scored = work / f"mixed-{seed}", work / f"mixed-{seed}-eval"
    seconds = training("sft", "--data", str(data), "--db", str(db), "--output", str(out), "--no-curriculum",
                       *sft_options(setup, seed))
    seconds += training("eval", "--model", str(out), "--data", str(db), "--output", str(scored),
                        "--limit", str(setup.gold), "--threads", str(setup.threads))
    return {"seed": seed, "arms": {"mixed-order SFT": rates(scored / "predictions.jsonl")}, "seconds": seconds}


# -- the report ----------------------------------------------------------------------------------------
def mean_std(values: Sequence[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.1f} ± {sd:.1f}"


def signed(values: Sequence[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):+.1f} ± {sd:.1f}"


def arm_rows(loops: Sequence[Mapping[str, Any]], mixed: Sequence[Mapping[str, Any]]) -> dict[str, list[dict]]:
    """Each arm's rates, one entry per seed (in seed order)."""
    arms: dict[str, list[dict]] = {}
    for result in sorted([*loops, *mixed], key=lambda r: r["seed"]):
        for name, values in result["arms"].items():
            arms.setdefault(name, []).append(values)
    order = [*dict.fromkeys(name for loop in loops for name in loop["arms"]), "mixed-order SFT"]
    return {name: arms[name] for name in order if name in arms}


def results_table(arms: Mapping[str, list[dict]]) -> str:
    lines = ["| arm | " + " | ".join(c.title for c in COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for name, rows in arms.items():
        lines.append(f"| {name} | " + " | ".join(mean_std([r[c.key] for r in rows]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def delta_table(arms: Mapping[str, list[dict]], base: str) -> str:
    lines = [f"| arm − {base} | " + " | ".join(c.title for c in COLUMNS) + " | TS by seed |",
             "|---|" + "---:|" * (len(COLUMNS) + 1)]
    for name, rows in arms.items():
        if name == base:
            continue
        deltas = {c.key: [r[c.key] - b[c.key] for r, b in zip(rows, arms[base])] for c in COLUMNS}
        by_seed = ", ".join(f"{d:+.1f}" for d in deltas["ts"])
        lines.append(f"| {name} | " + " | ".join(signed(deltas[c.key]) for c in COLUMNS) + f" | {by_seed} |")
    return "\n".join(lines)


def rounds_table(loops: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| loop | round | perplexity easy / medium / hard (all steps) | buffer perplexity "
             "| steps every sample solved | steps in a tree | pairs made | of them below the root "
             "| pairs by the rejected step's error | pairs trained | DPO loss first → last "
             "| reward margin (last step) |", "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for kind, number in [(kind, n) for kind in dict.fromkeys(loop["loop"] for loop in loops)
                         for n in range(len(loops[0]["rounds"]))]:
        rounds = [loop["rounds"][number] for loop in loops if loop["loop"] == kind]
        ppl = " / ".join(mean_std([r["ppl"][s] for r in rounds]) for s in ("easy", "medium", "hard"))
        kinds: Counter = Counter()
        for r in rounds:
            kinds.update({k: v for k, v in r["kinds"].items() if v})
        kind_text = ", ".join(f"{k} {v / len(rounds):.1f}" for k, v in kinds.most_common())
        losses = [r["loss"] for r in rounds if r["loss"]]
        loss = f"{statistics.fmean(x[0] for x in losses):.3f} → {statistics.fmean(x[-1] for x in losses):.3f}" \
            if losses else "–"
        margin = [r["margin_last"] for r in rounds if r["margin_last"] is not None]
        lines.append(f"| {kind} | {number + 1} | {ppl} | {mean_std([r['buffer_ppl'] for r in rounds])} | "
                     f"{mean_std([r['solved'] for r in rounds])} | {mean_std([r['nodes'] or 0 for r in rounds])} | "
                     f"{mean_std([r['pairs'] for r in rounds])} | {mean_std([r['below_root'] or 0 for r in rounds])} | "
                     f"{kind_text} | {mean_std([r['trained'] or 0 for r in rounds])} | {loss} | "
                     f"{mean_std(margin) if margin else '–'} |")
    return "\n".join(lines)


def report(setup: Setup, loops: Sequence[Mapping[str, Any]], mixed: Sequence[Mapping[str, Any]],
           stats: Mapping[str, Any], wall: float, base_build: float | None) -> str:
    arms = arm_rows(loops, mixed)
    names = list(arms)
    previous = REPORT.read_text() if REPORT.exists() else ""
    reading = previous[previous.index(READING):] if READING in previous else f"{READING}\n\n(to be written)\n"
    loop_s = [r["seconds"] for r in loops]
    mixed_s = [r["seconds"] for r in mixed]
    kinds = "; ".join(f"`{kind}`, {loop_description(setup, kind)}" for kind in setup.loops)
    built = "cached" if base_build is None else f"{base_build:.0f} s (once)"
    return f"""# iTool's loop on the demo (warm-up vs rounds, easy-to-hard vs mixed order)

Generated by `python -m bench.itool` (bench/itool.py). All numbers are percentages of the {setup.gold} held-out
gold items, mean ± sample std over seeds {", ".join(map(str, setup.seeds))}. TS, PI, CF: higher is better;
every other column is an error rate (lower is better).

## Results

{results_table(arms)}

Paired by seed, each arm minus the warm-up (the loop's rounds continue from it; mixed-order SFT is the same
SFT in a shuffled order), in percentage points:

{delta_table(arms, names[0])}

## What each round did

{rounds_table(loops)}

## Time

Whole benchmark: {wall / 60:.1f} min wall ({setup.jobs} jobs at a time, {setup.threads} torch thread each; the
demo base: {built}). Loop (warm-up, {setup.rounds} rounds, {setup.rounds + 1} evaluations):
{statistics.fmean(loop_s):.0f} s per seed and loop; mixed-order SFT and its evaluation: {statistics.fmean(mixed_s):.0f} s.

## Setup

- Data: per seed, the demo store (`bench.demo.demo_store`): {setup.trajectories} scripted `weather`
  trajectories (planted mistakes followed by recoveries, flagged and masked by MAE), every complete one
  accepted ({stats['accepted']}), {stats['steps']} approved call steps on average; exported sorted by content.
- Held-out: {setup.gold} gold items of the same toolset whose requests the simulation never makes.
- Base: the demo base (`--base-model demo`), a tiny model pretrained on the other demo toolsets.
- Warm-up: the demo's SFT recipe, every weight: {setup.warmup_steps} steps × batch {setup.batch_size},
  lr {setup.learning_rate}; easy → medium → hard (`--curriculum`) in the loop, shuffled (`--no-curriculum`)
  for mixed-order SFT; same seed, data and steps.
- Rounds: {setup.rounds}; each scores every approved step with the policy's perplexity, samples
  {setup.buffer_size} in proportion to it and searches at each (temperature {setup.temperature}):
  {kinds}. The wrong side by `--rejected {setup.rejected}`; DPO (LoRA r 16 over the latest merged policy,
  its reference) on the round's own pairs (`--train-pairs round`), β {setup.dpo_beta}, {setup.dpo_epochs}
  epochs, lr {setup.dpo_learning_rate}, batch {setup.batch_size}.
- Evaluation: greedy, 96 new tokens; TS / PI / CF and error kinds from `store.toolcalls.judge`.
- Configuration: `{json.dumps(asdict(setup))}`

{reading}"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.itool", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", help="comma-separated seeds (default: 0,1,2)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only checks the pipeline")
    parser.add_argument("--loops", help="comma-separated kinds of loop: tree, flat, tree+sft (default: tree,flat)")
    parser.add_argument("--rejected", help="the rule of picking the rejected side (default: worst)")
    parser.add_argument("--keep", help="a directory to keep the stores and models in (default: a temporary one)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="change one field of the setup (dpo_learning_rate=1e-4); the report is not written")
    args = parser.parse_args(argv)
    setup = changed(SMOKE if args.smoke else FULL, args.set)
    if args.seeds:
        setup = replace(setup, seeds=tuple(int(s) for s in args.seeds.split(",")))
    if args.loops:
        setup = replace(setup, loops=tuple(args.loops.split(",")))
    if args.rejected:
        setup = replace(setup, rejected=args.rejected)
    started = time.perf_counter()
    base_build = build_base()
    with tempfile.TemporaryDirectory(prefix="bench-itool-") as temporary:
        work = Path(args.keep or temporary)
        work.mkdir(parents=True, exist_ok=True)
        prepared = {seed: prepare(work, seed, setup) for seed in setup.seeds}
        stats = data_stats(prepared.values())
        with ThreadPoolExecutor(max_workers=setup.jobs) as pool:
            loops = [pool.submit(run_loop, work, *prepared[s], s, setup, kind) for kind in setup.loops
                     for s in setup.seeds]
            mixed = [pool.submit(run_mixed, work, *prepared[s], s, setup) for s in setup.seeds]
            loops, mixed = [f.result() for f in loops], [f.result() for f in mixed]
    text = report(setup, loops, mixed, stats, time.perf_counter() - started, base_build)
    print(text)
    if not args.smoke and not args.seeds and not args.loops and not args.rejected and not args.set:
        REPORT.write_text(text)
    return 0


def changed(setup: Setup, assignments: Sequence[str]) -> Setup:
    """``setup`` with each ``FIELD=VALUE`` applied, the value read as the field's type."""
    for assignment in assignments:
        name, _, value = assignment.partition("=")
        if name not in {f.name for f in fields(Setup)} or isinstance(getattr(setup, name), tuple):
            raise SystemExit(f"--set {assignment}: not a setup field that takes one value")
        setup = replace(setup, **{name: type(getattr(setup, name))(value)})
    return setup


def data_stats(prepared) -> dict[str, Any]:
    from training.buffer import steps_of
    from training.data import load_records

    accepted, steps = [], []
    for _, data in prepared:
        rows = load_records(str(data))
        accepted.append(len(rows))
        steps.append(len(steps_of(rows)))
    return {"accepted": " / ".join(map(str, accepted)), "steps": f"{statistics.fmean(steps):.0f}"}


if __name__ == "__main__":
    sys.exit(main())
