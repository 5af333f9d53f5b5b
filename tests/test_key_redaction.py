"""The API key never leaks: not into the store, an export, a run's row, stdout or stderr — even when the server
echoes it (a 400 ``invalid key Bearer sk-…``, a 500 body, a completion's content, the requests it writes)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI, Step
from store import Store
from store import redaction
from store.redaction import MASK, PREFIX, redact, redact_value, register_secret

REPO = Path(__file__).resolve().parents[1]
CANARY = "sk-canary-0123456789abcdefghijklmnopqrstuv"
KEY_ENV = "CURATOR_TEST_CANARY_KEY"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(redaction, "_secrets", set())
    register_secret(CANARY)
    return CANARY


def test_redact_replaces_the_key_and_any_cut_off_start_of_it(secret: str) -> None:
    assert redact(f"invalid key Bearer {secret}, again {secret}!") == f"invalid key Bearer {MASK}, again {MASK}!"
    assert redact(f"key {secret[:20]}…") == f"key {MASK}…"
    assert redact("sk-canary") == "sk-canary"  # fewer than PREFIX characters of it: not the key
    assert redact_value({"content": secret, "tool_calls": [{"arguments": f'{{"k": "{secret}"}}'}]}) == {
        "content": MASK, "tool_calls": [{"arguments": f'{{"k": "{MASK}"}}'}]}


def test_short_or_empty_values_are_not_treated_as_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redaction, "_secrets", set())
    for value in (None, "", "abc", "  x  "):
        register_secret(value)
    assert redaction._secrets == set() and redact("abc") == "abc"


def test_run_rows_never_hold_the_key(secret: str, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with Store.open(db) as store:
        run_id = store.create_run("eval", "eval", "m", {"note": f"Bearer {secret}"})
        store.update_run(run_id, status="failed", error=f"HTTP 401: bad key {secret}",
                         summary={"said": secret}, config={"echo": secret})
        assert MASK in store.run(run_id).error
        store.make_self_contained()
    assert CANARY.encode() not in db.read_bytes()


def store_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("s.db"))


@pytest.mark.slow
def test_a_server_echoing_the_key_leaks_it_nowhere(tmp_path: Path) -> None:
    config = tmp_path / "curator.toml"
    config.write_text("[simulate]\nmax_retries = 1\nflag = true\n")
    db = tmp_path / "s.db"
    env = {**os.environ, "PYTHONPATH": str(REPO), KEY_ENV: CANARY}

    def curator(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "curator", "--db", str(db), "--config", str(config), *args],
                              capture_output=True, text=True, timeout=120, env=env)

    with FakeOpenAI() as server:
        server.script(Step.answer(f'["Request one", "Request two, key {CANARY}", "Request three"]'), role="writer")
        server.script(Step.error(400, message=f"invalid key Bearer {CANARY}"),
                      Step.error(500, message=f"upstream rejected Bearer {CANARY}"),
                      Step.error(500, message=f"upstream rejected Bearer {CANARY[:30]}"),
                      Step.answer(f"Done. (Your key is {CANARY}.)"), role="assistant")
        simulated = curator("simulate", "--backend", "openai", "--base-url", server.base_url, "--model", "m",
                            "--api-key-env", KEY_ENV, "-n", "3", "--concurrency", "1", "--timeout", "5")
        server.script(Step.error(401, message=f"Incorrect API key provided: {CANARY}"), role="assistant")
        fatal = curator("simulate", "--backend", "openai", "--base-url", server.base_url, "--model", "m",
                        "--api-key-env", KEY_ENV, "-n", "1", "--timeout", "5")
        sent = [r.headers.get("authorization") for r in server.requests]
    assert set(sent) == {f"Bearer {CANARY}"}  # the key was really used
    assert simulated.returncode == 0, simulated.stderr
    assert fatal.returncode == 1 and f"HTTP 401: Incorrect API key provided: {MASK}" in fatal.stderr
    exported = curator("export", str(tmp_path / "all.jsonl"), "--status", "all")
    assert exported.returncode == 0
    with Store.open(db) as store:
        trajectories = {t.instruction: t for t in store.iter_trajectories()}
    reasons = sorted(t.reason or "" for t in trajectories.values())
    assert any(f"HTTP 400: invalid key Bearer {MASK}" in r for r in reasons)
    assert any(f"HTTP 500: upstream rejected Bearer {MASK}" in r for r in reasons)
    assert f"Request two, key {MASK}" in trajectories
    assert any(m.content == f"Done. (Your key is {MASK}.)" for t in trajectories.values() for m in t.messages)
    for result in (simulated, fatal, exported):
        assert CANARY[:PREFIX] not in result.stdout + result.stderr
    assert CANARY[:PREFIX].encode() not in store_bytes(tmp_path)
    assert CANARY[:PREFIX] not in (tmp_path / "all.jsonl").read_text()
