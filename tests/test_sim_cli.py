"""`curator simulate` and `curator toolset` from the command line."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from curator.cli import cli
from fake_openai import FakeOpenAI
from store import Store
from store.errors import InputError


def invoke(db: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--db", str(db), *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_simulate_the_scripted_default_and_store_gold(tmp_path):
    db = tmp_path / "c.db"
    code, out, err = invoke(db, "simulate", "--toolset", "everyday", "-n", "12", "--seed", "4", "--gold", "7")
    assert code == 0, err
    assert "12 complete, 0 failed of 12 requested" in out
    assert "scripted backend, model scripted-v1" in err.replace("\n", " ")
    with Store.open(db) as store:
        assert len(store.trajectory_ids(status="complete")) == 12
        assert len(list(store.gold_items("everyday"))) == 7


def test_simulate_an_openapi_file_against_a_server(tmp_path, monkeypatch):
    spec = tmp_path / "things.json"
    spec.write_text(json.dumps({
        "openapi": "3.0.0", "info": {"title": "Things", "version": "1"},
        "paths": {"/things": {"get": {"operationId": "searchThings", "description": "Search things.",
                                      "parameters": [{"name": "query", "in": "query", "required": True,
                                                      "schema": {"type": "string"}}],
                                      "responses": {"200": {"description": "OK"}}}}}}))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-secret-never-printed")
    with FakeOpenAI() as server:
        code, out, err = invoke(tmp_path / "c.db", "simulate", "--openapi", str(spec), "-n", "3", "--backend",
                                "openai", "--base-url", server.base_url, "--model", "m")
    assert code == 0, err
    assert "3 complete" in out and "sk-cli-secret" not in out + err
    with Store.open(tmp_path / "c.db") as store:
        assert [t.name for t in store.toolset("things").tools] == ["searchThings"]


def test_user_errors_are_one_line(tmp_path):
    for args, message in [
        (("simulate", "--toolset", "nope"), "no toolset named 'nope'"),
        (("simulate", "--backend", "openai", "-n", "1"), "needs a model name"),
        (("simulate", "--toolset", "weather", "--openapi", "x.json"), "give one of"),
        (("toolset", "generate"), "give a NAME"),
    ]:
        result = subprocess.run([sys.executable, "-m", "curator", "--db", str(tmp_path / "e.db"), *args],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_toolset_list_show_add_and_generate(tmp_path):
    db = tmp_path / "t.db"
    functions = tmp_path / "fns.json"
    functions.write_text(json.dumps([{"name": "ping", "description": "Ping a host.", "parameters": {
        "type": "object", "properties": {"host": {"type": "string"}}, "required": ["host"]}}]))
    assert invoke(db, "toolset", "add", str(functions), "--name", "net")[0] == 0
    apis = tmp_path / "apis.json"
    apis.write_text(json.dumps([{"Name": "Cat Facts", "Description": "Daily cat facts"},
                                {"Name": "Open Meteo", "Description": "Weather forecasts"}]))
    code, out, _ = invoke(db, "toolset", "generate", "--from", str(apis))
    assert code == 0 and "Stored 2 of 2 toolsets" in out
    code, out, _ = invoke(db, "toolset", "list")
    assert code == 0 and all(name in out for name in ("net", "Cat Facts", "Open Meteo", "weather"))
    code, out, _ = invoke(db, "toolset", "show", "weather")
    assert code == 0 and "getWeatherAlerts" in out
    code, out, err = invoke(db, "simulate", "--toolset", "Cat Facts", "-n", "4")
    assert code == 0 and "4 complete" in out, err


def test_ctrl_c_stops_cleanly_and_says_what_was_kept(tmp_path):
    db = tmp_path / "i.db"
    process = subprocess.Popen([sys.executable, "-m", "curator", "--db", str(db), "simulate", "-n", "200000",
                                "--concurrency", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.3)
            if db.exists():
                with Store.open(db) as store:
                    if len(store.trajectory_ids(status="complete")) >= 20:
                        break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Interrupted: kept" in err and "complete" in out
    with Store.open(db) as store:
        assert not store.trajectory_ids(status="running")
        assert store.trajectory_ids(status="complete")


@pytest.mark.parametrize("flag", ["--error-rate", "--instability-rate"])
def test_rates_are_checked(tmp_path, flag):
    code, _, err = invoke(tmp_path / "r.db", "simulate", flag, "1.5")
    assert code == 2 and "1.5" in err


def test_error_mix_plants_only_the_kinds_named(tmp_path):
    db = tmp_path / "m.db"
    code, _, err = invoke(db, "simulate", "-n", "20", "--error-rate", "1", "--error-mix", "param_missing=1,parse_error")
    assert code == 0, err
    with Store.open(db) as store:
        kinds = {m["kind"] for t in store.iter_trajectories() for m in t.meta["plan"]["mistakes"] if m}
    assert kinds == {"param_missing", "parse_error"}
    with pytest.raises(InputError, match="unknown error kind"):
        invoke(db, "simulate", "--error-mix", "typo=1")
