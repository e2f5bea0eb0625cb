"""SQLite store: campaigns (bisections) and their steps.

The database is the source of truth for resuming: a step is written only when
it has finished (verdict known), so after a crash or ``kill -9`` a campaign
is resumed by replaying its finished steps into a fresh bisection and testing
only what is left.  Logs live on disk; the database holds their paths.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .paths import runs_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    status TEXT NOT NULL,            -- running | done | inconclusive | mismatch | error
    args TEXT NOT NULL,              -- JSON: what the user asked for
    result TEXT,                     -- JSON: culprit / candidates / notes
    dir TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS campaigns_key ON campaigns(key);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    stage TEXT NOT NULL,             -- list | verify | git
    candidate TEXT NOT NULL,         -- kernel spec or commit sha
    verdict TEXT NOT NULL,           -- good | bad | skip
    reason TEXT NOT NULL,
    build_s REAL NOT NULL DEFAULT 0,
    boot_s REAL NOT NULL DEFAULT 0,
    test_s REAL NOT NULL DEFAULT 0,
    total_s REAL NOT NULL DEFAULT 0,
    cached INTEGER NOT NULL DEFAULT 0,
    run_dir TEXT,
    build_log TEXT,
    replayed INTEGER NOT NULL DEFAULT 0,
    finished TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS steps_campaign ON steps(campaign_id);
"""


def db_path() -> Path:
    return runs_dir().parent / "bisector.db"


@dataclass
class StepRow:
    stage: str
    candidate: str
    verdict: str
    reason: str
    build_s: float = 0.0
    boot_s: float = 0.0
    test_s: float = 0.0
    total_s: float = 0.0
    cached: bool = False
    run_dir: str | None = None
    build_log: str | None = None
    replayed: bool = False
    finished: str = ""


@dataclass
class Campaign:
    id: int
    key: str
    status: str
    args: dict[str, Any]
    result: dict[str, Any] | None
    dir: Path


class Store:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @staticmethod
    def _now() -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S")

    def _campaign(self, row: tuple[Any, ...]) -> Campaign:
        return Campaign(id=row[0], key=row[1], status=row[2], args=json.loads(row[3]),
                        result=json.loads(row[4]) if row[4] else None, dir=Path(row[5]))

    def create(self, key: str, args: dict[str, Any], parent: Path | None = None) -> Campaign:
        now = self._now()
        cur = self.db.execute(
            "INSERT INTO campaigns (key, created, updated, status, args, dir) "
            "VALUES (?, ?, ?, 'running', ?, '')", (key, now, now, json.dumps(args)))
        cid = int(cur.lastrowid or 0)
        d = (parent or runs_dir()) / f"campaign-{cid}"
        d.mkdir(parents=True, exist_ok=True)
        self.db.execute("UPDATE campaigns SET dir = ? WHERE id = ?", (str(d), cid))
        got = self.get(cid)
        assert got is not None
        return got

    def get(self, cid: int) -> Campaign | None:
        row = self.db.execute("SELECT id, key, status, args, result, dir FROM campaigns "
                              "WHERE id = ?", (cid,)).fetchone()
        return self._campaign(row) if row else None

    def find_unfinished(self, key: str | None = None) -> Campaign | None:
        q = ("SELECT id, key, status, args, result, dir FROM campaigns WHERE status = 'running'"
             + (" AND key = ?" if key else "") + " ORDER BY id DESC LIMIT 1")
        row = self.db.execute(q, (key,) if key else ()).fetchone()
        return self._campaign(row) if row else None

    def finish(self, cid: int, status: str, result: dict[str, Any]) -> None:
        self.db.execute("UPDATE campaigns SET status = ?, result = ?, updated = ? WHERE id = ?",
                        (status, json.dumps(result), self._now(), cid))

    def add_step(self, cid: int, step: StepRow) -> None:
        step.finished = step.finished or self._now()
        self.db.execute(
            "INSERT INTO steps (campaign_id, stage, candidate, verdict, reason, build_s, boot_s,"
            " test_s, total_s, cached, run_dir, build_log, replayed, finished) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (cid, step.stage, step.candidate, step.verdict, step.reason, step.build_s,
             step.boot_s, step.test_s, step.total_s, int(step.cached), step.run_dir,
             step.build_log, int(step.replayed), step.finished))
        self.db.execute("UPDATE campaigns SET updated = ? WHERE id = ?", (self._now(), cid))

    def steps(self, cid: int) -> list[StepRow]:
        rows = self.db.execute(
            "SELECT stage, candidate, verdict, reason, build_s, boot_s, test_s, total_s, cached,"
            " run_dir, build_log, replayed, finished FROM steps WHERE campaign_id = ? "
            "ORDER BY id", (cid,)).fetchall()
        return [StepRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), r[9],
                        r[10], bool(r[11]), r[12]) for r in rows]

    def campaigns(self, limit: int = 20) -> list[Campaign]:
        rows = self.db.execute("SELECT id, key, status, args, result, dir FROM campaigns "
                               "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [self._campaign(r) for r in rows]
