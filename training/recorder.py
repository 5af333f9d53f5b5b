"""A run's row in the store and its JSONL log beside the output.

Without a store (``--db`` not given) a run only writes its log; with one, the
row follows the run: queued → running (pid) → completed | failed | cancelled,
and every logged step lands in ``run_metrics`` for the TUI's loss chart. A run
may have parts recorded as runs of their own (:meth:`RunRecorder.child`: the
warm-up and rounds of an iTool loop), each linked to it by ``parent_id``.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from store import CuratorError, Store, now
from store.runs import ACTIVE_RUN_STATUSES

METRICS_FILE = "metrics.jsonl"
_SECRET_NAMES = ("api_key", "password", "secret", "token")


def public_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as stored: JSON values only, and never a secret.

    Configs name the environment variable that holds a key (``api_key_env``),
    never the key; this is a second line of defence.
    """
    out = {}
    for key, value in config.items():
        if key.lower() in _SECRET_NAMES or key.lower().endswith("_api_key"):
            continue
        out[key] = value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)
    return out


class RunRecorder:
    """Records one training or evaluation run; every store call is optional."""

    def __init__(
        self,
        db: str | None,
        kind: str,
        algorithm: str,
        base_model: str,
        config: Mapping[str, Any],
        output_dir: Path,
        run_id: str | None = None,
        parent_id: str | None = None,
    ):
        self.db = db
        self.output_dir = output_dir
        self.store = None
        self.run_id = run_id
        self._started = time.time()
        self._started_at: str | None = None
        #: What the run trains or is scored on: the launcher's record, then each ``start``'s added to it.
        self._dataset: dict[str, Any] = {}
        if db:
            self.store = Store.open(db)
            if self.run_id is None:
                self.run_id = self.store.create_run(
                    kind, algorithm, base_model, public_config(config), output_dir=str(output_dir),
                    pid=os.getpid(), lease_id=self.store.lease(), parent_id=parent_id,
                )
            else:
                self._complete_launched(config)

    def _complete_launched(self, config: Mapping[str, Any]) -> None:
        """Complete the launcher's row with the resolved config, keeping what the launcher recorded.

        In a write transaction, so it waits for the launcher's (which creates the row) to commit.
        """
        assert self.store is not None and self.run_id is not None
        with self.store.transaction():
            launched = self.store.run(self.run_id)
            if launched is None:
                raise CuratorError(f"{self.store.path}: no run {self.run_id} (its launcher ended before recording it)")
            self._dataset = dict(launched.dataset or {})
            self.store.update_run(self.run_id, config={**launched.config, **public_config(config)},
                                  output_dir=str(self.output_dir))

    def start(self, dataset: Mapping[str, Any] | None = None) -> None:
        """Mark the run running (from the first call on: a loop's round starts before its DPO run does)."""
        self._started_at = self._started_at or now()
        fields: dict[str, Any] = {"status": "running", "pid": os.getpid(), "started_at": self._started_at}
        if dataset is not None:
            self._dataset = {**self._dataset, **dataset}
            fields["dataset"] = self._dataset
        self._update(**fields)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        values = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with (self.output_dir / METRICS_FILE).open("a") as fh:
            fh.write(json.dumps({"step": step, "time": round(time.time() - self._started, 3), **values}) + "\n")
        if self.store is not None and self.run_id is not None:
            self.store.add_run_metrics(self.run_id, step, values)
            self.store.heartbeat()

    def finish(self, status: str = "completed", summary: Mapping[str, Any] | None = None) -> None:
        fields: dict[str, Any] = {"status": status, "finished_at": now()}
        if summary is not None:
            fields["summary"] = dict(summary)
        self._update(**fields)

    def fail(self, error: str) -> None:
        self._update(status="failed", error=error, finished_at=now())

    def _update(self, **fields: Any) -> None:
        if self.store is not None and self.run_id is not None:
            self.store.update_run(self.run_id, **fields)

    @contextlib.contextmanager
    def child(self, kind: str, algorithm: str, base_model: str, config: Mapping[str, Any],
              output_dir: Path) -> Iterator["RunRecorder"]:
        """A run that is part of this one (the warm-up or a round of an iTool loop), in the same store, linked
        by ``parent_id``; failed with the error when the block raises."""
        part = RunRecorder(self.db, kind, algorithm, base_model, config, output_dir, parent_id=self.run_id)
        try:
            yield part
        except BaseException as exc:
            part.fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise
        finally:
            part.close()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None



def fail_launched_run(argv: Sequence[str], error: str) -> None:
    """Mark the run that ``argv`` (``python -m training …`` arguments) names failed with ``error``.

    For a process that fails before it has a ``RunRecorder`` (bad arguments, a store it cannot
    open): the launcher created the row, and it must not stay queued. Only ``--db`` and
    ``--run-id`` are read, so this works on arguments that did not parse.
    """
    db, run_id = _option(argv, "--db"), _option(argv, "--run-id")
    if not db or not run_id:
        return
    try:
        with Store.open(db, create=False) as store, store.transaction():
            run = store.run(run_id)
            if run is not None and run.status in ACTIVE_RUN_STATUSES:
                store.update_run(run_id, status="failed", error=error, finished_at=now())
    except (CuratorError, sqlite3.Error):
        pass  # no store to record it in: the one line on stderr is all there is


def _option(argv: Sequence[str], name: str) -> str | None:
    """The value of option ``name`` in ``argv`` (``--name VALUE`` or ``--name=VALUE``), the last one given."""
    found = None
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith(name + "="):
            found = arg[len(name) + 1:]
    return found
