"""`curator import`, `export` and `stats`: summaries, and one clear line for every kind of bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from store.formats import EXPORTERS, IMPORTERS

from conftest import REPO, fixture_path
from data_helpers import rich_store, run_cli, snapshot, write_jsonl

EVAL = "toolalpaca/eval_simulated.json"
TRAIN = "toolalpaca/train_format_sample.json"


@pytest.fixture
def db(tmp_path, capsys):
    """A store holding the ToolAlpaca training sample."""
    path = tmp_path / "store.db"
    assert run_cli(capsys, "--db", str(path), "import", str(fixture_path(TRAIN)))[0] == 0
    return str(path)


def test_import_prints_what_it_imported_and_where(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    code, out, _ = run_cli(capsys, "--db", db, "import", str(fixture_path(EVAL)), "--format", "toolalpaca")
    assert code == 0
    assert out == f"imported 10 toolsets (54 tools), 0 trajectories, 100 gold items from {fixture_path(EVAL)} " \
                  f"(toolalpaca) into {db}\n"


def test_a_toolalpaca_import_is_flagged_and_the_failed_calls_masked(tmp_path, capsys):
    db = str(tmp_path / "s.db")
    code, out, _ = run_cli(capsys, "--db", db, "import", str(fixture_path(TRAIN)))
    assert code == 0
    assert "3 trajectories flagged: 2 assistant messages tagged, 2 masked (weight 0)" in out
    from store import Store

    with Store.open(db) as store:
        masked = [(t.id, m.index) for t in store.iter_trajectories() for m in t.messages if m.weight == 0]
        codes = sorted(tag.code for t in store.iter_trajectories() for tag in t.tags)
    assert len(masked) == 2
    assert codes == ["param_hallucination", "tool_hallucination"]


def test_export_each_format_and_status(db, tmp_path, capsys):
    assert run_cli(capsys, "--db", db, "export", str(tmp_path / "a.jsonl"))[1] == \
        f"exported 0 trajectories (accepted) from {db} to {tmp_path / 'a.jsonl'} (jsonl)\n"
    for name, fmt in (("all.jsonl", "jsonl"), ("all.db", "sqlite"), ("all.sharegpt", "sharegpt")):
        code, out, _ = run_cli(capsys, "--db", db, "export", str(tmp_path / name), "--format", fmt, "--status", "all")
        assert code == 0 and out.startswith("exported 3 trajectories (all)") and out.endswith(f"({fmt})\n")
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 3
    assert run_cli(capsys, "--db", db, "export", str(tmp_path / "guessed.db"), "--status", "pending")[1].endswith(
        "(sqlite)\n")


def test_reimport_of_an_export_reports_the_skipped_ids(db, tmp_path, capsys):
    out = tmp_path / "all.jsonl"
    run_cli(capsys, "--db", db, "export", str(out), "--status", "all")
    code, text, _ = run_cli(capsys, "--db", db, "import", str(out))
    assert code == 0 and "0 trajectories (3 already in the store, skipped)" in text


def test_stats_as_json_and_as_a_table(db, capsys):
    code, out, _ = run_cli(capsys, "--db", db, "stats", "--json")
    counts = json.loads(out)
    assert code == 0
    assert counts["trajectories"] == 3 and counts["status"] == {"imported": 3}
    assert counts["decision"] == {"pending": 3} and counts["toolsets"] == {"Axolotl": 3}
    code, out, _ = run_cli(capsys, "--db", db, "stats")
    assert code == 0 and "3 trajectories" in out and "Axolotl" in out and "pending" in out


def test_stats_counts_decisions_and_effective_tags(tmp_path, capsys):
    rich_store(tmp_path / "rich.db").close()
    counts = json.loads(run_cli(capsys, "--db", str(tmp_path / "rich.db"), "stats", "--json")[1])
    assert counts["decision"] == {"accept": 2, "reject": 1, "pending": 1}
    assert counts["tags"] == {"content_error": 1, "other": 1}  # the un-tagged auto tag does not count
    assert counts["toolsets"] == {"time": 1, "weather": 3} and counts["gold_items"] == 2


def _bad_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"Name": "x",\n   "Documentation" "{}"}\n]\n')
    return path


def _edited_fixture(tmp_path, edit):
    records = json.loads(fixture_path(EVAL).read_text())
    edit(records)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(records))
    return path


def _with_a_taken_operation_id(records):
    spec = json.loads(records[4]["Documentation"])
    first = next(op for item in spec["paths"].values() for op in item.values() if isinstance(op, dict))
    spec["paths"]["/createRole"]["post"]["operationId"] = first["operationId"]
    records[4]["Documentation"] = json.dumps(spec)


BAD = {
    "missing file": (lambda p: ["import", str(p / "nope.json")], ["nope.json: no such file"]),
    "invalid JSON": (lambda p: ["import", str(_bad_json(p))],
                     ["bad.json:3: invalid JSON at column 20: Expecting ':' delimiter"]),
    "not OpenAPI": (lambda p: ["import", str(_edited_fixture(p, lambda r: r[0].update(Documentation="[]")))],
                    ["edited.json: record 1 (Axolotl): Documentation: not an OpenAPI spec"]),
    "operationId taken": (lambda p: ["import", str(_edited_fixture(p, _with_a_taken_operation_id))],
                          ["edited.json: record 5 (Auth0), POST /createRole: Documentation: tool name "
                           "'authenticateUser' is also used by POST /authenticateUser"]),
    "JSONL line not an object": (
        lambda p: ["import", str(write_jsonl(p / "x.jsonl", [{"messages": [{"role": "user", "content": "hi"}]},
                                                             [1, 2]]))],
        ["x.jsonl:2: expected a JSON object, got array"]),
    "unknown import format": (lambda p: ["import", str(fixture_path(TRAIN)), "--format", "xml"],
                              ["--format 'xml': unknown; choose one of toolalpaca, jsonl"]),
    "unknown export format": (lambda p: ["export", str(p / "o.xml"), "--format", "xml"],
                              ["--format 'xml': unknown; choose one of jsonl, sqlite, sharegpt"]),
    "format not guessable": (lambda p: ["export", str(p / "o.xml")], ["o.xml: cannot tell the format", "--format"]),
    "unknown status": (lambda p: ["export", str(p / "o.jsonl"), "--status", "maybe"], ["--status 'maybe': unknown"]),
    "unwritable output": (lambda p: ["export", str(p / "store.db" / "out.jsonl")],
                          ["store.db/out.jsonl: cannot write: Not a directory"]),
    "output is the store": (lambda p: ["export", str(p / "store.db"), "--format", "sqlite"],
                            ["store.db: is the store itself"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_changes_nothing(db, tmp_path, capsys, case):
    make_args, expected = BAD[case]
    args = make_args(tmp_path)
    before = snapshot(tmp_path / "store.db")
    code, out, err = run_cli(capsys, "--db", db, *args)
    assert code != 0 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    for part in expected:
        assert part in err
    assert snapshot(tmp_path / "store.db") == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".jsonl", ".xml", ".part")) == (
        ["x.jsonl"] if case == "JSONL line not an object" else [])


def test_export_or_stats_of_a_missing_store_does_not_create_one(tmp_path, capsys):
    for args in (["export", str(tmp_path / "o.jsonl")], ["stats"]):
        code, _, err = run_cli(capsys, "--db", str(tmp_path / "none.db"), *args)
        assert code == 1 and err == f"error: {tmp_path / 'none.db'}: no such store\n"
    assert list(tmp_path.iterdir()) == []


def test_a_failed_first_import_leaves_no_store_behind(tmp_path, capsys):
    bad = write_jsonl(tmp_path / "x.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}, [1, 2]])
    code, _, err = run_cli(capsys, "--db", str(tmp_path / "new.db"), "import", str(bad))
    assert code == 1 and "x.jsonl:2: expected a JSON object" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jsonl"]


def test_the_console_script_reports_bad_input_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "curator", "--db", str(tmp_path / "s.db"), "import", str(tmp_path / "gone.jsonl")],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == f"error: {tmp_path / 'gone.jsonl'}: no such file\n" and result.stdout == ""
    assert not (tmp_path / "s.db").exists()


def test_help_documents_formats_and_reimport(capsys):
    code, out, _ = run_cli(capsys, "import", "--help")
    assert code == 0 and all(f in out for f in IMPORTERS) and "a file twice adds nothing" in " ".join(out.split())
    code, out, _ = run_cli(capsys, "export", "--help")
    assert code == 0 and all(f in out for f in EXPORTERS) and "accepted]" in out
