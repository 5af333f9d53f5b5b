"""iTool's iterative reinforced fine-tuning loop: ``python -m training itool``.

1. Warm-up: SFT (:class:`training.sft.SFTRun`) easy → medium → hard (``--curriculum``, on by default).
2. Each round, the policy's perplexity of every approved call step fills the replay buffer
   (:mod:`training.buffer`), and the hardest steps are sampled.
3. At each, a tree search over the turn (:mod:`training.search`, :mod:`training.tree`) judges the policy's
   own completions; at each fork of the tree a right step (the approved call's where it is one) is chosen
   over a wrong one (``--rejected``), after the same prefix. The pairs go to the store, where an annotator
   can review them.
4. DPO (:class:`training.dpo.DPORun`) on the round's pairs no annotator rejected (``--train-pairs all``:
   every round's), the earlier ones an annotator accepted and the annotators' own pairs, with a fresh LoRA
   over the latest policy, which is therefore its reference; the adapter is merged into the next policy,
   scored on the gold items (TS / PI / CF), and the next round starts from it.

``--resume`` starts after the last part an earlier loop in the same ``--output`` completed (:class:`Progress`),
from its policy; a warm-up cut short continues from its last checkpoint, a round cut short runs again.

The warm-up and every round are runs of their own, children of the loop's run (``runs.parent_id``), with
their metrics: buffer perplexity by stage, pairs by the rejected step's error kind, DPO loss and reward
margins, TS / PI / CF after the round. At the end, the final policy's perplexity of the store's pending
trajectories is stored (:mod:`training.score`), so review can take the hardest first.

Layout of ``--output``: ``warmup/`` (the SFT run; ``policy/`` its merged model when it trained an adapter),
``loop.json`` (the completed parts), ``round-N/`` (the round's DPO adapter, ``search.jsonl`` with every step's
completions, their log-probabilities and the pairs found,
``predictions.jsonl``, and ``policy/``, the merged model the next round starts from).
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

from store.records import StepPair
from training import evaluate, models
from training.buffer import Step, perplexity_by_stage, sample, steps_of
from training.callbacks import GracefulStop
from training.config import DPOConfig, EvalConfig, IToolConfig, SFTConfig
from training.data import load_records, sft_records
from training.dpo import DPORun, Pair, collect_pairs
from training.errors import TrainingError
from training.recorder import RunRecorder
from training.score import Perplexity, policy as load_policy, store_scores
from training.search import Sampler, Searched, Settings
from training.sft import SFTRun

WARMUP_DIR = "warmup"
POLICY_DIR = "policy"
SEARCH_FILE = "search.jsonl"
PROGRESS_FILE = "loop.json"
#: The search settings a round's run records beside its DPO configuration.
SEARCH_FIELDS = ("buffer_size", "buffer_sampling", "samples", "temperature", "search_iterations", "step_depth",
                 "exploration", "max_new_tokens", "rejected", "train_pairs")


def round_dir(output: Path, number: int) -> Path:
    return output / f"round-{number}"


@dataclass(frozen=True)
class Part:
    """A completed part of the loop: its name (``warmup``, ``round-N``), the policy it left, its gold metrics
    and its run."""

    name: str
    policy: str
    metrics: dict[str, float]
    run_id: str | None


class Progress:
    """The loop's completed parts, written after each one (``--output``/loop.json), so that ``--resume`` starts
    after the last: a part cut short runs again from its start (a round's search and DPO go together)."""

    def __init__(self, path: Path):
        self.path = path
        self.parts: list[Part] = []

    def reset(self) -> list[Part]:
        """A fresh loop: no part done (the file, if any, is rewritten as the parts complete)."""
        self.parts = []
        return []

    def resumed(self) -> list[Part]:
        """The parts an earlier loop in the same output completed (none when it completed none)."""
        if not self.path.is_file():
            return self.reset()
        try:
            rows = json.loads(self.path.read_text())["parts"]
            self.parts = [Part(str(p["name"]), str(p["policy"]), dict(p["metrics"]), p.get("run_id")) for p in rows]
        except json.JSONDecodeError as exc:
            raise TrainingError(f"{self.path}: cannot resume from it (not JSON: {exc})") from None
        except KeyError as exc:
            raise TrainingError(f"{self.path}: cannot resume from it (no {exc} in a part)") from None
        except (TypeError, ValueError, AttributeError):
            raise TrainingError(f"{self.path}: cannot resume from it (not the loop's list of parts)") from None
        for part in self.parts:
            if not Path(part.policy).is_dir():
                raise TrainingError(f"{self.path}: the policy of {part.name}, {part.policy}, is gone; cannot resume")
        return list(self.parts)

    def add(self, part: Part) -> None:
        self.parts.append(part)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"parts": [asdict(p) for p in self.parts]}, indent=1) + "\n")
        temporary.replace(self.path)


class Loop:
    """One loop: the warm-up, ``iterations`` rounds, the final scoring; :meth:`run` returns the loop's summary."""

    def __init__(self, config: IToolConfig, recorder: RunRecorder):
        self.config = config
        self.recorder = recorder
        self.output = Path(str(config.output)).resolve()
        self.stop = GracefulStop()
        #: The pairs made so far (kept here when there is no store to keep them).
        self.made: list[StepPair] = []
        self.round_ids: list[str] = []
        #: The run of the part running or just done.
        self.part_id: str | None = None

    def run(self) -> dict[str, Any]:
        config = self.config
        records = sft_records(load_records(config.data, config.db))
        if not records:
            raise TrainingError("the dataset is empty: no accepted trajectory")
        steps = steps_of(records)
        if not steps:
            raise TrainingError("no approved tool-call step to search at: no accepted trajectory makes a call "
                                "that trains")
        items = evaluate.items_of(self.eval_config(config.base_model)) if config.evaluate else []
        progress = Progress(self.output / PROGRESS_FILE)
        done = progress.resumed() if config.resume else progress.reset()
        self.recorder.start({"source": config.data or config.db, "trajectories": len(records), "steps": len(steps),
                             "gold_items": len(items), **({"resumed_after": done[-1].name} if done else {})})
        if done:
            policy, history = Path(done[-1].policy), [part.metrics for part in done]
            self.round_ids = [part.run_id for part in done[1:] if part.run_id]
        else:
            policy, metrics = self.warm_up(items)
            history = [metrics]
            if policy is not None:
                progress.add(Part(WARMUP_DIR, str(policy), metrics, self.part_id))
        while policy is not None and len(history) <= config.iterations and not self.stop.requested:
            policy, metrics = self.round(len(history), policy, steps, items)
            if policy is not None:
                history.append(history[-1] if metrics is None else metrics)  # None: no pairs, the policy stays
                progress.add(Part(round_dir(self.output, len(history) - 1).name, str(policy), history[-1],
                                  self.part_id))
        if policy is None or len(history) <= config.iterations:
            return {"status": "cancelled", "rounds_completed": len(history) - 1, "output": str(self.output)}
        summary = {"status": "completed", "rounds": config.iterations, "policy": str(policy), "output": str(policy),
                   "pairs": len(self.made), "ts_by_round": [m.get("ts") for m in history]}
        if history[-1]:
            summary["metrics"] = history[-1]
        return {**summary, **self.score_pending(policy)}

    # -- the parts --------------------------------------------------------------------------------------
    def warm_up(self, items: Sequence[evaluate.Item]) -> tuple[Path | None, dict[str, float]]:
        """SFT from the base model; the policy it gives (None when stopped) and its gold metrics."""
        sft = SFTConfig(**{**self._shared(SFTConfig), "output": str(self.output / WARMUP_DIR)})
        out = Path(str(sft.output))
        with self.recorder.child("train", "sft", self.config.base_model, sft.to_dict(), out) as run:
            self.part_id = run.run_id
            summary = SFTRun(sft, run).train()
            self.stop = GracefulStop()  # the trainer's handler took the signals; the loop's takes them back
            if summary.pop("status") != "completed":
                run.finish("cancelled", summary)
                return None, {}
            policy = out if self.config.full_finetune else merge(out, out / POLICY_DIR, self.config)
            metrics = self.evaluated(policy, items, out)
            self._log(run, 0, summary.get("steps") or 0, metrics)
            run.finish("completed", {**summary, "policy": str(policy), **({"metrics": metrics} if metrics else {})})
        return policy, metrics

    def round(self, number: int, policy: Path, steps: list[Step], items: Sequence[evaluate.Item]
              ) -> tuple[Path | None, dict[str, float] | None]:
        """Buffer, search, pairs, DPO and evaluation from ``policy``; the next policy (None when stopped) and its
        gold metrics (None when there was nothing to train on, so the policy is the same)."""
        config = self.config
        out = round_dir(self.output, number)
        dpo = DPOConfig(**{**self._shared(DPOConfig), "base_model": str(policy), "output": str(out),
                           "max_steps": config.dpo_max_steps, "epochs": config.dpo_epochs,
                           "learning_rate": config.dpo_learning_rate, "beta": config.dpo_beta,
                           "sft_weight": config.dpo_sft_weight})
        recorded = {**dpo.to_dict(), "round": number, **{k: getattr(config, k) for k in SEARCH_FIELDS}}
        with self.recorder.child("train", "dpo", str(policy), recorded, out) as run:
            self.part_id = run.run_id
            if run.run_id:
                self.round_ids.append(run.run_id)
            run.start({"round": number, "steps": len(steps)})
            searched = self.search(number, policy, steps)
            made = self.keep(number, run.run_id, searched)
            write_search_log(out / SEARCH_FILE, searched)
            run.log(0, {**perplexity_by_stage(steps), **search_metrics(searched, made)})
            pairs = self.trainable(number)
            if self.stop.requested:
                run.finish("cancelled", {"pairs_made": len(made)})
                return None, {}
            if not pairs and not collect_pairs(config.data, config.db):
                run.finish("completed", {"pairs_made": 0, "policy": str(policy), "dpo": "skipped: no pairs"})
                return policy, None
            run.start({"trained_pair_ids": [p.id for p in pairs if p.id is not None], "pairs_made": len(made)})
            summary = DPORun(dpo, run, extra=[dpo_pair(p) for p in pairs]).train()
            self.stop = GracefulStop()
            if summary.pop("status") != "completed":
                run.finish("cancelled", summary)
                return None, {}
            policy = merge(out, out / POLICY_DIR, config)
            metrics = self.evaluated(policy, items, out)
            self._log(run, number, summary.get("steps") or 0, metrics, pairs=len(made))
            run.finish("completed", {**summary, "pairs_made": len(made), "policy": str(policy),
                                     **({"metrics": metrics} if metrics else {})})
        return policy, metrics

    def search(self, number: int, policy: Path, steps: list[Step]) -> list[Searched]:
        """Score every step with ``policy``, sample the round's buffer, and search at each of its steps."""
        import torch

        config = self.config
        model, tokenizer, max_length = load_policy(str(policy), config)
        scorer = Perplexity(model, tokenizer, max_length)
        for step, value in zip(steps, scorer.of([s.as_record() for s in steps])):
            step.perplexity = value
        seed = config.seed * 1000 + number
        buffer = sample(steps, config.buffer_size, config.buffer_sampling, seed)
        torch.manual_seed(seed)
        settings = Settings(**{f.name: getattr(config, f.name) for f in fields(Settings)})
        return Sampler(model, tokenizer, settings, config.generation_batch_size).search(buffer)

    def keep(self, number: int, run_id: str | None, searched: list[Searched]) -> list[StepPair]:
        """The round's pairs, written to the store (each pick learns its pair's id) or kept here."""
        store = self.recorder.store
        made = [pair for s in searched for pair in s.pairs(
            number, run_id, s.step.trajectory_id if store and store.has_trajectory(s.step.trajectory_id) else None)]
        if store is not None:
            for pick, pair_id in zip([p for s in searched for p in s.picks], store.add_pairs(made)):
                pick.pair_id = pair_id
        self.made += made
        return made

    def trainable(self, number: int) -> list[StepPair]:
        """The loop's pairs round ``number`` trains on: none an annotator rejected; with ``--train-pairs round``
        only the round's own and those an annotator accepted."""
        store = self.recorder.store
        made = self.made if store is None else store.pairs(run_ids=[str(self.recorder.run_id), *self.round_ids])
        kept = [p for p in made if p.decision != "reject"]
        if self.config.train_pairs == "all":
            return kept
        return [p for p in kept if p.round == number or p.decision == "accept"]

    def evaluated(self, policy: Path, items: Sequence[evaluate.Item], out: Path) -> dict[str, float]:
        """TS / PI / CF and error rates of ``policy`` on the gold items (none: no evaluation asked for)."""
        if not items:
            return {}
        metrics, judged = evaluate.score(items, evaluate.LocalModel(self.eval_config(str(policy))).predict(items))
        (out / evaluate.PREDICTIONS_FILE).write_text("".join(json.dumps(r) + "\n" for r in judged))
        print(evaluate.table({"all": metrics}, f"{policy} on {len(items)} gold calls"), file=sys.stderr)
        return metrics

    def score_pending(self, policy: Path) -> dict[str, Any]:
        """The final policy's perplexity of the store's pending trajectories, stored as their scores."""
        store = self.recorder.store
        if store is None or not self.config.score_pending:
            return {}
        model, tokenizer, max_length = load_policy(str(policy), self.config)
        done = store_scores(store, Perplexity(model, tokenizer, max_length),
                            "pending", str(policy), self.recorder.run_id)
        return {"pending_scored": done["scored"]}

    # -- helpers ----------------------------------------------------------------------------------------
    def eval_config(self, model: str) -> EvalConfig:
        config = self.config
        return EvalConfig(data=config.gold or config.data, db=None if config.gold else config.db, model=model,
                          tiny_config=config.tiny_config, chat_template=config.chat_template, seed=config.seed,
                          limit=config.eval_limit, max_new_tokens=config.max_new_tokens,
                          batch_size=config.generation_batch_size)

    def _shared(self, target: type) -> dict[str, Any]:
        """The loop's values of the fields ``target`` (a part's config) has too."""
        return {f.name: getattr(self.config, f.name) for f in fields(target) if f.init and hasattr(self.config, f.name)}

    def _log(self, run: RunRecorder, number: int, step: int, metrics: dict[str, float], **extra: float) -> None:
        """The part's gold metrics at its last step, and the loop's at the round's number."""
        if metrics:
            run.log(step, metrics)
        self.recorder.log(number, {**metrics, **extra})


def dpo_pair(pair: StepPair) -> Pair:
    return Pair(pair.tools, pair.prefix, pair.chosen, pair.rejected, pair.source)


def search_metrics(searched: Sequence[Searched], made: Sequence[StepPair]) -> dict[str, float]:
    """The buffer's perplexity, how many steps every generated completion solved, the trees' size, and the
    pairs: by the rejected side's error kind, and how many part after a shared step of the turn."""
    values = [s.step.perplexity for s in searched if s.step.perplexity is not None]
    kinds = Counter(p.rejected_error for p in made)
    return {"buffer_steps": len(searched), **({"buffer_ppl": sum(values) / len(values)} if values else {}),
            "steps_solved": sum(bool(s.generated) and all(x.correct for x in s.generated) for s in searched),
            "tree_nodes": sum(s.nodes for s in searched) / max(len(searched), 1), "pairs": len(made),
            "below_root_pairs": sum(p.depth > 0 for s in searched for p in s.picks),
            **{f"pairs_{kind}": n for kind, n in kinds.items()}}


def write_search_log(path: Path, searched: Sequence[Searched]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(s.to_log(), ensure_ascii=False) + "\n" for s in searched))


def merge(adapter: Path, out: Path, config: IToolConfig) -> Path:
    """The LoRA adapter in ``adapter`` merged into its base, saved as a full model in ``out`` (the next policy)."""
    model, tokenizer = models.load(str(adapter), config.tiny, chat_template=config.chat_template)
    model.merge_and_unload().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def train(config: IToolConfig, recorder: RunRecorder) -> dict[str, Any]:
    """Run the loop; returns its summary. Raises ``TrainingError`` on bad input."""
    return Loop(config, recorder).run()
