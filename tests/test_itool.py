"""iTool's loop (``python -m training itool``), its replay buffer, step-level search, the perplexity scores it
leaves for review (``python -m training score``), and ``curator train itool``."""
from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from curator import launcher  # noqa: E402
from curator.cli.training import COMMANDS  # noqa: E402
from curator.demo_model import prepare_store  # noqa: E402
from curator.sim import SimConfig, Simulation  # noqa: E402
from store import Store  # noqa: E402
from store.taxonomy import MaskPolicy  # noqa: E402
from training import buffer, itool, search  # noqa: E402
from training.__main__ import main  # noqa: E402
from training.config import ArgumentError, IToolConfig, parse  # noqa: E402
from training.data import Renderer  # noqa: E402
from training.tiny import TinyConfig, build_tokenizer  # noqa: E402
from training_fixtures import records, one_thread  # noqa: E402,F401 (one_thread: autouse)

train, _, runs = COMMANDS
#: A small loop: the compact template keeps sequences short, so two rounds take seconds on a CPU.
SMALL = ["--base-model", "tiny", "--tiny-config", '{"template": "compact"}', "--max-steps", "4",
         "--buffer-size", "3", "--samples", "3", "--dpo-max-steps", "2", "--max-new-tokens", "32",
         "--eval-limit", "4", "--threads", "1"]
PENDING = 3


def scripted_store(db: Path, n: int = 12) -> Path:
    """A scripted weather simulation with held-out gold items: all complete trajectories accepted but the last
    ``PENDING``, which stay to be reviewed."""
    config = SimConfig().with_changes(toolset="weather", n=n, backend="scripted", seed=0)
    with Store.open(db) as store:
        prepare_store(store, config, gold=8)
        asyncio.run(Simulation(store, config, policy=MaskPolicy.of()).run())
        complete = list(store.iter_trajectories(status="complete"))
        for trajectory in complete[:-PENDING]:
            store.decide(trajectory.id, "accept")
    return db


# -- the loop, run once for the slow tests -------------------------------------------------------------
@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> dict[str, Any]:
    """Two rounds on a scripted store; while round 2 searches, an annotator rejects one of round 1's pairs and
    accepts another."""
    work = tmp_path_factory.mktemp("itool")
    db = str(scripted_store(work / "s.db"))
    reviewed: dict[str, int] = {}
    search_round = itool.Loop.search

    def search_and_review(self, number, policy, steps):
        if number == 2:
            with Store.open(db) as store:
                first, second = store.pairs(run_ids=self.round_ids[:1])[:2]
                store.decide_pair(first.id, "reject", annotator="ann")
                store.decide_pair(second.id, "accept", annotator="ann")
                reviewed.update(reject=first.id, accept=second.id)
        return search_round(self, number, policy, steps)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(itool.Loop, "search", search_and_review)
        status = main(["itool", "--db", db, "--iterations", "2", "--output", str(work / "out"), *SMALL])
    assert status == 0
    store = Store.open(db)
    [parent] = [r for r in store.runs() if r.algorithm == "itool"]
    parts = sorted((r for r in store.runs() if r.parent_id == parent.id), key=lambda r: r.created_at)
    return {"db": db, "store": store, "loop": parent, "parts": parts, "out": work / "out", "reviewed": reviewed}


@pytest.mark.slow
def test_the_loop_records_its_warm_up_and_rounds_as_runs_linked_to_it(loop):
    parent, parts, store = loop["loop"], loop["parts"], loop["store"]
    assert parent.status == "completed" and parent.kind == "train"
    assert [(r.algorithm, r.status) for r in parts] == [("sft", "completed"), ("dpo", "completed"),
                                                         ("dpo", "completed")]
    warm_up, *rounds = parts
    assert warm_up.config["curriculum"] is True  # easy -> medium -> hard
    assert [r.config["round"] for r in rounds] == [1, 2]
    assert {r.config["rejected"] for r in rounds} == {IToolConfig().rejected}  # how its pairs were picked
    assert {(r.config["search_iterations"], r.config["step_depth"], r.config["sft_weight"]) for r in rounds} == {
        (IToolConfig().search_iterations, IToolConfig().step_depth, 0.0)}  # how its tree grew, its DPO loss
    assert rounds[0].base_model == warm_up.summary["policy"]  # each round starts from the latest policy
    assert rounds[1].base_model == rounds[0].summary["policy"] == str(loop["out"] / "round-1" / "policy")
    for part in rounds:
        keys = {k for (k,) in store.conn.execute("SELECT DISTINCT key FROM run_metrics WHERE run_id = ?", (part.id,))}
        assert {"ppl_easy", "ppl_medium", "ppl_hard", "buffer_ppl", "pairs", "pairs_parse_error", "below_root_pairs",
                "tree_nodes", "loss", "rewards/margins", "logps/chosen", "logps/rejected", "ts", "pi", "cf"} <= keys
        assert store.run_metrics(part.id, "loss") and part.summary["metrics"]["n"] == 4
    assert [step for step, _ in store.run_metrics(parent.id, "ts")] == [0, 1, 2]
    listed = [json.loads(line) for line in CliRunner().invoke(runs, ["--json"], obj={"db": loop["db"]}).output.splitlines()]
    assert sorted(r["algorithm"] for r in listed if r["parent_id"] == parent.id) == ["dpo", "dpo", "sft"]


@pytest.mark.slow
def test_each_pair_is_one_step_after_the_trajectory_s_own_prefix(loop):
    store, parts = loop["store"], loop["parts"]
    pairs = store.pairs(run_ids=[r.id for r in parts])
    assert pairs and {p.round for p in pairs} == {1, 2} and {p.source for p in pairs} == {"search"}
    for pair in pairs:
        messages = store.record(pair.trajectory_id)["messages"]
        assert pair.prefix == messages[:pair.message_index]
        assert pair.chosen == messages[pair.message_index] and pair.chosen["tool_calls"]
        assert pair.rejected != pair.chosen and pair.rejected["role"] == "assistant"
        assert pair.chosen_reward == 1.0 and pair.rejected_reward < 1.0 and pair.rejected_error == "parse_error"


@pytest.mark.slow
def test_the_rejected_side_is_what_the_policy_generated_after_the_shared_steps(loop):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    store, out = loop["store"], loop["out"]
    checked = deep = 0
    for number, start in ((1, out / "warmup" / "policy"), (2, out / "round-1" / "policy")):
        model, tokenizer = AutoModelForCausalLM.from_pretrained(start).eval(), AutoTokenizer.from_pretrained(start)
        for line in (out / f"round-{number}" / "search.jsonl").read_text().splitlines():
            searched = json.loads(line)
            samples = searched["samples"]
            assert samples[0]["approved"] and not any(s["approved"] for s in samples[1:])
            assert len(samples) <= 1 + 3 * IToolConfig().search_iterations  # --samples 3 per expansion
            for pick in searched["picks"]:
                sample, chosen = samples[pick["rejected"]], samples[pick["chosen"]]
                pair = store.pair(pick["pair_id"])
                ids = sample["token_ids"]
                text = tokenizer.decode(ids[:-1] if sample["finished"] else ids, skip_special_tokens=False)
                assert sample["text"] == text and pair.rejected == search.as_message(text)
                # the two sides share the fork's steps and nothing after: the tokens given to the policy are a
                # path of the tree (the start of a completion added before), the rest it generated
                assert text.startswith(pick["shared"]) and chosen["text"].startswith(pick["shared"])
                given = sample["start"]
                assert any(s["token_ids"][:given] == ids[:given] for s in samples[:pick["rejected"]])
                deep += pick["depth"] > 0
                prompt = tokenizer.apply_chat_template(_for_template(pair.prefix), tools=pair.tools,
                                                       add_generation_prompt=True, tokenize=False)
                prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
                with torch.no_grad():
                    logits = model(torch.tensor([prompt_ids + ids])).logits[0]
                logps = torch.log_softmax(logits[len(prompt_ids) - 1:-1].float(), dim=-1)
                logprob = float(logps.gather(1, torch.tensor(ids)[:, None]).sum())
                assert logprob == pytest.approx(sample["logprob"], rel=1e-4, abs=1e-3)
                checked += 1
    assert checked == len(store.pairs(run_ids=[r.id for r in loop["parts"]])) and deep


@pytest.mark.slow
def test_a_round_trains_on_its_own_pairs_and_those_accepted_before_never_on_a_rejected_one(loop):
    store, (_, first, second) = loop["store"], loop["parts"]
    rejected, accepted = loop["reviewed"]["reject"], loop["reviewed"]["accept"]
    assert store.pair(rejected).decision == "reject" and store.pair(rejected).run_id == first.id
    first_pairs = {p.id for p in store.pairs(run_ids=[first.id])}
    second_pairs = {p.id for p in store.pairs(run_ids=[second.id])}
    assert {rejected, accepted} <= first_pairs and set(first.dataset["trained_pair_ids"]) == first_pairs
    assert set(second.dataset["trained_pair_ids"]) == second_pairs | {accepted}
    assert second.dataset["pairs"] == len(second_pairs) + 1  # what DPO's dataset held


@pytest.mark.slow
def test_the_pending_trajectories_carry_the_final_policy_s_perplexity(loop):
    """Computed again here with a plain forward over the chat template's render: the CE of the tokens of each
    assistant message that trains."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    store, policy = loop["store"], loop["loop"].summary["policy"]
    scores = store.scores("perplexity")
    pending = store.trajectory_ids(review="pending")
    assert len(pending) >= PENDING and set(scores) == set(pending)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(policy).eval(), AutoTokenizer.from_pretrained(policy)
    for trajectory_id in pending:
        record = store.record(trajectory_id)
        assert scores[trajectory_id].model == policy and scores[trajectory_id].run_id == loop["loop"].id
        assert scores[trajectory_id].value == pytest.approx(_perplexity(model, tokenizer, record), rel=1e-4)


@pytest.mark.slow
def test_score_stores_a_model_s_perplexity_of_the_trajectories_asked_for(loop, capsys):
    store, policy = loop["store"], loop["loop"].summary["policy"]
    assert main(["score", "--model", policy, "--db", loop["db"], "--review", "accepted",
                 "--tiny-config", '{"template": "compact"}']) == 0
    [run] = [r for r in Store.open(loop["db"]).runs() if r.kind == "score"]
    scores = Store.open(loop["db"]).scores("perplexity")
    accepted = store.trajectory_ids(review="accepted")
    assert run.status == "completed" and run.summary["scored"] == len(accepted)
    assert {scores[t].run_id for t in accepted} == {run.id}
    model, tokenizer = _load(policy)
    record = store.record(accepted[0])
    assert scores[accepted[0]].value == pytest.approx(_perplexity(model, tokenizer, record), rel=1e-4)


def _load(path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def _for_template(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as Hugging Face chat templates take them: arguments as objects (a broken call's as its text)."""
    def call(c):
        try:
            return {**c, "function": {**c["function"], "arguments": json.loads(c["function"]["arguments"] or "{}")}}
        except json.JSONDecodeError:
            return c

    return [{**m, "tool_calls": [call(c) for c in m["tool_calls"]]} if m.get("tool_calls") else m for m in messages]


def _perplexity(model, tokenizer, record: dict[str, Any]) -> float:
    messages, tools = _for_template(record["messages"]), record["tools"]
    text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    positions = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or not message.get("weight", 1):
            continue
        start = len(tokenizer.apply_chat_template(messages[:index], tools=tools, add_generation_prompt=True,
                                                  tokenize=False))
        end = text.index(tokenizer.eos_token, start) + len(tokenizer.eos_token)
        positions += [t for t, (a, b) in enumerate(offsets) if start <= a and b <= end]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    nll = torch.nn.functional.cross_entropy(logits[[p - 1 for p in positions]], torch.tensor([ids[p] for p in positions]))
    return math.exp(float(nll))


# -- the buffer and the search, without training -------------------------------------------------------
def test_the_buffer_holds_every_approved_call_step_with_its_trajectory_s_stage():
    rows = records(9)
    steps = buffer.steps_of(rows)
    assert len(steps) == 9  # one approved call each; the masked failed call is not a step
    assert {s.stage for s in steps} == {"easy", "medium", "hard"}
    step = steps[0]
    example = step.as_record()
    assert example["messages"][-1]["weight"] == 1 and example["messages"][:-1] == [
        {**m, "weight": 0} if m["role"] == "assistant" else m for m in rows[0]["messages"][:step.index]]


def test_the_buffer_samples_the_hardest_steps():
    steps = buffer.steps_of(records(12))
    for value, step in enumerate(steps, 1):
        step.perplexity = float(value ** 3)
    top = buffer.sample(steps, 3, "top", seed=0)
    assert [s.perplexity for s in top] == [1728.0, 1331.0, 1000.0]
    drawn = [buffer.sample(steps, 4, "proportional", seed=seed) for seed in range(200)]
    assert all(len({id(s) for s in d}) == 4 for d in drawn)  # without replacement
    assert buffer.sample(steps, 4, "proportional", seed=7) == buffer.sample(steps, 4, "proportional", seed=7)
    counts = [sum(step in d for d in drawn) for step in steps]
    assert counts[-1] > counts[5] > counts[0]  # in proportion to perplexity
    by_stage = buffer.perplexity_by_stage(steps)
    assert set(by_stage) == {"ppl_easy", "ppl_medium", "ppl_hard", "ppl_all"}


def _search(step_depth: int = 1, rule: str = "worst") -> tuple[search.Search, Any]:
    """A search over one buffer step with the tiny model's tokenizer, its approved call in the tree."""
    tokenizer = build_tokenizer(TinyConfig())
    step = buffer.steps_of(records(1))[0]
    found = search.Search(step, Renderer.of(tokenizer), tokenizer,
                          search.Settings(samples=4, temperature=1.0, max_new_tokens=96, rejected=rule,
                                          step_depth=step_depth))
    ids = _ids(tokenizer, found.renderer.completion(step.context, step.message, step.tools))
    found.add_approved(ids, [-0.5] * len(ids), tokenizer.eos_token_id)
    return found, tokenizer


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _sampled(found: search.Search, tokenizer, text: str, logp: float, after: search.Node | None = None) -> None:
    """``text`` as if the policy had generated it after ``after`` (the root), ``logp`` the log-probability of each
    of its tokens, the end of turn included."""
    ids = [*_ids(tokenizer, text), tokenizer.eos_token_id]
    found.add_sampled(after or found.tree.root, ids, [logp] * len(ids), finished=True)


def _call(name: str, arguments: str) -> str:
    return f'<tool_call>\n{{"name": "{name}", "arguments": {arguments}}}\n</tool_call>'


def test_a_one_level_tree_rejects_the_worst_alternative_and_the_surest_of_equally_bad_ones():
    found, tokenizer = _search()
    gold = found.step.message["tool_calls"][0]["function"]
    right = json.dumps(json.loads(gold["arguments"]), separators=(",", ":"))  # right, not the approved call's tokens
    for text, logp in ((_call(gold["name"], right), -0.1), (_call("getTime", '{"city": "Oslo"}'), -0.3),
                       ("no idea", -3.0), ("maybe", -1.0)):
        _sampled(found, tokenizer, text, logp)
    searched = found.done()
    assert [s.reward for s in searched.samples] == [1.0, 1.0, -1.5, -2.0, -2.0]
    assert searched.samples[0].approved and searched.samples[1].correct and searched.nodes == 5
    [pick] = searched.picks  # one fork, the root: the approved call, not the equally right sample, is chosen
    assert (pick.depth, pick.shared, pick.chosen, pick.rejected) == (0, "", 0, 4)  # -2 twice: "maybe" is surer
    [pair] = searched.pairs(1, None, None)
    assert pair.prefix == found.step.context and pair.chosen == found.step.message
    assert pair.rejected == {"role": "assistant", "content": "maybe"}
    assert (pair.chosen_reward, pair.rejected_reward, pair.rejected_error) == (1.0, -2.0, "parse_error")


def test_the_likely_side_is_the_wrong_step_the_policy_finds_most_probable():
    found, tokenizer = _search(rule="likely")
    # by the whole completion's log-probability: the sibling tool, though the least bad of the wrong ones
    for text, logp in (("no idea", -3.0), (_call("getTime", '{"city": "Oslo"}'), -0.05), ("maybe", -1.0)):
        _sampled(found, tokenizer, text, logp)
    [pick] = found.done().picks
    assert found.samples[pick.rejected].message["tool_calls"][0]["function"]["name"] == "getTime"
    found.settings = search.Settings(4, 1.0, 96, "worst", step_depth=1)
    [pick] = found.done().picks
    assert found.samples[pick.rejected].text == "maybe"  # the same tree, the worst rule: the lowest reward, surest
    assert search.pick_rejected(found.samples, "likely") == 2
    assert search.pick_rejected(found.samples[:1], "worst") is None  # the approved call alone: nothing to reject
    found.samples[2].unusable = "its render cannot be located"  # never a pair's side
    assert search.pick_rejected(found.samples, "likely") == 3
    with pytest.raises(ValueError, match="unknown rejected-step rule 'near'"):
        search.pick_rejected(found.samples, "near")


def test_a_fork_below_the_root_parts_the_pair_at_the_parameter_the_policy_gets_wrong():
    found, tokenizer = _search(step_depth=6)
    gold = found.step.message["tool_calls"][0]["function"]
    arguments = json.loads(gold["arguments"])
    name_step = next(iter(found.tree.root.children.values()))  # the approved call's first step: the tool's name
    assert tokenizer.decode(list(name_step.tokens)).endswith(f'"name": "{gold["name"]}", "')
    wrong = {**arguments, "days": arguments["days"] + 2}
    after_name = _call(gold["name"], json.dumps(wrong))[len(tokenizer.decode(list(name_step.tokens))):]
    _sampled(found, tokenizer, after_name, -0.4, after=name_step)
    _sampled(found, tokenizer, _call("getTime", '{"city": "Oslo"}'), -0.3)
    searched = found.done()
    assert [p.depth for p in searched.picks] == [0, 2]  # the tool at the root; "days" after name and "city"
    root, deep = searched.picks
    assert found.samples[root.rejected].message["tool_calls"][0]["function"]["name"] == "getTime"
    assert deep.shared.endswith('"city": "Perth", "') and deep.chosen == 0
    rejected = found.samples[deep.rejected]
    assert rejected.start == len(name_step.tokens) and rejected.codes == ("content_error",)
    assert rejected.text.startswith(deep.shared) and found.samples[0].text.startswith(deep.shared)
    pair = searched.pairs(1, None, None)[1]
    assert pair.chosen == found.step.message and json.loads(
        pair.rejected["tool_calls"][0]["function"]["arguments"]) == wrong


def test_a_step_whose_approved_call_cannot_be_read_is_not_searched_and_says_why():
    tokenizer = build_tokenizer(TinyConfig())
    step = buffer.steps_of(records(1))[0]
    step.message = {**step.message, "tool_calls": [{"id": "c1", "type": "function",
                                                    "function": {"name": "getTime", "arguments": "{city"}}]}
    searched = search.Search(step, Renderer.of(tokenizer), tokenizer, search.Settings(4, 1.0, 96, "worst")).done()
    assert searched.samples == [] and searched.picks == [] and searched.chosen_reward is None
    assert searched.unsearched.startswith("the approved call cannot be read:")
    assert searched.to_log()["unsearched"] == searched.unsearched


def test_the_search_grows_each_tree_from_the_policy_s_own_samples_below_the_best_steps():
    from training import models

    model, tokenizer = models.load("tiny", TinyConfig(template="compact"))
    steps = buffer.steps_of(records(2))[:2]
    torch.manual_seed(0)
    settings = search.Settings(samples=3, temperature=1.0, max_new_tokens=64, rejected="worst", search_iterations=3,
                               step_depth=4)
    sampler = search.Sampler(model.eval(), tokenizer, settings, batch_size=8)
    for searched in sampler.search(steps):
        approved, *generated = searched.samples
        assert approved.approved and approved.reward == 1.0 and approved.message == searched.step.message
        prompt = tokenizer(sampler.renderer.prompt(searched.step.context, searched.step.tools),
                           add_special_tokens=False)["input_ids"]
        with torch.no_grad():  # the approved call's log-probability, from a plain forward over all the logits
            logits = model(torch.tensor([prompt + approved.token_ids])).logits[0, len(prompt) - 1:-1]
        expected = torch.log_softmax(logits, -1).gather(1, torch.tensor(approved.token_ids)[:, None]).sum()
        assert approved.logprob == pytest.approx(float(expected), rel=1e-4)
        assert 3 < len(searched.samples) <= 1 + 3 * 3 and not any(s.approved for s in generated)
        assert [s.start for s in generated[:3]] == [0, 0, 0]  # the first expansion is the root's
        later = [s for s in generated[3:] if s.start]
        assert later  # the untrained policy's samples are all wrong: the search went down the approved call's steps
        for sample in later:
            assert sample.token_ids[:sample.start] == approved.token_ids[:sample.start]
        assert all(len(s.token_ids) <= 64 for s in generated) and searched.picks  # the turn's budget


def test_train_pairs_all_keeps_every_round_s_pairs_but_the_rejected(tmp_path):
    from store.records import StepPair
    from training.recorder import RunRecorder

    def made(round: int, decision: str | None) -> StepPair:
        return StepPair([], [], {"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"},
                        round=round, decision=decision)

    pairs = [made(1, None), made(1, "accept"), made(1, "reject"), made(2, None), made(2, "reject")]
    for how, expected in (("round", [pairs[1], pairs[3]]), ("all", [pairs[0], pairs[1], pairs[3]])):
        loop = itool.Loop(IToolConfig(base_model="tiny", train_pairs=how),
                          RunRecorder(None, "train", "itool", "tiny", {}, tmp_path))
        loop.made = pairs
        assert loop.trainable(2) == expected


def test_a_sampled_call_is_kept_as_a_call():
    message = search.as_message('<tool_call>\n{"name": "getTime", "arguments": {"city": "Oslo"}}\n</tool_call>')
    assert message["tool_calls"][0]["function"] == {"name": "getTime", "arguments": '{"city": "Oslo"}'}
    assert search.as_message('<tool_call>\n{"name": \n</tool_call>') == {
        "role": "assistant", "content": '<tool_call>\n{"name": \n</tool_call>'}


@pytest.mark.slow
def test_resume_starts_after_the_last_completed_round(tmp_path):
    db, out = str(scripted_store(tmp_path / "s.db")), tmp_path / "out"
    assert main(["itool", "--db", db, "--iterations", "1", "--output", str(out), *SMALL]) == 0
    first = json.loads((out / itool.PROGRESS_FILE).read_text())["parts"]
    assert [p["name"] for p in first] == ["warmup", "round-1"]
    assert main(["itool", "--db", db, "--iterations", "2", "--output", str(out), "--resume", *SMALL]) == 0
    store = Store.open(db)
    earlier, resumed = sorted((r for r in store.runs() if r.algorithm == "itool"), key=lambda r: r.created_at)
    assert resumed.dataset["resumed_after"] == "round-1" and resumed.status == "completed"
    [part] = [r for r in store.runs() if r.parent_id == resumed.id]  # only round 2 ran
    assert (part.algorithm, part.config["round"], part.base_model) == ("dpo", 2, str(out / "round-1" / "policy"))
    assert resumed.summary["ts_by_round"][:2] == [p["metrics"]["ts"] for p in first]
    assert [p["name"] for p in json.loads((out / itool.PROGRESS_FILE).read_text())["parts"]] == [
        "warmup", "round-1", "round-2"]


def test_resume_refuses_a_broken_progress_file_in_one_line(tmp_path, capsys):
    db, out = str(scripted_store(tmp_path / "s.db", n=4)), tmp_path / "out"
    out.mkdir()
    for text, reason in (('{"parts": [{"name": "warmup"}]}', "no 'policy' in a part"), ("{", "not JSON"),
                         ("[1]", "not the loop's list of parts")):
        (out / itool.PROGRESS_FILE).write_text(text)
        assert main(["itool", "--db", db, "--output", str(out), "--resume", *SMALL]) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"error: {out / itool.PROGRESS_FILE}: cannot resume from it ({reason}")
    (out / itool.PROGRESS_FILE).write_text(json.dumps({"parts": [
        {"name": "warmup", "policy": str(out / "warmup" / "policy"), "metrics": {}, "run_id": None}]}))
    assert main(["itool", "--db", db, "--output", str(out), "--resume", *SMALL]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.endswith(f"the policy of warmup, {out / 'warmup' / 'policy'}, is gone; cannot resume")


# -- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--iterations", "0"], "--iterations: must be at least 1"),
    (["--buffer-sampling", "random"], "--buffer-sampling: must be one of proportional, top, got 'random'"),
    (["--temperature", "0"], "--temperature: must be above 0"),
    (["--rejected", "near"], "--rejected: must be one of likely, worst, got 'near'"),
    (["--train-pairs", "some"], "--train-pairs: must be one of round, all, got 'some'"),
    (["--samples", "0"], "--samples: must be at least 1"),
    (["--search-iterations", "0"], "--search-iterations: must be at least 1"),
    (["--step-depth", "0"], "--step-depth: must be at least 1"),
    (["--exploration", "-1"], "--exploration: must be 0 or above"),
    (["--dpo-sft-weight", "-0.5"], "--dpo-sft-weight: must be 0 or above"),
    (["--dpo-max-steps", "0"], "--dpo-max-steps: must be -1 (the epochs decide) or at least 1"),
])
def test_bad_loop_options_are_one_line(argv, message, capsys):
    assert main(["itool", *argv]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]


def test_a_store_with_nothing_accepted_fails_the_loop_before_any_part(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    with Store.open(db) as store:
        store.create_run("train", "sft", "tiny", {})  # an earlier run, untouched
    assert main(["itool", "--db", db, *SMALL]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: the dataset is empty: no accepted trajectory"]
    with Store.open(db) as store:
        loop_run = next(r for r in store.runs() if r.algorithm == "itool")
        assert loop_run.status == "failed" and len(store.runs()) == 2 and store.pairs() == []


def test_score_needs_a_model_and_a_store(tmp_path, capsys):
    db = str(scripted_store(tmp_path / "s.db", n=4))
    assert main(["score", "--db", db]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --model: name the model whose perplexity is stored (an output directory, a hub id)"]
    assert main(["score", "--model", "tiny"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: --db: name the store whose trajectories are scored"]
    with Store.open(db) as store:
        assert store.scores("perplexity") == {} and [r.status for r in store.runs()] == ["failed"]


def test_score_refuses_an_unknown_review_filter_and_an_empty_selection(tmp_path, capsys):
    db = str(scripted_store(tmp_path / "s.db", n=4))
    assert main(["score", "--model", "tiny", "--db", db, "--review", "done"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --review: must be one of accepted, rejected, skipped, pending, disagreements, all, got 'done'")
    assert main(["score", "--model", "tiny", "--db", db, "--review", "skipped"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {db}: no skipped trajectory to score"
    with Store.open(db) as store:
        assert store.scores("perplexity") == {} and {r.status for r in store.runs()} == {"failed"}


# -- curator -------------------------------------------------------------------------------------------
def test_curator_train_itool_takes_the_loop_s_options_and_refuses_bad_ones_before_any_run(tmp_path):
    db = str(tmp_path / "c.db")
    Store.open(db).close()
    result = CliRunner().invoke(train, ["itool", "--iterations", "0"], obj={"db": db, "config": None})
    assert result.exit_code != 0 and "--iterations: must be at least 1" in result.output
    assert Store.open(db).runs() == []
    help_text = CliRunner().invoke(train, ["itool", "--help"], obj={"db": db, "config": None}).output
    for option in ("--iterations", "--buffer-size", "--samples", "--temperature", "--dpo-beta", "--curriculum"):
        assert option in help_text
    config = parse("itool", [])
    assert isinstance(config, IToolConfig) and config.curriculum and config.dpo_learning_rate == 5e-4
    assert parse("itool", ["--base-model", "org/model"]).dpo_learning_rate == 5e-6
    with pytest.raises(ArgumentError):
        parse("itool", ["--eval-limit", "0"])


def test_a_round_is_not_run_again_on_its_own(tmp_path):
    db = str(tmp_path / "c.db")
    with Store.open(db) as store:
        loop_id = store.create_run("train", "itool", "tiny", {})
        round_id = store.create_run("train", "dpo", "p", {"round": 1}, parent_id=loop_id)
        part = store.run(round_id)
    with pytest.raises(launcher.RunError, match=f"run {round_id} is part of run {loop_id}: run that one again"):
        launcher.rerun(db, part)


def test_t_with_itool_snapshots_the_rejected_trajectories_too(tmp_path, monkeypatch):
    """The loop also learns from accepted-over-rejected pairs (training.dpo), so its snapshot keeps both."""
    from curator.settings import TrainSettings

    db = str(scripted_store(tmp_path / "s.db", n=4))
    with Store.open(db) as store:
        bad = store.trajectory_ids(review="pending")[0]
        store.decide(bad, "reject")
    launched = []
    monkeypatch.setattr(launcher, "launch_detached", lambda db, kind, algorithm, args, dataset=None:
                        launched.append((algorithm, dataset["snapshot"])) or "run1")
    launcher.export_and_train(db, TrainSettings("itool"), MaskPolicy.of())
    [(algorithm, snapshot)] = launched
    with Store.open(snapshot["sqlite"]) as copy:
        assert algorithm == "itool" and copy.decision(bad) == "reject"
