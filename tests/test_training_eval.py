"""Evaluation: TS / PI / CF and error rates on a hand-made set, through a local model and an endpoint."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

pytest.importorskip("torch")

from store import Store  # noqa: E402
from store.toolcalls import ToolCall  # noqa: E402
from training.__main__ import main  # noqa: E402
from training.evaluate import PREDICTIONS_FILE, Item, gold_items, score  # noqa: E402
from training.templates import Generation  # noqa: E402
from conftest import REPO  # noqa: E402
from training_fixtures import TOOLS, records, write_jsonl  # noqa: E402


GOLD = ToolCall("getWeatherForecast", {"city": "Oslo", "days": 2})
CONTEXT = [{"role": "user", "content": "Weather in Oslo for two days?"}]

# what the model says → (ts, pi, cf, parse_error, tool_hallucination, param_hallucination, no_call)
CASES = [
    (Generation("", [GOLD]), (1, 1, 1, 0, 0, 0, 0)),
    (Generation("", [ToolCall("getWeatherForecast", {"city": "Oslo", "days": 3})]), (1, 1, 0, 0, 0, 0, 0)),
    (Generation("", [ToolCall("getWeatherForecast", {"city": "Oslo"})]), (1, 0, 0, 0, 0, 0, 0)),
    (Generation("", [ToolCall("getWeatherForecast", {"city": "Oslo", "days": 2, "units": "C"})]), (1, 0, 0, 0, 0, 1, 0)),
    (Generation("", [ToolCall("getWeatherHistory", {"city": "Oslo", "date": "x"})]), (0, 0, 0, 0, 0, 0, 0)),
    (Generation("", [ToolCall("getMoonPhase", {})]), (0, 0, 0, 0, 1, 0, 0)),
    (Generation("", error="call is not valid JSON"), (0, 0, 0, 1, 0, 0, 0)),
    (Generation("Sunny, probably."), (0, 0, 0, 0, 0, 0, 1)),
]


def test_metrics_on_a_hand_made_set():
    items = [Item(str(i), TOOLS, CONTEXT, [GOLD]) for i in range(len(CASES))]
    metrics, rows = score(items, [g for g, _ in CASES])
    keys = ("ts", "pi", "cf", "parse_error", "tool_hallucination", "param_hallucination", "no_call")
    for i, key in enumerate(keys):
        assert metrics[key] == pytest.approx(sum(e[i] for _, e in CASES) / len(CASES)), key
        assert [int(r[key]) for r in rows] == [e[i] for _, e in CASES], key
    assert metrics["n"] == 8
    assert [r["reward"] for r in rows] == [1.0, -0.25, -0.5, -0.8, -1.5, -2.0, -2.0, -2.0]


def test_gold_items_from_trajectories_and_from_the_store(tmp_path: Path):
    items = gold_items(str(write_jsonl(tmp_path / "d.jsonl", records(3))), None)
    assert len(items) == 3 and all(i.messages[-1]["role"] in {"user", "tool"} for i in items)
    db = tmp_path / "c.db"
    from store import GoldItem, Tool, Toolset

    store = Store.open(db)
    store.add_toolset(Toolset("weather", [Tool.from_openai(t) for t in TOOLS]))
    store.add_gold([GoldItem("g1", "weather", [], CONTEXT, [GOLD])])
    [item] = gold_items(None, str(db))
    assert item.calls == [GOLD] and len(item.tools) == len(TOOLS)


class _FakeEndpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint answering from a script keyed by the user's request."""

    script: dict[str, dict] = {}
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"body": body, "auth": self.headers.get("Authorization")})
        message = self.script[body["messages"][-1]["content"]]
        reply = {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", **message}}],
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_endpoint_eval_with_the_openai_client_is_stored_as_a_run(tmp_path: Path, monkeypatch, capsys):
    def call(name, args):
        return {"content": None, "tool_calls": [
            {"id": "1", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}

    _FakeEndpoint.script = {
        "q1": call("getWeatherForecast", {"city": "Oslo", "days": 2}),
        "q2": call("getWeatherForecast", {"city": "Oslo", "days": 9}),
        "q3": {"content": '<tool_call>\n{"name": "getTime", "arguments": {"city": "Oslo"}}\n</tool_call>'},
        "q4": {"content": "<tool_call>\n{broken\n</tool_call>"},
    }
    gold = [{"id": f"g{i}", "tools": TOOLS, "messages": [{"role": "user", "content": f"q{i}"}],
             "calls": [{"name": "getWeatherForecast", "arguments": {"city": "Oslo", "days": 2}}]} for i in range(1, 5)]
    data = write_jsonl(tmp_path / "gold.jsonl", gold)
    server = HTTPServer(("127.0.0.1", 0), _FakeEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("MY_KEY", "sk-test-secret")
    db = str(tmp_path / "c.db")
    try:
        assert main(["eval", "--data", str(data), "--db", db, "--output", str(tmp_path / "ev"), "--model", "gpt-x",
                     "--base-url", f"http://127.0.0.1:{server.server_port}/v1", "--api-key-env", "MY_KEY"]) == 0
    finally:
        server.shutdown()
    out = capsys.readouterr().out
    assert "TS (tool)" in out and "50.0%" in out
    assert _FakeEndpoint.seen[0]["auth"] == "Bearer sk-test-secret"
    assert _FakeEndpoint.seen[0]["body"]["tools"][0]["function"]["name"] == "getWeatherForecast"
    run = Store.open(db).runs()[0]
    m = run.summary["metrics"]
    assert (run.kind, run.status) == ("eval", "completed")
    assert (m["ts"], m["pi"], m["cf"], m["parse_error"]) == (0.5, 0.5, 0.25, 0.25)
    assert "sk-test-secret" not in json.dumps(run.config) + Path(db).read_bytes().decode("latin-1")
    assert len((tmp_path / "ev" / PREDICTIONS_FILE).read_text().splitlines()) == 4


@pytest.mark.slow
def test_local_eval_of_a_trained_adapter(tmp_path: Path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", records(4))
    adapter = tmp_path / "sft"
    assert main(["sft", "--data", str(data), "--output", str(adapter), "--max-steps", "1", "--threads", "1"]) == 0
    (tmp_path / "moved").mkdir()
    moved = adapter.rename(tmp_path / "moved" / "sft")  # the adapter directory is self-contained
    db = str(tmp_path / "c.db")
    assert main(["eval", "--data", str(data), "--db", db, "--model", str(moved), "--output", str(tmp_path / "ev"),
                 "--max-new-tokens", "8", "--threads", "1"]) == 0
    run = Store.open(db).runs()[0]
    assert run.summary["metrics"]["n"] == 4
    assert "items" in capsys.readouterr().out


def test_eval_reports_each_imported_benchmark_on_its_own(tmp_path: Path, capsys):
    """Gold items imported from real xLAM and BFCL records are scored per source; --source keeps one."""
    from data_helpers import run_cli

    db = str(tmp_path / "bench.db")
    for path in ("tests/data/xlam/xlam_examples.json", "tests/data/bfcl/BFCL_v3_simple.json"):
        assert run_cli(capsys, "--db", db, "import", str(REPO / path))[0] == 0
    with Store.open(db) as store:
        gold = list(store.gold_items())
    sources = {g.source for g in gold}
    assert sources == {"xlam", "bfcl"}
    # the endpoint answers every xLAM item with its gold call and every BFCL item without a call
    _FakeEndpoint.script = {
        g.messages[-1]["content"]: (
            {"content": None, "tool_calls": [{"id": "1", "type": "function", "function": {
                "name": g.calls[0].name, "arguments": json.dumps(g.calls[0].arguments)}}]}
            if g.source == "xlam" else {"content": "I cannot help with that."})
        for g in gold
    }
    server = HTTPServer(("127.0.0.1", 0), _FakeEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = ["--model", "gpt-x", "--base-url", f"http://127.0.0.1:{server.server_port}/v1"]
    capsys.readouterr()
    try:
        assert main(["eval", "--db", db, "--output", str(tmp_path / "ev"), *endpoint]) == 0
        out = capsys.readouterr().out
        assert main(["eval", "--db", db, "--output", str(tmp_path / "ev2"), "--source", "bfcl", *endpoint]) == 0
        only = capsys.readouterr().out
        assert main(["eval", "--db", db, "--output", str(tmp_path / "ev3"), "--source", "toolace", *endpoint]) == 2
        [refusal] = capsys.readouterr().err.strip().splitlines()
    finally:
        server.shutdown()
    header = out.splitlines()[1].split()
    assert header == ["all", "xlam", "bfcl"]
    cf = next(line for line in out.splitlines() if line.startswith("CF")).split()[-3:]
    n_xlam = sum(g.source == "xlam" for g in gold)
    assert cf == [f"{n_xlam / len(gold):.1%}", "100.0%", "0.0%"]
    run = [r for r in Store.open(db).runs() if r.status == "completed"][-1]  # the first: newest come first
    assert run.summary["by_source"]["xlam"]["cf"] == 1.0 and run.summary["by_source"]["bfcl"]["no_call"] == 1.0
    assert only.splitlines()[1].split() == ["bfcl"]
    assert refusal.endswith("no gold items from source 'toolace'; the sources here are: bfcl, xlam")
