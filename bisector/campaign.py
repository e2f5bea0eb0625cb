"""A bisection campaign: what ``bisector bisect`` runs, persisted and resumable.

Kinds, chosen from the endpoints:

* **git**: ``--good REV --bad REV --tree PATH``: verify both endpoints, then
  ``git bisect`` with kernels built by :class:`GitBuildSource`.
* **list**: prebuilt endpoints from one source (``debian:6.1.0-47`` ..
  ``debian:6.1.0-56``, ``ubuntu-mainline:v5.6`` .. ``v5.8``): binary search on
  the source's ordered list.
* **two-stage**: prebuilt endpoints *and* ``--tree``: the list stage finds the
  adjacent old/new pair, both are mapped to their upstream tags, the tags are
  built and tested (a distro kernel is not the vanilla kernel: when upstream
  behaves differently we say so and stop), then the git stage runs between
  the tags.

Resuming: every finished step is in SQLite before git hears of it.  Re-running
the same command (or ``bisector resume``) finds the unfinished campaign and
replays the finished steps as a memo: the bisection re-traces its path
without testing anything twice, then continues.  ``--replay LOG`` seeds the
memo from a ``git bisect log``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import kernel as kernels
from . import reproducer, runner
from .bisect import (
    Bisector,
    GitBisection,
    Handler,
    ListBisection,
    Result,
    StepOutcome,
    Terms,
    parse_bisect_log,
)
from .errors import UserError
from .kernel.gitbuild import BuildFailure, GitBuildSource, git
from .paths import slug
from .store import Campaign, StepRow, Store
from .verdict import Verdict

log = logging.getLogger(__name__)


@dataclass
class BisectArgs:
    repro: str
    good: str
    bad: str
    tree: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    find_fix: bool = False
    term_old: str | None = None
    term_new: str | None = None
    fragments: list[str] = field(default_factory=list)
    verify: bool = True
    replay: str | None = None
    accel: str = "auto"
    boot_timeout: float = 180.0
    report_dir: str | None = None

    def key(self, repro_text: str) -> str:
        d = asdict(self)
        d.pop("report_dir")
        d["repro_sha"] = hashlib.sha256(repro_text.encode()).hexdigest()
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:24]


@dataclass
class CampaignResult:
    campaign: Campaign
    status: str  # done | inconclusive | mismatch
    result: dict[str, Any]


def is_prebuilt(spec: str) -> bool:
    prefix = spec.split(":", 1)[0] if ":" in spec else ""
    return prefix in kernels.REGISTRY and prefix != "git"


class CampaignRunner:
    def __init__(self, args: BisectArgs, store: Store, handler: Handler) -> None:
        self.args = args
        self.store = store
        self.handler = handler
        self.repro = reproducer.load(Path(args.repro), args.params)
        self.terms = Terms.make(args.find_fix, args.term_old, args.term_new)
        self.opts = runner.RunOptions(accel=args.accel, boot_timeout=args.boot_timeout)
        self.source: GitBuildSource | None = None
        if args.tree:
            self.source = GitBuildSource(Path(args.tree), required=self.repro.spec.requires.config,
                                         fragments=[Path(f) for f in args.fragments],
                                         say=handler.message)
        self.memo: dict[tuple[str, str], StepOutcome] = {}
        self.campaign: Campaign | None = None
        self.step_no = 0

    # ------------------------------------------------------------ setup
    def open(self) -> Campaign:
        key = self.args.key(self.repro.text)
        existing = self.store.find_unfinished(key)
        if existing is not None:
            self.campaign = existing
            for s in self.store.steps(existing.id):
                self.memo[(s.stage, s.candidate)] = StepOutcome(
                    Verdict(s.verdict), s.reason, s.build_s, s.boot_s, s.test_s, s.total_s,
                    s.cached, s.run_dir, s.build_log)
            self.handler.message(f"resuming campaign {existing.id}: "
                                 f"{len(self.memo)} finished step(s) will not be repeated")
        else:
            args = asdict(self.args)
            args["repro"] = str(Path(self.args.repro).resolve())
            if args["tree"]:
                args["tree"] = str(Path(args["tree"]).resolve())
            self.campaign = self.store.create(key, args)
            self.handler.message(f"campaign {self.campaign.id}: logs in {self.campaign.dir}")
        if self.args.replay:
            self._load_replay(Path(self.args.replay))
        return self.campaign

    def _load_replay(self, path: Path) -> None:
        if self.source is None:
            raise UserError("--replay needs --tree (it replays a git bisect log)")
        try:
            text = path.read_text()
        except OSError as exc:
            raise UserError(f"--replay {path}: {exc.strerror}") from exc
        pairs = parse_bisect_log(text)
        if not pairs:
            raise UserError(f"--replay {path}: no 'git bisect <term> <sha>' lines")
        assert self.campaign is not None
        for term, sha in pairs:
            if ("git", sha) in self.memo:
                continue
            verdict = self.terms.verdict_for(term)
            outcome = StepOutcome(verdict, f"replayed from {path.name} ({term})")
            self.memo[("git", sha)] = outcome
            self.store.add_step(self.campaign.id, StepRow("git", sha, verdict.value,
                                                          outcome.reason, replayed=True))

    # ------------------------------------------------------------ testing
    def test(self, stage: str, candidate: str) -> StepOutcome:
        hit = self.memo.get((stage, candidate))
        if hit is not None:
            self.handler.message(f"{candidate[:12]}: {hit.verdict.value} (recorded earlier)")
            return hit
        assert self.campaign is not None
        self.step_no += 1
        step_dir = self.campaign.dir / f"{stage}-{slug(candidate)[:40]}-{int(time.time())}"
        step_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        if stage == "list":
            out = self._test_prebuilt(candidate, step_dir)
        else:
            out = self._test_commit(candidate, step_dir)
        out.total_s = round(time.monotonic() - t0, 2)
        return out

    def record(self, stage: str, candidate: str, o: StepOutcome) -> None:
        if (stage, candidate) in self.memo:
            return
        assert self.campaign is not None
        self.memo[(stage, candidate)] = o
        self.store.add_step(self.campaign.id, StepRow(
            stage, candidate, o.verdict.value, o.reason, o.build_s, o.boot_s, o.test_s,
            o.total_s, o.cached, o.run_dir, o.build_log))

    def _from_run(self, res: runner.RunResult, build_s: float = 0.0, cached: bool = False,
                  build_log: str | None = None) -> StepOutcome:
        assert res.verdict is not None
        ph = res.phases
        return StepOutcome(res.verdict, res.reason, build_s=round(build_s, 2),
                           boot_s=ph.get("boot", 0.0), test_s=ph.get("test", 0.0),
                           cached=cached, run_dir=res.run_dir, build_log=build_log)

    def _test_prebuilt(self, spec: str, step_dir: Path) -> StepOutcome:
        try:
            art = kernels.resolve(spec)
        except kernels.KernelUnavailable as exc:
            return StepOutcome(Verdict.SKIP, str(exc), run_dir=str(step_dir))
        res = runner.run(spec, self.repro, step_dir, self.opts, artifact=art,
                         on_phase=self.handler.message)
        return self._from_run(res)

    def _test_commit(self, sha: str, step_dir: Path) -> StepOutcome:
        assert self.source is not None
        try:
            art = self.source.resolve(sha)
        except BuildFailure as exc:
            st = self.source.last
            (step_dir / "build-failure.txt").write_text(f"{exc}\nlog: {exc.log_path}\n")
            return StepOutcome(Verdict.SKIP, str(exc), build_s=round(st.config_s + st.build_s, 2),
                               cached=st.cached, run_dir=str(step_dir),
                               build_log=str(exc.log_path))
        st = self.source.last
        res = runner.run(f"git:{sha[:12]}", self.repro, step_dir, self.opts, artifact=art,
                         on_phase=self.handler.message)
        log_path = art.root / "build.log"
        return self._from_run(res, st.config_s + st.build_s, st.cached,
                              str(log_path) if log_path.exists() else None)

    # ------------------------------------------------------------ stages
    def _verify(self, old: str, new: str, names: tuple[str, str]) -> str | None:
        """Test both endpoints; a mismatch explains itself (returned), else None."""
        for rev, name, want in ((old, names[0], self.terms.old_verdict),
                                (new, names[1], self.terms.new_verdict)):
            self.handler.step_started("verify", 0, rev, 0)
            o = self.test("verify", rev)
            self.record("verify", rev, o)
            self.handler.step_finished("verify", 0, rev, o)
            if o.verdict is not want:
                return (f"{name} should be {want.value.upper()} "
                        f"but is {o.verdict.value.upper()}: {o.reason}")
        return None

    def run(self) -> CampaignResult:
        self.open()
        assert self.campaign is not None
        good, bad = self.args.good, self.args.bad
        old, new = (bad, good) if self.terms.find_fix else (good, bad)
        result: dict[str, Any] = {"terms": asdict(self.terms), "stages": []}
        status = "done"
        if is_prebuilt(old) and is_prebuilt(new):
            lst = self._list_stage(old, new)
            if isinstance(lst, str):
                result["mismatch"] = lst
                return self._finish("mismatch", result)
            result["stages"].append({"stage": "list", **asdict(lst)})
            if not lst.found:
                return self._finish("inconclusive", result)
            if self.source is None:
                return self._finish("done", result)
            mapped = self._map_upstream(lst)
            result["upstream"] = mapped
            if isinstance(mapped, str):
                result["mismatch"] = mapped
                return self._finish("mismatch", result)
            old, new = mapped["old_tag"], mapped["new_tag"]
        elif is_prebuilt(old) or is_prebuilt(new):
            raise UserError("--good and --bad must both be prebuilt kernels "
                            "(debian:…, ubuntu-mainline:…) or both git revisions")
        if self.source is None:
            raise UserError("git revisions need --tree PATH (a kernel git checkout)")
        old_sha, new_sha = self.source.rev_parse(old), self.source.rev_parse(new)
        result["range"] = {"old": old, "new": new, "old_sha": old_sha, "new_sha": new_sha}
        up = result.get("upstream")
        if self.args.verify or up:
            names = ((f"upstream {old} (base of {up['old_spec']})",
                      f"upstream {new} (base of {up['new_spec']})") if up else
                     (f"endpoint {old} ({old_sha[:12]})", f"endpoint {new} ({new_sha[:12]})"))
            why = self._verify(old_sha, new_sha, names)
            if why is not None:
                if "upstream" in result:
                    why += (" — the distro kernel does not behave like the upstream tag it is "
                            "based on (distro patches/config): the git stage was not run")
                result["mismatch"] = why
                return self._finish("mismatch", result)
        gb = GitBisection(self.source.ensure_worktree(), old_sha, new_sha, self.terms)
        gb.start()
        try:
            res = Bisector(self.test, self.handler, self.record).run("git", gb)
            result["stages"].append({"stage": "git", **asdict(res)})
            result["bisect_log"] = gb.log()
        finally:
            gb.reset()
        if res.found and res.first is not None:
            result["culprit"] = commit_info(self.source.tree, res.first)
        else:
            status = "inconclusive"
            result["candidates"] = [commit_info(self.source.tree, c) for c in res.candidates]
        return self._finish(status, result)

    def _list_stage(self, old: str, new: str) -> Result | str:
        prefix = old.split(":", 1)[0]
        if new.split(":", 1)[0] != prefix:
            raise UserError(f"{old} and {new} come from different sources; a list bisection "
                            "needs one ordered list")
        specs = [e.spec for e in kernels.source_for(prefix).available()]
        for s in (old, new):
            if s not in specs:
                raise UserError(f"{s}: not in the {prefix} list "
                                f"(see 'bisector kernels list {prefix}')")
        i, j = specs.index(old), specs.index(new)
        if i >= j:
            raise UserError(f"{old} is not older than {new} in the {prefix} list")
        items = specs[i:j + 1]
        self.handler.message(f"list stage: {len(items)} kernels from {old} to {new}")
        bis = ListBisection(items, self.terms)
        if self.args.verify:
            why = self._verify(old, new, (f"endpoint {old}", f"endpoint {new}"))
            if why is not None:
                return why
        return Bisector(self.test, self.handler, self.record).run("list", bis)

    def _map_upstream(self, lst: Result) -> dict[str, str] | str:
        assert self.source is not None and lst.first is not None and lst.last_old is not None
        tags = {}
        for role, spec in (("old", lst.last_old), ("new", lst.first)):
            art = kernels.resolve(spec)
            up = art.meta.get("upstream")
            if not up:
                return f"{spec}: its upstream version is unknown; cannot map it to a tag"
            tags[role] = str(up)
        if tags["old"] == tags["new"]:
            return (f"{lst.last_old} and {lst.first} are both based on upstream {tags['old']}: "
                    "the change is in the distro's own patches or config, not upstream")
        for t in tags.values():
            if git(self.source.tree, "rev-parse", "--verify", "--quiet", f"{t}^{{commit}}",
                   check=False).returncode != 0:
                raise UserError(f"the tree {self.source.tree} has no tag {t} "
                                f"(needed to bisect upstream between {tags['old']} and "
                                f"{tags['new']}); fetch the tags first")
        self.handler.message(f"{lst.last_old} → {tags['old']}, {lst.first} → {tags['new']}: "
                             "bisecting upstream")
        return {"old_spec": lst.last_old, "new_spec": lst.first,
                "old_tag": tags["old"], "new_tag": tags["new"]}

    def _finish(self, status: str, result: dict[str, Any]) -> CampaignResult:
        assert self.campaign is not None
        self.store.finish(self.campaign.id, status, result)
        c = self.store.get(self.campaign.id)
        assert c is not None
        return CampaignResult(c, status, result)


def commit_info(tree: Path, sha: str) -> dict[str, str]:
    fmt = "%H%x00%s%x00%an <%ae>%x00%aI"
    out = git(tree, "log", "-1", f"--format={fmt}", sha).stdout.strip().split("\0")
    info = {"sha": out[0], "subject": out[1], "author": out[2], "date": out[3]}
    info["fixes"] = f'Fixes: {out[0][:12]} ("{out[1]}")'
    return info


def run_campaign(args: BisectArgs, handler: Handler, store: Store | None = None
                 ) -> CampaignResult:
    """Run (or resume) a campaign.  On an infrastructure error it stays 'running',
    so the same command, or ``bisector resume``, continues it."""
    return CampaignRunner(args, store or Store(), handler).run()
