"""Hard stops: kill -9 (or SIGTERM, or a full disk) in the middle of simulate, train, flag and export.

Afterwards nothing is ``running`` or ``queued`` that is not, no temporary file is left behind, the
store passes ``PRAGMA integrity_check``, and the next command says in one line what was
interrupted. A live writer in another process is never touched. Each kill test repeats a few
times with a different moment of death, each bounded in time.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from store import Message, Store, Trajectory, processes
from store.flagging import flag_all
from store.formats.files import remove_stale_parts
from store.leases import STALE_S
from store.schema import MIGRATIONS
from store.taxonomy import MaskPolicy

REPO = Path(__file__).resolve().parents[1]
#: Longest a test waits for a process to reach the moment it is killed at.
WAIT_S = 60.0


def curator(db: Path, *args: str, **popen: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "curator", "--db", str(db), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **popen)  # type: ignore[call-overload]


def finished(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = curator(db, *args)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended first: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def kill9(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.communicate(timeout=30)


def count(db: Path, where: str = "1") -> int:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(f"SELECT count(*) FROM trajectories WHERE {where}").fetchone()[0]
    finally:
        conn.close()


def running_now(db: Path, at_least: int = 1) -> bool:
    """The store holds a running trajectory, and ``at_least`` trajectories (False while it is being made)."""
    try:
        return db.exists() and count(db, "status = 'running'") > 0 and count(db) >= at_least
    except sqlite3.OperationalError:  # the file exists, its schema not yet
        return False


def integrity_ok(path: Path) -> bool:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def trajectory(i: int, feedback: str = "HTTP 503 Service Unavailable") -> Trajectory:
    call = {"id": "c1", "type": "function", "function": {"name": "getWeatherForecast", "arguments": '{"city": "Oslo"}'}}
    return Trajectory(id=f"t{i:05d}", toolset=None, instruction=f"Weather {i}?", status="complete", messages=[
        Message("user", f"Weather {i}?"), Message("assistant", None, tool_calls=[call]),
        Message("tool", feedback, tool_call_id="c1"), Message("assistant", "Sunny."),
    ])


# -- leases: whose running trajectories are whose --------------------------------------------------------
def test_a_dead_writers_trajectories_are_reaped_and_a_live_ones_kept(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Store.open(db) as store:
        mine = store.new_trajectory("weather", "live")  # this process: alive
        orphan = store.new_trajectory("weather", "orphan")
        gone = processes.ProcessId(processes.host(), dead_pid(), "boot+1")
        reused = processes.ProcessId(processes.host(), os.getpid(), "boot+0")  # my pid, another start time
        for victim, process in ((orphan, gone), (store.new_trajectory("weather", "reused"), reused)):
            store.conn.execute("UPDATE trajectories SET lease_id = ? WHERE id = ?", (store.lease(process), victim))
        store.conn.commit()
        reaped = store.reap_interrupted()
        assert sorted((r.pid, r.trajectories) for r in reaped) == sorted([(gone.pid, 1), (os.getpid(), 1)])
        assert reaped[0].describe().endswith(f"left running by an interrupted simulation (pid {reaped[0].pid}) "
                                             "marked failed")
        assert store.trajectory_status(mine) == "running"
        assert store.trajectory(orphan).status == "failed"
        assert store.trajectory(orphan).reason.startswith("interrupted: its simulation")
        assert store.reap_interrupted() == []
        assert [r[0] for r in store.conn.execute("SELECT id FROM leases")] == [store.lease()]


def test_another_hosts_writer_is_dead_only_when_its_heartbeat_is_stale(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        ids = [store.new_trajectory("weather", f"remote {i}") for i in range(2)]
        for i, (trajectory_id, age) in enumerate(zip(ids, (10, STALE_S + 10))):
            lease = store.lease(processes.ProcessId("elsewhere", 4242 + i, "boot+1"))
            store.conn.execute("UPDATE leases SET heartbeat_at = ? WHERE id = ?", (time.time() - age, lease))
            store.conn.execute("UPDATE trajectories SET lease_id = ? WHERE id = ?", (lease, trajectory_id))
        store.conn.commit()
        [reaped] = store.reap_interrupted()
        assert (reaped.pid, reaped.host) == (4243, "elsewhere") and "on elsewhere" in reaped.describe()
        assert [store.trajectory_status(i) for i in ids] == ["running", "failed"]


def test_running_rows_from_before_leases_are_reaped_after_the_migration(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    for number, script in enumerate(MIGRATIONS[:3]):
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {number + 1}")
    conn.execute("INSERT INTO trajectories (id, instruction, status, created_at, updated_at) "
                 "VALUES ('old', 'x', 'running', '2025', '2025')")
    conn.commit()
    conn.close()
    result = finished(db, "stats", "--json")
    assert result.returncode == 0
    assert result.stderr.strip() == f"{db}: 1 trajectory left running with no simulation writing them marked failed"
    assert count(db, "status = 'running'") == 0


# -- simulate ------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_kill_9_during_simulate(tmp_path: Path, attempt: int) -> None:
    db = tmp_path / "s.db"
    sim = curator(db, "simulate", "-n", "100000", "--concurrency", "4", "--seed", str(attempt))
    wait_for(lambda: running_now(db, 3 * attempt), sim)
    kill9(sim)
    left = count(db, "status = 'running'")
    assert left > 0
    result = finished(db, "stats")
    noun = "trajectory" if left == 1 else "trajectories"
    assert f"{left} {noun} left running by an interrupted simulation (pid {sim.pid}) marked failed" in result.stderr
    assert count(db, "status = 'running'") == 0
    assert count(db, "status = 'failed' AND reason LIKE 'interrupted:%'") == left
    assert integrity_ok(db)
    again = finished(db, "export", str(tmp_path / "p.jsonl"), "--status", "pending")
    assert again.returncode == 0 and "interrupted" not in again.stderr  # said once, by the first command


@pytest.mark.slow
def test_a_live_simulation_in_another_process_is_never_touched(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    sim = curator(db, "simulate", "-n", "100000", "--concurrency", "4")
    try:
        wait_for(lambda: running_now(db), sim)
        for args in (("stats",), ("export", str(tmp_path / "p.jsonl"), "--status", "all"), ("runs",)):
            result = finished(db, *args)
            assert result.returncode == 0 and "interrupted" not in result.stderr
        assert count(db, "reason LIKE 'interrupted%'") == 0
    finally:
        sim.send_signal(signal.SIGTERM)  # stops cleanly, like Ctrl-C
        out, err = sim.communicate(timeout=60)
    assert sim.returncode == 130 and "running ones were marked failed: cancelled" in err
    assert count(db, "status = 'running'") == 0 and integrity_ok(db)


def _full_disk_script(db: Path, fail_after: int, everything: bool) -> str:
    """`curator simulate` in a process where store writes fail with "database or disk is full" after a while
    (every write, when ``everything``; else the message writes only)."""
    return f"""
import sqlite3, sys
from store import Store
from curator.cli import main
calls = 0
def full(original):
    def write(*args, **kwargs):
        global calls
        calls += 1
        if calls > {fail_after}:
            raise sqlite3.OperationalError("database or disk is full")
        return original(*args, **kwargs)
    return write
names = ("append_message", "set_status", "fail_running", "replace_auto_tags") if {everything} else ("append_message",)
for name in names:
    setattr(Store, name, full(getattr(Store, name)))
main(["--db", {str(db)!r}, "simulate", "-n", "50", "--concurrency", "3"])
"""


@pytest.mark.slow
@pytest.mark.parametrize("everything", [False, True], ids=["the-store-takes-the-last-write", "nothing-writes"])
def test_a_full_disk_stops_simulate_with_one_line(tmp_path: Path, everything: bool) -> None:
    db = tmp_path / "s.db"
    result = subprocess.run([sys.executable, "-c", _full_disk_script(db, 20, everything)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(f"error: {db}: database or disk is full; ") and "Traceback" not in result.stderr
    running = count(db, "status = 'running'")
    if everything:
        assert running > 0 and "left for the next curator command to mark failed" in line
        assert "left running by an interrupted simulation" in finished(db, "stats").stderr
    else:
        assert running == 0 and "running trajectories marked failed" in line
        assert count(db, "reason LIKE 'store write failed: %database or disk is full%'") > 0
    assert count(db, "status = 'running'") == 0 and integrity_ok(db)


# -- train -------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("when", ["queued", "running"])
def test_kill_9_during_training(tmp_path: Path, when: str) -> None:
    from curator.launcher import start_run
    from training_fixtures import records, write_jsonl

    db = tmp_path / "c.db"
    Store.open(db).close()
    data = write_jsonl(tmp_path / "d.jsonl", records(4))
    run_id, proc = start_run(str(db), "train", "sft", ["--data", str(data), "--max-steps", "10000", "--threads", "1"],
                             str(tmp_path / "out"), detach=True)
    with Store.open(db) as store:
        wait_for(lambda: store.run(run_id).status == when)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    result = finished(db, "runs")
    assert f"run {run_id} (train sft) was left {when} by its process (pid {proc.pid})" in result.stderr
    with Store.open(db) as store:
        run = store.run(run_id)
        assert run.status == "failed" and "ended without recording a result" in run.error
    assert integrity_ok(db)


def test_a_run_that_fails_before_training_is_failed_with_its_message(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    with Store.open(db) as store:
        run_id = store.create_run("train", "sft", "tiny", {}, pid=os.getpid())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "training", "sft", "--db", str(db), "--run-id", run_id,
                             "--no-such-flag"], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2 and result.stderr.startswith("error: ")
    with Store.open(db) as store:
        run = store.run(run_id)
        assert run.status == "failed" and "--no-such-flag" in run.error


def test_a_bad_option_leaves_no_run_behind(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    Store.open(db).close()
    result = finished(db, "train", "sft", "--lora-r", "0")
    assert result.returncode != 0 and result.stderr.lower().startswith("error: ") and result.stderr.count("\n") == 1
    assert finished(db, "eval", "--limit", "many").returncode != 0
    with Store.open(db) as store:
        assert store.runs() == []


@pytest.mark.parametrize("args", [("train", "sft"), ("eval", "--model", "tiny"), ("runs",), ("stats",), ("flag",)])
def test_commands_that_read_a_store_do_not_make_one(tmp_path: Path, args: tuple[str, ...]) -> None:
    db = tmp_path / "missing.db"
    result = finished(db, *args)
    assert result.returncode != 0 and result.stderr == f"error: {db}: no such store\n"
    assert list(tmp_path.iterdir()) == []


def test_a_sqlite_file_that_is_not_a_store_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE birds (name TEXT)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    for args in (("stats",), ("simulate", "-n", "1"), ("import", str(tmp_path / "x.jsonl"))):
        (tmp_path / "x.jsonl").write_text("")
        result = finished(db, *args)
        assert result.returncode == 1
        assert result.stderr == f"error: {db}: not a curator store (a SQLite file with other tables: birds)\n"
    assert db.read_bytes() == before and not Path(f"{db}-wal").exists()


# -- flag ------------------------------------------------------------------------------------------------
def flagged_store(db: Path, n: int) -> None:
    with Store.open(db) as store:
        store.insert_trajectories(trajectory(i) for i in range(n))
        flag_all(store, MaskPolicy.of(mask_instability=False))


def instability_weights(db: Path) -> set[int]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT weight FROM messages WHERE idx = 1")}
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
def test_kill_9_during_flag_leaves_the_old_flags_whole(tmp_path: Path, delay: float) -> None:
    db = tmp_path / "f.db"
    flagged_store(db, 3000)
    assert instability_weights(db) == {1}
    proc = curator(db, "flag", "--mask-instability")
    time.sleep(delay)
    kill9(proc)
    assert instability_weights(db) in ({1}, {0})  # the old policy everywhere, or the new one: never a mix
    assert integrity_ok(db)
    done = finished(db, "flag", "--mask-instability")
    assert done.returncode == 0 and instability_weights(db) == {0}


def test_flag_all_rolls_back_whole_when_it_fails_half_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "f.db"
    flagged_store(db, 50)
    calls = 0
    original = Store.set_auto_weights

    def failing(self: Store, *args: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 25:
            raise KeyboardInterrupt
        original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "set_auto_weights", failing)
    with Store.open(db) as store, pytest.raises(KeyboardInterrupt):
        flag_all(store, MaskPolicy.of(mask_instability=True))
    assert instability_weights(db) == {1}


# -- export ------------------------------------------------------------------------------------------------
def parts(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part") or ".part-" in p.name)


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("export") / "big.db"
    with Store.open(db) as store:
        store.insert_trajectories(trajectory(i, '{"ok": true}') for i in range(10000))
    return db


@pytest.mark.slow
@pytest.mark.parametrize("name", ["out.jsonl", "out.db", "again.jsonl"])
def test_kill_9_during_export_leaves_a_part_the_next_export_removes(tmp_path: Path, big_store: Path,
                                                                  name: str) -> None:
    out = tmp_path / name
    proc = curator(big_store, "export", str(out), "--status", "all")
    wait_for(lambda: bool(parts(tmp_path)), proc)
    kill9(proc)
    assert not out.exists() and parts(tmp_path)
    assert f".{out.name}.{proc.pid}-" in parts(tmp_path)[0]
    result = finished(big_store, "export", str(out), "--status", "all")
    assert result.returncode == 0, result.stderr
    assert out.is_file() and parts(tmp_path) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_during_export_removes_its_part(tmp_path: Path, big_store: Path, signum: int) -> None:
    out = tmp_path / "out.jsonl"
    proc = curator(big_store, "export", str(out), "--status", "all")
    wait_for(lambda: bool(parts(tmp_path)), proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (143 if signum == signal.SIGTERM else 130)
    assert err.strip().splitlines()[-1] == ("Terminated." if signum == signal.SIGTERM else "Aborted.")
    assert not out.exists() and parts(tmp_path) == []


def test_a_live_writers_part_is_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    live = tmp_path / f".out.jsonl.{os.getpid()}-abcd1234.part"
    stale = tmp_path / f".out.jsonl.{dead_pid()}-abcd1234.part"
    unknown = tmp_path / ".out.jsonl.abcd1234.part"
    other = tmp_path / f".other.jsonl.{dead_pid()}-abcd1234.part"
    for path in (live, stale, unknown, other, stale.with_name(stale.name + "-journal")):
        path.write_text("x")
    assert remove_stale_parts(out) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (live, unknown, other))


@pytest.mark.parametrize("kind", ["/dev/full", "fifo", "directory"])
def test_export_refuses_a_target_that_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "s.db"
    with Store.open(db) as store:
        store.insert_trajectories([trajectory(1)])
    if kind == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)
    elif kind == "directory":
        target = tmp_path / "folder"
        target.mkdir()
    else:
        target = Path(kind)
    result = finished(db, "export", str(target), "--format", "jsonl", "--status", "all")
    described = {"/dev/full": "a character device", "fifo": "a FIFO", "directory": "a directory"}[kind]
    assert result.returncode == 1
    assert result.stderr == f"error: {target}: is {described}, not a regular file; export to a file\n"
    assert parts(target.parent if kind != "/dev/full" else tmp_path) == []
    if kind == "fifo":
        assert Path(target).is_fifo()
