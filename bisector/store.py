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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .outcomes import CampaignStatus, Stage, Step
from .paths import runs_dir
from .verdict import Verdict

SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    status TEXT NOT NULL,            -- CampaignStatus: running|done|inconclusive|mismatch|failed
    args TEXT NOT NULL,              -- JSON: what the user asked for
    result TEXT,                     -- JSON: culprit / candidates / notes
    dir TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS campaigns_key ON campaigns(key);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
    stage TEXT NOT NULL,             -- Stage: list | verify | git
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
class Campaign:
    """A campaign's row: what was asked, where its evidence lives, how it ended."""

    id: int
    key: str
    status: CampaignStatus
    args: dict[str, Any]
    result: dict[str, Any] | None
    dir: Path


_STEP_COLUMNS = ("stage", "candidate", "verdict", "reason", "build_s", "boot_s", "test_s",
                 "total_s", "cached", "run_dir", "build_log", "replayed", "finished")
_CAMPAIGN_COLUMNS = "id, key, status, args, result, dir"


class Store:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    @staticmethod
    def _now() -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S")

    @staticmethod
    def _campaign(row: sqlite3.Row) -> Campaign:
        return Campaign(id=row["id"], key=row["key"], status=CampaignStatus(row["status"]),
                        args=json.loads(row["args"]),
                        result=json.loads(row["result"]) if row["result"] else None,
                        dir=Path(row["dir"]))

    def create(self, key: str, args: dict[str, Any], parent: Path | None = None) -> Campaign:
        now = self._now()
        cur = self.db.execute(
            "INSERT INTO campaigns (key, created, updated, status, args, dir) "
            "VALUES (?, ?, ?, ?, ?, '')",
            (key, now, now, CampaignStatus.RUNNING.value, json.dumps(args)))
        cid = int(cur.lastrowid or 0)
        d = (parent or runs_dir()) / f"campaign-{cid}"
        d.mkdir(parents=True, exist_ok=True)
        self.db.execute("UPDATE campaigns SET dir = ? WHERE id = ?", (str(d), cid))
        got = self.get(cid)
        assert got is not None
        return got

    def get(self, cid: int) -> Campaign | None:
        row = self.db.execute(f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE id = ?",
                              (cid,)).fetchone()
        return self._campaign(row) if row else None

    def find_unfinished(self, key: str | None = None) -> Campaign | None:
        q = (f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE status = ?"
             + (" AND key = ?" if key else "") + " ORDER BY id DESC LIMIT 1")
        params: tuple[str, ...] = (CampaignStatus.RUNNING.value,) + ((key,) if key else ())
        row = self.db.execute(q, params).fetchone()
        return self._campaign(row) if row else None

    def oldest_running_since(self) -> float | None:
        """When the oldest campaign still RUNNING (resumable) started, as a Unix time."""
        row = self.db.execute("SELECT MIN(created) AS t FROM campaigns WHERE status = ?",
                              (CampaignStatus.RUNNING.value,)).fetchone()
        if row is None or row["t"] is None:
            return None
        return time.mktime(time.strptime(row["t"], "%Y-%m-%dT%H:%M:%S"))

    def finish(self, cid: int, status: CampaignStatus, result: dict[str, Any]) -> None:
        self.db.execute("UPDATE campaigns SET status = ?, result = ?, updated = ? WHERE id = ?",
                        (status.value, json.dumps(result), self._now(), cid))

    def add_step(self, cid: int, step: Step) -> None:
        step.finished = step.finished or self._now()
        values = asdict(step)
        values["stage"], values["verdict"] = step.stage.value, step.verdict.value
        self.db.execute(
            f"INSERT INTO steps (campaign_id, {', '.join(_STEP_COLUMNS)}) VALUES "
            f"(:campaign_id, {', '.join(':' + c for c in _STEP_COLUMNS)})",
            {"campaign_id": cid, **values})
        self.db.execute("UPDATE campaigns SET updated = ? WHERE id = ?", (self._now(), cid))

    def steps(self, cid: int) -> list[Step]:
        rows = self.db.execute(
            f"SELECT {', '.join(_STEP_COLUMNS)} FROM steps WHERE campaign_id = ? ORDER BY id",
            (cid,)).fetchall()
        out = []
        for r in rows:
            d = {c: r[c] for c in _STEP_COLUMNS}
            d.update(stage=Stage(d["stage"]), verdict=Verdict(d["verdict"]),
                     cached=bool(d["cached"]), replayed=bool(d["replayed"]))
            out.append(Step(**d))
        return out

    def campaigns(self, limit: int = 20) -> list[Campaign]:
        rows = self.db.execute(f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns "
                               "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [self._campaign(r) for r in rows]
