"""A correction is training data twice: what the exports, SFT and DPO make of an annotator's `e` and `n`.

The annotator fixes traj-03's call (the forecast tool asked about yesterday: the history tool is right) and
notes why; every way the data leaves the store must then train the fix, never the call that was wrong.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from curator.cli import main
from store import Correction, Store
from store.formats.jsonl import export_jsonl, import_jsonl
from store.formats.sharegpt import export_sharegpt
from data_helpers import export_lines
from tui_fixtures import call, make_store

ORIGINAL = [call("c1", "getWeatherForecast", {"city": "Oslo"})]
FIXED = [call("c1", "getWeatherHistory", {"city": "Oslo", "date": "2025-12-31"})]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """traj-03 accepted with its call corrected and two notes; traj-04 accepted and untouched."""
    store = make_store(tmp_path / "store.db")
    store.add_correction(Correction("traj-03", 2, [call("c1", "getWeatherHistory", {"city": "Oslo"})], "ann"))
    store.add_correction(Correction("traj-03", 2, FIXED, "ann", note="yesterday is history"))  # fixed twice
    store.add_note("traj-03", "asked about the past", 2, annotator="ann")
    store.add_note("traj-03", "good example of a wrong tool", annotator="bob")
    store.decide("traj-03", "accept")
    store.decide("traj-04", "accept")
    yield store
    store.close()


def lines(path: Path) -> list[dict[str, Any]]:
    return export_lines(path)


@pytest.fixture
def exported(store: Store, tmp_path: Path) -> Path:
    out = tmp_path / "accepted.jsonl"
    export_jsonl(store, out)
    return out


def test_the_jsonl_line_holds_the_correction_and_notes_and_never_trains_the_original(exported: Path) -> None:
    by_id = {r["id"]: r for r in lines(exported)}
    assert list(by_id) == ["traj-03", "traj-03#correction-2", "traj-04"]
    record = by_id["traj-03"]
    assert record["messages"][2]["tool_calls"] == ORIGINAL and record["messages"][2]["weight"] == 0
    [correction] = record["meta"]["corrections"]  # the latest fix of message 2 only
    assert {k: v for k, v in correction.items() if k != "created_at"} == {
        "message": 2, "original": ORIGINAL, "tool_calls": FIXED, "annotator": "ann", "note": "yesterday is history"}
    assert [(n["message"], n["text"], n["annotator"]) for n in record["meta"]["notes"]] == [
        (2, "asked about the past", "ann"), (None, "good example of a wrong tool", "bob")]
    untouched = by_id["traj-04"]["meta"]
    assert "corrections" not in untouched and "notes" not in untouched  # other lines keep their bytes


def test_the_corrected_call_follows_as_an_example_of_its_own(exported: Path) -> None:
    record, derived = lines(exported)[:2]
    assert derived["messages"][:2] == record["messages"][:2]  # the context: system and user
    assert derived["messages"][2] == {"role": "assistant", "content": None, "tool_calls": FIXED, "weight": 1}
    assert len(derived["messages"]) == 3 and derived["tools"] == record["tools"]
    assert derived["meta"]["derived_from"] == "traj-03" and derived["meta"]["correction"] == 2
    assert (derived["meta"]["source"], derived["meta"]["decision"]) == ("correction", "accept")


def test_earlier_assistant_messages_of_an_example_do_not_train_twice(tmp_path: Path) -> None:
    with make_store(tmp_path / "s.db") as store:
        store.add_correction(Correction("traj-01", 4, [call("c2", "getWeatherForecast", {"city": "Paris"})], "ann"))
        store.set_weight("traj-01", 2, 1)  # even a message a human set to train, before the fix
        [_, derived] = [r for r in store.iter_records("all") if r["id"].startswith("traj-01")]
    assert [(m["role"], m.get("weight")) for m in derived["messages"]] == [
        ("system", None), ("user", None), ("assistant", 0), ("tool", None), ("assistant", 1)]
    assert "weight_source" not in derived["messages"][2]


def test_exporters_can_leave_the_examples_out(store: Store) -> None:
    assert [r["id"] for r in store.iter_records(derived=False)] == ["traj-03", "traj-04"]


def test_datasets_loads_the_export_as_it_is(exported: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = datasets.load_dataset("json", data_files=str(exported), split="train")
    assert rows["id"] == ["traj-03", "traj-03#correction-2", "traj-04"]
    assert [m["weight"] for m in rows[1]["messages"] if m["role"] == "assistant"] == [1]


def test_the_cli_counts_the_examples_apart_from_the_trajectories(store: Store, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.jsonl"
    main(["--db", store.path, "export", str(out)])
    assert capsys.readouterr().out.startswith("exported 2 trajectories and 1 correction example (accepted)")


def test_sharegpt_holds_the_corrected_call_not_the_original(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "sharegpt.jsonl"
    assert export_sharegpt(store, out).trajectories == 2  # no derived lines: the fix is in place
    first = lines(out)[0]
    assert json.loads(first["conversations"][1]["value"]) == {
        "name": "getWeatherHistory", "arguments": {"city": "Oslo", "date": "2025-12-31"}}
    assert "getWeatherForecast" not in json.dumps([t["value"] for t in first["conversations"]])


def test_import_restores_corrections_and_notes_and_skips_the_examples(store: Store, exported: Path,
                                                                      tmp_path: Path, capsys) -> None:
    with Store.open(tmp_path / "copy.db") as copy:
        summary = import_jsonl(copy, exported)
        assert (summary.trajectories, summary.derived) == (2, 1)
        assert "2 trajectories (1 derived correction example skipped)" in summary.describe()
        assert _without_ids(copy.corrections()) == _without_ids(store.corrections())
        assert _without_ids(copy.notes("traj-03")) == _without_ids(store.notes("traj-03"))
        again = tmp_path / "again.jsonl"
        export_jsonl(copy, again)
    assert again.read_bytes() == exported.read_bytes()


def _without_ids(rows: list[Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in vars(r).items() if k != "id"} for r in rows]


def test_sft_trains_the_fixed_arguments_and_not_the_original_call(store: Store, exported: Path) -> None:
    pytest.importorskip("torch")
    from training.data import Encoder, load_records, sft_records
    from training.tiny import TinyConfig, build_tokenizer

    records = sft_records(load_records(db=store.path))
    assert records == load_records(str(exported))  # the store and its export train the same
    tokenizer = build_tokenizer(TinyConfig())
    encoder = Encoder(tokenizer, w_max=1)
    examples = {r["id"]: encoder.encode(r) for r in records}
    trained = {i: tokenizer.decode(e.input_ids[e.weights > 0]) for i, e in examples.items()}
    assert trained["traj-03"] == ""  # its one assistant message is the wrong call: nothing of it trains
    fix = trained["traj-03#correction-2"]
    assert "getWeatherHistory" in fix and "2025-12-31" in fix and "getWeatherForecast" not in fix


def test_dpo_pairs_come_from_the_jsonl_export_as_from_the_store(store: Store, exported: Path) -> None:
    pytest.importorskip("trl")
    from training import dpo

    [pair] = dpo.collect_pairs(str(exported), None)
    assert pair.source == "correction" and [m["role"] for m in pair.context] == ["system", "user"]
    assert pair.chosen["tool_calls"] == FIXED and pair.rejected["tool_calls"] == ORIGINAL
    assert [vars(p) for p in dpo.collect_pairs(None, store.path)] == [vars(pair)]


@pytest.mark.slow
def test_an_sft_run_on_the_store_counts_the_examples_apart(store: Store, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from training.__main__ import main as train

    assert train(["sft", "--db", store.path, "--output", str(tmp_path / "sft"), "--max-steps", "1"]) == 0
    [run] = store.runs()
    # traj-03 alone trains nothing (its one call is the corrected one), its example and traj-04 do
    assert (run.status, run.dataset["trajectories"], run.dataset["correction_examples"]) == ("completed", 1, 1)
