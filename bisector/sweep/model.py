"""Typed data of a nightly sweep: its config (validated strictly) and its results.

The config is the sweep file a user writes (``sweep.example.yaml``); the
results are what one sweep found and how it compares with the previous ones
of the same config.  The reporters (:mod:`bisector.sweep.site`) and the
notifiers (:mod:`bisector.sweep.notify`) read only :class:`SweepReport`, so
they can be tested on a report built in a unit test.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- the config


class DebianSet(_Strict):
    """The newest ``newest`` kernels of a Debian series (``6.1``), as the archive lists them."""

    series: str = Field(pattern=r"^\d+\.\d+$")
    newest: int = Field(default=2, ge=1, le=50)
    flavour: str = Field(default="amd64", pattern=r"^[a-z0-9-]+$")


class UbuntuSet(_Strict):
    """The newest ``newest`` Ubuntu mainline builds (stable releases, or -rc with ``rc``)."""

    newest: int = Field(default=2, ge=1, le=50)
    rc: bool = False
    #: only this series, e.g. "6.12" (default: any)
    series: str | None = Field(default=None, pattern=r"^\d+\.\d+$")


class GitSet(_Strict):
    """The tips of named branches of a kernel tree, built with the git build source.

    ``fetch`` runs ``git fetch`` in the tree first (the cron job's update);
    each branch is a line of its own."""

    tree: str
    #: branch and remote names are passed to git: never option-like (a leading "-"
    #: would be read as an option such as --upload-pack=COMMAND)
    branches: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")]] = \
        Field(min_length=1)
    fetch: bool = False
    remote: str = Field(default="origin", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    config_fragments: list[str] = Field(default_factory=list)


class LocalSet(_Strict):
    """Every ``linux-image-*.deb`` in a folder, one kernel each (oldest first by version)."""

    dir: str
    newest: int | None = Field(default=None, ge=1, le=200)


class KernelSet(_Strict):
    """One of the four kinds of kernel set (exactly one key)."""

    debian: DebianSet | None = None
    ubuntu: UbuntuSet | None = None
    git: GitSet | None = None
    local: LocalSet | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> KernelSet:
        given = [k for k in ("debian", "ubuntu", "git", "local") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a kernel set needs exactly one of debian, ubuntu, git, local"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self


def _default_params() -> dict[str, dict[str, str | int | float | bool]]:
    return {"default": {}}


class ReproducerSet(_Strict):
    """Reproducer files by glob (relative to the config file), each with named param sets."""

    glob: str
    #: name → parameter overrides; default: one set "default" with no overrides
    params: dict[str, dict[str, str | int | float | bool]] = Field(
        default_factory=_default_params)


class SmtpTarget(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    starttls: bool = False
    username: str | None = None
    #: the name of an environment variable holding the password (never the password);
    #: only BISECTOR_* names, so a shared config cannot have another secret of the
    #: host's environment (a cloud token …) sent to the SMTP server it names
    password_env: str | None = Field(default=None, pattern=r"^BISECTOR_[A-Z0-9_]{1,64}$")
    timeout: float = Field(default=30, gt=0)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class WebhookTarget(_Strict):
    url: str = Field(pattern=r"^https?://")
    timeout: float = Field(default=30, gt=0)


class Subscription(_Strict):
    """Extra mail recipients for the reproducers matching a glob (on their name)."""

    reproducers: str
    to: list[str] = Field(min_length=1)


class Notify(_Strict):
    #: "changed": a summary mail only when a category other than "still passing" is
    #: non-empty; "always": every sweep
    when: Literal["changed", "always"] = "changed"
    email: SmtpTarget | None = None
    webhook: WebhookTarget | None = None
    subscriptions: list[Subscription] = Field(default_factory=list)
    #: who reports (the Reported-by: line)
    reported_by: str = "bisector <bisector@localhost>"
    #: where the report site is served (Link: lines); default: file:// paths
    base_url: str | None = None


class Retention(_Strict):
    #: sweeps (their run directories) older than this are pruned ...
    days: float = Field(default=14, gt=0)
    #: ... but the newest ``keep_sweeps`` are always kept
    keep_sweeps: int = Field(default=7, ge=1)
    #: cached kernels not used for this long are pruned too
    kernel_days: float = Field(default=30, gt=0)


class AutoBisect(_Strict):
    enabled: bool = True
    #: a kernel tree for the git stage after a list bisection over prebuilt kernels
    tree: str | None = None
    strategy: Literal["auto", "plain", "bayes"] = "auto"
    max_builds: int | None = Field(default=None, ge=1)
    verify_culprit: bool = True


class RunSettings(_Strict):
    accel: Literal["auto", "kvm", "tcg"] = "auto"
    memory: int = Field(default=1024, ge=256, le=65536)
    cpus: int = Field(default=2, ge=1, le=64)
    boot_timeout: float = Field(default=180, gt=0, le=3600)
    #: attempts for a cell whose run failed for an infrastructure reason (KernelCI: 3)
    infra_attempts: int = Field(default=3, ge=1, le=10)
    #: extra runs of a cell known to be flaky before a GOOD → BAD is called a regression
    flaky_reruns: int = Field(default=2, ge=0, le=20)


class SweepConfig(_Strict):
    #: the sweep's name (default: the config file's stem); its results are compared with
    #: the previous sweeps of the same name
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    #: results directory (relative to the config file)
    results: str = "sweep-results"
    kernels: dict[str, KernelSet] = Field(min_length=1)
    reproducers: list[ReproducerSet] = Field(min_length=1)
    #: guests at once; "auto": what the machine's cores and memory fit
    concurrency: int | Literal["auto"] = "auto"
    retention: Retention = Retention()
    bisect: AutoBisect = AutoBisect()
    notify: Notify = Notify()
    run: RunSettings = RunSettings()
    #: a Dask scheduler address (tcp://HOST:8786); default: everything in this process
    scheduler: str | None = Field(default=None, pattern=r"^(tcp|tls|ws|wss)://[^/\s]+:\d+$")

    @model_validator(mode="after")
    def _set_names(self) -> SweepConfig:
        import re

        for name in self.kernels:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
                raise ValueError(f"kernel set name {name!r}: letters, digits, '.', '_', '-'")
        return self


# ---------------------------------------------------------------- the results


class CellStatus(enum.StrEnum):
    """A cell's outcome in one sweep.  INFRA and PENDING are never a kernel's result."""

    GOOD = "good"
    BAD = "bad"
    SKIP = "skip"          # the kernel could not be tested (build/boot failure, unrelated crash)
    INFRA = "infra"        # infrastructure failed on every attempt: no result
    PENDING = "pending"    # not run (the sweep was killed before it; resumed next time)

    @property
    def tested(self) -> bool:
        return self in (CellStatus.GOOD, CellStatus.BAD)


class Category(enum.StrEnum):
    """KernelCI's tree-comparison categories, in the order people read them."""

    NEW_REGRESSION = "new regression"
    FIXED = "fixed"
    STILL_FAILING = "still failing"
    NEW_FAILURE = "new failure"
    UNSTABLE = "unstable"
    NEWLY_UNTESTABLE = "newly untestable"
    NEW_PASS = "new pass"
    APPEARED = "appeared"
    DISAPPEARED = "disappeared"
    STILL_PASSING = "still passing"


class KernelRef(BaseModel):
    """One kernel of a line, as this sweep resolved it."""

    line: str               # kernel set name, or "set/branch" for a git branch
    spec: str               # debian:6.1.0-56, ubuntu-mainline:v6.12.3, git:<sha>, local:/…deb
    label: str              # what a person calls it: 6.1.0-56 (v6.1.192), main @ 1a2b3c4d5e6f
    order: int              # position in its line, 0 = oldest
    upstream: str | None = None
    tree: str | None = None  # git lines: the tree it is built from


class CellKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    line: str
    kernel: str             # the kernel spec
    reproducer: str         # reproducer name
    params: str = "default"  # param-set name

    @property
    def id(self) -> str:
        """Stable, filesystem-safe identity (directory names, HTML anchors)."""
        import hashlib

        raw = f"{self.line}|{self.kernel}|{self.reproducer}|{self.params}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    @property
    def track(self) -> str:
        """The line-level identity compared across nights: line × reproducer × params."""
        return f"{self.line} × {self.reproducer} [{self.params}]"


class CellResult(BaseModel):
    key: CellKey
    status: CellStatus
    reason: str = ""
    #: reproducer iterations run, and how many of them were BAD
    runs: int = 0
    fails: int = 0
    attempts: int = 1
    boot_s: float = 0.0
    test_s: float = 0.0
    total_s: float = 0.0
    #: evidence directory (absolute)
    run_dir: str | None = None
    #: the failure's output (console/stdout excerpt); never empty for BAD
    excerpt: str = ""
    finished: str = ""
    #: the kernel's place in its line tonight (0 = oldest) and what a person calls it
    kernel_order: int = 0
    kernel_label: str = ""
    #: per-iteration verdicts, in order (which iteration showed what)
    iterations: list[str] = Field(default_factory=list)
    #: where it ran: "host:pid" of the Dask worker ("" in the sweep's own process)
    worker: str = ""

    @property
    def disagree(self) -> bool:
        """Its repeats disagreed (some BAD, some GOOD runs)."""
        return 0 < self.fails < self.runs


class HistoryMark(BaseModel):
    """One night of one cell (for the history strip)."""

    sweep_id: int
    date: str
    status: CellStatus
    kernel: str = ""


class Change(BaseModel):
    """One line-level comparison row: a track and what happened to it tonight."""

    category: Category
    line: str
    reproducer: str
    params: str
    kernel: str                      # the newest kernel of the line tested tonight
    status: CellStatus
    previous_kernel: str | None = None
    previous_status: CellStatus | None = None
    #: still failing: the date of the first failing night and how many nights
    since: str | None = None
    nights: int = 0
    #: measured BAD-run rate over the track's recent runs (None: no mixed evidence)
    flake_rate: float | None = None
    note: str = ""
    cell_id: str | None = None


class RegressionStatus(enum.StrEnum):
    BISECTING = "bisecting"
    FOUND = "found"          # the campaign named a culprit
    DOUBTFUL = "doubtful"    # named one, but verification failed or evidence weak
    FAILED = "failed"        # the campaign could not name one
    NOT_BISECTED = "not bisected"  # the config does not give what a bisection needs


class Regression(BaseModel):
    id: int
    line: str
    reproducer: str
    params: str
    last_good: str
    first_bad: str
    since: str                        # date of the first failing sweep
    status: RegressionStatus
    culprit: str | None = None        # full sha or kernel spec
    culprit_subject: str | None = None
    campaign_id: int | None = None
    campaign_report: str | None = None  # path of the campaign's report.html
    note: str = ""
    #: the failure output on first_bad (never empty)
    excerpt: str = ""
    #: one `bisector run` command that reproduces it
    reproduce: str = ""
    cell_id: str | None = None
    #: how long its bisection took in this sweep (from the end of the cells)
    bisect_s: float = 0.0


class NightTiming(BaseModel):
    sweep_id: int
    date: str
    boot_s: float
    test_s: float
    wall_s: float


class SweepStatus(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"
    INCOMPLETE = "incomplete"   # killed and not resumed in time: never compared


class SweepReport(BaseModel):
    """Everything one sweep found: what the reporters and notifiers read."""

    sweep_id: int
    name: str
    config_path: str
    started: str
    finished: str | None
    status: SweepStatus
    wall_s: float = 0.0
    results_dir: str                  # the config's results directory (the site root)
    sweep_dir: str                    # results_dir/sweep-<id>
    kernels: list[KernelRef]
    reproducers: list[str]            # names, sorted
    cells: list[CellResult]
    changes: list[Change]
    regressions: list[Regression]
    #: cell id → the last nights, oldest first (this sweep included)
    history: dict[str, list[HistoryMark]] = Field(default_factory=dict)
    timings: list[NightTiming] = Field(default_factory=list)
    #: reproducer name → the file (for the reproduce command)
    reproducer_files: dict[str, str] = Field(default_factory=dict)

    def changed(self) -> bool:
        return any(c.category is not Category.STILL_PASSING for c in self.changes)

    def by_category(self, category: Category) -> list[Change]:
        return [c for c in self.changes if c.category is category]
