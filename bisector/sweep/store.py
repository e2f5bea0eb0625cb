"""The sweep's tables in the one SQLite store (``bisector.db``, next to campaigns).

* ``sweeps``: one row per sweep of a config name; status running → done, or
  incomplete when it was killed and not resumed.  Its plan (the cells) is
  stored when it starts, so the next invocation can finish a killed one.
* ``sweep_cells``: one row per finished cell (kernel × reproducer × params):
  written only when the cell has a result, so a killed sweep leaves only whole
  rows; attempts counts the infrastructure retries behind it.
* ``regressions``: each GOOD → BAD seen on a track, with its bisection's
  campaign, so a regression is bisected once.

Only the caller of a sweep writes here (one writer), also when cells ran
elsewhere.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

from ..store import db_path
from .model import (
    CellKey,
    CellResult,
    CellStatus,
    HistoryMark,
    Regression,
    RegressionStatus,
    SweepStatus,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    status TEXT NOT NULL,           -- SweepStatus
    plan TEXT NOT NULL,             -- JSON: the cells and kernels planned
    wall_s REAL NOT NULL DEFAULT 0,
    dir TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sweeps_name ON sweeps(name);
CREATE TABLE IF NOT EXISTS sweep_cells (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sweep_id INTEGER NOT NULL REFERENCES sweeps(id),
    cell TEXT NOT NULL,             -- CellKey.id
    line TEXT NOT NULL,
    kernel TEXT NOT NULL,
    reproducer TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,           -- CellStatus
    result TEXT NOT NULL,           -- JSON: CellResult
    finished TEXT NOT NULL,
    UNIQUE (sweep_id, cell)
);
CREATE INDEX IF NOT EXISTS sweep_cells_track ON sweep_cells(line, reproducer, params);
CREATE TABLE IF NOT EXISTS regressions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,             -- the sweep config's name
    line TEXT NOT NULL,
    reproducer TEXT NOT NULL,
    params TEXT NOT NULL,
    last_good TEXT NOT NULL,
    first_bad TEXT NOT NULL,
    since TEXT NOT NULL,
    sweep_id INTEGER NOT NULL,
    status TEXT NOT NULL,           -- RegressionStatus
    campaign_id INTEGER,
    data TEXT NOT NULL,             -- JSON: Regression
    closed TEXT,                    -- when the track was seen GOOD again
    UNIQUE (name, line, reproducer, params, last_good, first_bad)
);
"""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


class SweepStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                  check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # ---------------------------------------------------------------- sweeps
    def start(self, name: str, config: Path, plan: Mapping[str, object], parent: Path) -> int:
        cur = self.db.execute(
            "INSERT INTO sweeps (name, config, started, status, plan, dir) "
            "VALUES (?, ?, ?, ?, ?, '')",
            (name, str(config), _now(), SweepStatus.RUNNING.value, json.dumps(plan)))
        sid = int(cur.lastrowid or 0)
        self.db.execute("UPDATE sweeps SET dir = ? WHERE id = ?",
                        (str(parent / f"sweep-{sid}"), sid))
        return sid

    def unfinished(self, name: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM sweeps WHERE name = ? AND status = ? ORDER BY id DESC LIMIT 1",
            (name, SweepStatus.RUNNING.value)).fetchone()
        return row

    def sweep(self, sid: int) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute("SELECT * FROM sweeps WHERE id = ?",
                                                  (sid,)).fetchone()
        return row

    def set_status(self, sid: int, status: SweepStatus, wall_s: float | None = None) -> None:
        self.db.execute("UPDATE sweeps SET status = ?, finished = ?, "
                        "wall_s = COALESCE(?, wall_s) WHERE id = ?",
                        (status.value, _now(), wall_s, sid))

    def add_wall(self, sid: int, seconds: float) -> None:
        self.db.execute("UPDATE sweeps SET wall_s = wall_s + ? WHERE id = ?", (seconds, sid))

    def done_sweeps(self, name: str, before: int | None = None,
                    limit: int = 30) -> list[sqlite3.Row]:
        """Finished sweeps of ``name``, newest first (``before``: older than that id)."""
        return list(self.db.execute(
            "SELECT * FROM sweeps WHERE name = ? AND status = ? AND id < ? "
            "ORDER BY id DESC LIMIT ?",
            (name, SweepStatus.DONE.value, before if before is not None else 2**62, limit)))

    def all_sweeps(self, name: str) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM sweeps WHERE name = ? ORDER BY id DESC",
                                    (name,)))

    # ---------------------------------------------------------------- cells
    def add_cell(self, sid: int, res: CellResult) -> None:
        k = res.key
        res.finished = res.finished or _now()
        self.db.execute(
            "INSERT OR REPLACE INTO sweep_cells (sweep_id, cell, line, kernel, reproducer, "
            "params, status, result, finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sid, k.id, k.line, k.kernel, k.reproducer, k.params, res.status.value,
             res.model_dump_json(), res.finished))

    def cells(self, sid: int) -> list[CellResult]:
        rows = self.db.execute("SELECT result FROM sweep_cells WHERE sweep_id = ? ORDER BY id",
                               (sid,))
        return [CellResult.model_validate_json(r["result"]) for r in rows]

    def track_history(self, name: str, key: CellKey, before: int,
                      limit: int = 30) -> list[tuple[int, str, CellResult]]:
        """The track's (line × reproducer × params) cells in finished sweeps of
        ``name`` older than ``before``, newest first: (sweep id, date, result)."""
        rows = self.db.execute(
            "SELECT s.id AS sid, s.started AS started, c.result AS result FROM sweep_cells c "
            "JOIN sweeps s ON s.id = c.sweep_id WHERE s.name = ? AND s.status = ? "
            "AND s.id < ? AND c.line = ? AND c.reproducer = ? AND c.params = ? "
            "ORDER BY s.id DESC, c.id DESC LIMIT ?",
            (name, SweepStatus.DONE.value, before, key.line, key.reproducer, key.params,
             limit * 8))
        return [(int(r["sid"]), str(r["started"]), CellResult.model_validate_json(r["result"]))
                for r in rows]

    def cell_marks(self, name: str, key: CellKey, upto: int, limit: int = 14) -> list[HistoryMark]:
        """One cell's last nights (this sweep included), oldest first."""
        rows = self.db.execute(
            "SELECT s.id AS sid, s.started AS started, c.status AS status FROM sweep_cells c "
            "JOIN sweeps s ON s.id = c.sweep_id WHERE s.name = ? AND s.id <= ? "
            "AND s.status != ? AND c.cell = ? ORDER BY s.id DESC LIMIT ?",
            (name, upto, SweepStatus.INCOMPLETE.value, key.id, limit)).fetchall()
        return [HistoryMark(sweep_id=int(r["sid"]), date=str(r["started"])[:10],
                            status=CellStatus(r["status"]), kernel=key.kernel)
                for r in reversed(rows)]

    # ---------------------------------------------------------------- regressions
    def regression(self, name: str, reg: Regression) -> Regression | None:
        row = self.db.execute(
            "SELECT data FROM regressions WHERE name = ? AND line = ? AND reproducer = ? AND "
            "params = ? AND last_good = ? AND first_bad = ?",
            (name, reg.line, reg.reproducer, reg.params, reg.last_good, reg.first_bad)
        ).fetchone()
        return Regression.model_validate_json(row["data"]) if row else None

    def open_regression(self, name: str, line: str, reproducer: str,
                        params: str) -> Regression | None:
        row = self.db.execute(
            "SELECT data FROM regressions WHERE name = ? AND line = ? AND reproducer = ? AND "
            "params = ? AND closed IS NULL ORDER BY id DESC LIMIT 1",
            (name, line, reproducer, params)).fetchone()
        return Regression.model_validate_json(row["data"]) if row else None

    def add_regression(self, name: str, sid: int, reg: Regression) -> Regression:
        cur = self.db.execute(
            "INSERT INTO regressions (name, line, reproducer, params, last_good, first_bad, "
            "since, sweep_id, status, campaign_id, data) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (name, reg.line, reg.reproducer, reg.params, reg.last_good, reg.first_bad,
             reg.since, sid, reg.status.value, reg.campaign_id, "{}"))
        reg = reg.model_copy(update={"id": int(cur.lastrowid or 0)})
        self.update_regression(reg)
        return reg

    def update_regression(self, reg: Regression) -> None:
        self.db.execute("UPDATE regressions SET status = ?, campaign_id = ?, data = ? "
                        "WHERE id = ?", (reg.status.value, reg.campaign_id,
                                         reg.model_dump_json(), reg.id))

    def close_regressions(self, name: str, line: str, reproducer: str, params: str) -> None:
        self.db.execute("UPDATE regressions SET closed = ? WHERE name = ? AND line = ? AND "
                        "reproducer = ? AND params = ? AND closed IS NULL",
                        (_now(), name, line, reproducer, params))

    def open_regressions(self, name: str) -> list[Regression]:
        rows = self.db.execute("SELECT data FROM regressions WHERE name = ? AND closed IS NULL "
                               "ORDER BY id", (name,))
        return [Regression.model_validate_json(r["data"]) for r in rows]

    def regressions_of(self, sid: int) -> list[Regression]:
        rows = self.db.execute("SELECT data FROM regressions WHERE sweep_id = ? ORDER BY id",
                               (sid,))
        return [Regression.model_validate_json(r["data"]) for r in rows]

    def rebind(self, reg: Regression, status: RegressionStatus) -> Regression:
        reg = reg.model_copy(update={"status": status})
        self.update_regression(reg)
        return reg
