"""The real `curator` in a pseudo-terminal: decide by key, then kill -9; nothing shown as done is lost."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pexpect
from tui_fixtures import make_store

from store import Store

CURATOR = Path(sys.executable).with_name("curator")


def test_curator_review_in_a_terminal(tmp_path: Path) -> None:
    db = tmp_path / "pty.db"
    make_store(db).close()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "130", "LINES": "40"}
    child = pexpect.spawn(str(CURATOR), ["--db", str(db), "review"], env=env, dimensions=(40, 130),
                          cwd=str(tmp_path), timeout=60)
    try:
        child.expect("traj-01")  # the first pending trajectory is on screen
        child.send("a")
        child.expect("traj-02")  # accepted: the next one is shown
        child.send("x")
        child.expect("traj-03")
        child.send("u")  # undo the reject: traj-02 comes back
        child.expect("Undid the decision on traj-02")
        child.kill(signal.SIGKILL)  # no clean exit, no flush: only what was committed survives
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.signalstatus == signal.SIGKILL
    with Store.open(db) as store:
        assert store.decision("traj-01") == "accept"
        assert store.decision("traj-02") is None
        assert [r[0] for r in store.conn.execute("SELECT decision FROM reviews ORDER BY id")] == [
            "accept", "reject", "undo"]
