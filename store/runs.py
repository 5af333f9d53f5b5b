"""Run bookkeeping: training and evaluation runs, their status and per-step metrics (the runs screen's data).

Kept apart from the dataset it trains on; ``Store`` carries these methods so one
connection serves both.
"""
from __future__ import annotations

import sqlite3
from typing import Any, Callable

from .records import RUN_STATUSES, Run, check, dumps, loads, new_id, now
from .redaction import redact


#: A run in one of these states has (or is about to have) a process.
ACTIVE_RUN_STATUSES = ("queued", "running")


class RunBookkeeping:
    """The ``runs`` and ``run_metrics`` tables, for a class with ``conn``, ``_rows`` and ``transaction``."""

    conn: sqlite3.Connection
    lease_alive: Callable[[str | None], bool | None]

    def create_run(self, kind: str, algorithm: str, base_model: str, config: dict[str, Any],
                   dataset: dict[str, Any] | None = None, output_dir: str | None = None, *,
                   pid: int | None = None, lease_id: str | None = None, parent_id: str | None = None) -> str:
        """A queued run; ``lease_id`` names the lease of the process that will run it (``store.leases``),
        ``parent_id`` the run it is part of (a round of an iTool loop)."""
        run_id = new_id()
        with self.transaction():
            self.conn.execute(
                "INSERT INTO runs (id, kind, algorithm, base_model, status, config, dataset, output_dir, pid, "
                "lease_id, parent_id, created_at) VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
                (run_id, kind, algorithm, base_model, redact(dumps(config)), dumps(dataset), output_dir, pid,
                 lease_id, parent_id, now()),
            )
        return run_id

    _RUN_FIELDS = frozenset({"status", "pid", "error", "summary", "started_at", "finished_at", "output_dir",
                             "dataset", "config", "lease_id"})

    def update_run(self, run_id: str, **fields: Any) -> None:
        unknown = set(fields) - self._RUN_FIELDS
        if unknown:
            raise ValueError(f"unknown run field(s): {', '.join(sorted(unknown))}")
        if "status" in fields:
            check(fields["status"], RUN_STATUSES, "run status")
        values = {k: dumps(v) if k in ("summary", "dataset", "config") else v for k, v in fields.items()}
        values = {k: redact(v) if k in ("summary", "config", "error") else v for k, v in values.items()}
        assignments = ", ".join(f"{k} = ?" for k in values)
        with self.transaction():
            self.conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*values.values(), run_id))

    def add_run_metrics(self, run_id: str, step: int, metrics: dict[str, float]) -> None:
        stamp = now()
        with self.transaction():
            self.conn.executemany(
                "INSERT INTO run_metrics (run_id, step, key, value, created_at) VALUES (?, ?, ?, ?, ?)",
                [(run_id, step, k, float(v), stamp) for k, v in metrics.items()],
            )

    def run(self, run_id: str) -> Run | None:
        rows = self._rows("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _run(rows[0]) if rows else None

    def run_alive(self, run: Run) -> bool | None:
        """Whether the process that holds ``run``'s lease still runs; None for a run with no lease
        (started before leases, or never started)."""
        row = self.conn.execute("SELECT lease_id FROM runs WHERE id = ?", (run.id,)).fetchone()
        return self.lease_alive(row[0] if row else None)

    def runs(self) -> list[Run]:
        return [_run(r) for r in self._rows("SELECT * FROM runs ORDER BY created_at DESC, rowid DESC")]

    def run_metrics(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return [
            (r[0], r[1])
            for r in self.conn.execute(
                "SELECT step, value FROM run_metrics WHERE run_id = ? AND key = ? ORDER BY step, rowid", (run_id, key)
            )
        ]


def _run(row: dict[str, Any]) -> Run:
    return Run(
        id=row["id"], kind=row["kind"], algorithm=row["algorithm"], base_model=row["base_model"],
        status=row["status"], config=loads(row["config"]) or {}, dataset=loads(row["dataset"]),
        output_dir=row["output_dir"], pid=row["pid"], error=row["error"], summary=loads(row["summary"]),
        created_at=row["created_at"], started_at=row["started_at"], finished_at=row["finished_at"],
        parent_id=row["parent_id"],
    )
