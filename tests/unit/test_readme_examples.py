"""Every ``bisector …`` example in README.md, run through the real CLI, in-process.

:func:`readme_examples` extracts the command lines of README.md's fenced code
blocks (``\\`` continuations joined, trailing ``# comments`` dropped,
placeholders kept as written).  ``test_every_readme_example_has_a_test``
requires that set to equal the keys of :data:`EXAMPLES`, so an example added
to the README without a test, or a test whose README line is gone, fails.

Each example then runs from its README text: :func:`to_argv` turns the line
into argv the way a shell and a reader would — ``~`` expanded (``HOME`` is a
temporary directory), ``reproducers/*.yaml`` globbed, ``[optional]`` groups
kept or dropped per form — and substitutes the placeholders:

* ``~/linux``: a small real git tree with the fake kbuild tree
  (``tests/fakes/fakelinux``), 16 commits tagged ``v6.1`` (c1), ``v6.1.170``
  (c3), ``v6.1.187`` (c5), ``v6.1.190`` (c8), ``v6.1.192`` (c10); HEAD is c16.
  Built once per module and copied for each test; every git kernel is really
  built from it (a fake bzImage, well under a second each).
* ``FILE`` and ``reproducers/…``: the shipped reproducers (the working
  directory has a ``reproducers`` link to the repository's).
* ``debian:6.1.0-NN``: a Debian archive on 127.0.0.1 with real .debs (ABIs 47,
  50, 53, 54, 56, 57 packaging v6.1.170 … v6.1.193), unsigned
  (``BISECTOR_DEBIAN_KEYRING=none``).
* ``ubuntu-mainline:vX``: a mainline archive on 127.0.0.1 (v5.5 … v5.9, rcs,
  one failed build), ``BISECTOR_UBUNTU_MAINLINE_URL``.
* ``bisect.log``: the ``bisect.log`` a previous run of the README's first git
  bisection wrote into its report; ``…`` is that example's arguments.
* ``[CAMPAIGN]``: a campaign whose VM "dies" (``InfraError``) after two steps,
  resumed with and without its id, and by re-running the command (the README's
  comment says that works too).

Forms: a line with an ``[optional]`` group runs with and without it; ``kernels
list`` also runs the sources its comment names.  The cron line of the
"Nightly sweep" section (``.venv/bin/bisector sweep …``) is not a ``bisector …``
line; ``test_readme_cron_example`` runs it on its own, and
``test_readme_systemd_units`` checks the systemd pair.

The one fake in the product path is the VM boundary,
``bisector.runner.boot_and_test``: a script that answers from the kernel it
is handed (a git build's ``meta["commit"]`` against the scenario's culprit or
fix, a Debian kernel's ABI, a mainline kernel's upstream version).
Fetching, unpacking, config checks, git builds, ``git bisect``, the store, the
reports and the CLI's exit codes are the real ones.

``bisector image build``: its slow step is mmdebstrap (about a minute, and
network to Debian's archive).  It is replaced at the subprocess boundary, not
in Python: a stand-in ``mmdebstrap`` executable (:mod:`tests.fakes.mmdebstrap`)
first on ``PATH`` lays out a minimal root directory.  So the command's own
code runs unchanged — the shipped recipe and its cache key, the subprocess
gate and build log, real ssh-keygen host/client keys, the init and sshd
config, the real ``mke2fs -d`` disk, caching and ``--rebuild`` — and the test
can assert what mmdebstrap was asked for (suite, mirror, the recipe's packages).
Pointing ``BISECTOR_IMAGES`` at a toy recipe would still have run mmdebstrap.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from bisector import cli
from bisector.errors import InfraError
from bisector.kernel.base import KernelArtifact, version_key
from bisector.reproducer import Reproducer
from bisector.runner import RunOptions, Timer
from bisector.verdict import Outcome, Verdict
from tests.fakes import mmdebstrap
from tests.fakes.archive import serve
from tests.fakes.gitrepo import linear_repo
from tests.fakes.kernel_archives import config_text, debian_kernels, mainline_kernels

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
GRE = "reproducers/gre-ecn-mac-corruption.yaml"

# ------------------------------------------------------------------ README extraction

_FENCE = re.compile(r"^\s*```")
_COMMENT = re.compile(r"(^|\s)#.*$")


def readme_examples(text: str) -> list[str]:
    """The ``bisector …`` command lines of the fenced code blocks, as written."""
    out: list[str] = []
    in_block = False
    pending: str | None = None
    for raw in text.splitlines():
        if _FENCE.match(raw):
            in_block, pending = not in_block, None
            continue
        if not in_block:
            continue
        line = _COMMENT.sub("", raw).strip()
        if pending is not None:
            line, pending = f"{pending} {line}", None
        elif not line.startswith("bisector "):
            continue
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        out.append(" ".join(line.split()))
    return out


_OPTIONAL = re.compile(r"\[([^\]]+)\]")


def to_argv(line: str, keep: Collection[str] = (),
            subs: Mapping[str, list[str]] | None = None) -> list[str]:
    """A README line → argv, as a shell would run it after the reader filled it in:
    ``[X]`` groups whose text is in ``keep`` are kept (brackets dropped), the others
    removed; words in ``subs`` replaced; ``~`` expanded; globs expanded in the cwd."""
    text = _OPTIONAL.sub(lambda m: m.group(1) if m.group(1) in keep else "", line)
    words = shlex.split(text)
    assert words[0] == "bisector", line
    argv: list[str] = []
    for w in words[1:]:
        if subs and w in subs:
            argv += subs[w]
        elif w.startswith("~"):
            argv.append(os.path.expanduser(w))
        elif any(c in w for c in "*?"):
            found = sorted(glob.glob(w))
            assert found, f"{w}: matches nothing"
            argv += found
        else:
            argv.append(w)
    return argv


# ------------------------------------------------------------------ the local world

N_COMMITS = 16
TAGS = {1: "v6.1", 3: "v6.1.170", 5: "v6.1.187", 8: "v6.1.190", 10: "v6.1.192"}
#: the culprit of the git examples: after v6.1.192 (c10), before HEAD (c16)
CULPRIT = 13
#: the culprit upstream of the Debian answer (between v6.1.187 = c5 and v6.1.190 = c8)
UPSTREAM_CULPRIT = 7
#: the fix --find-fix looks for (between v6.1.170 = c3 and HEAD)
FIX = 9

#: Debian ABI → package version (the upstream release it packages)
DEBIAN = {47: "6.1.170-1", 50: "6.1.176-1", 53: "6.1.187-1", 54: "6.1.190-1",
          56: "6.1.192-1", 57: "6.1.193-1"}
DEBIAN_FIRST_BAD = 54
MAINLINE = ["v5.5", "v5.6", "v5.6.1", "v5.6.2", "v5.7-rc1", "v5.7-rc2", "v5.7", "v5.7.1",
            "v5.8", "v5.9"]
MAINLINE_FAILED = ["v5.6.2"]
MAINLINE_FIRST_BAD = "v5.7-rc2"
REPRODUCERS = sorted((REPO / "reproducers").glob("*.yaml"))
#: the prebuilt kernels' config: what the shipped reproducers require (a distro kernel
#: has it all), built in, and what a guest needs to boot without an initramfs
CONFIG = config_text(sorted({o for f in REPRODUCERS
                             for o in yaml.safe_load(f.read_text())["requires"]["config"]}
                            | {"EXT4_FS", "VIRTIO_BLK", "VIRTIO_PCI", "VIRTIO_NET"}))


@pytest.fixture(scope="module")
def template_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("template") / "linux"
    shas = linear_repo(path, N_COMMITS, kbuild=True, tags=TAGS)
    return path, shas


@pytest.fixture(scope="module")
def debian_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("debian")
    root = debian_kernels(base / "archive", base, DEBIAN, CONFIG)
    with serve(root) as url:
        yield url


@pytest.fixture(scope="module")
def mainline_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = mainline_kernels(tmp_path_factory.mktemp("mainline"), MAINLINE, CONFIG,
                            failed=MAINLINE_FAILED)
    with serve(root) as url:
        yield url


@dataclass
class Ran:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


@dataclass
class World:
    """One example's state: HOME, cwd, cache, archives, tree and the scripted VM."""

    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    request: pytest.FixtureRequest
    #: what the scripted VM booted: a git build's commit sha, else the kernel spec
    booted: list[str] = field(default_factory=list)
    #: what culprit verification booted after the search (re-tests, the revert)
    confirmed: list[str] = field(default_factory=list)
    shas: list[str] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.tmp / "home"

    @property
    def cwd(self) -> Path:
        return self.tmp / "work"

    def sha(self, rev: str | int) -> str:
        """A commit of the tree by index (c0 = root) or by tag."""
        if isinstance(rev, int):
            return self.shas[rev]
        if rev == "HEAD":
            return self.shas[-1]
        return self.shas[next(i for i, t in TAGS.items() if t == rev)]

    def use_tree(self) -> Path:
        template, self.shas = self.request.getfixturevalue("template_tree")
        tree = self.home / "linux"
        shutil.copytree(template, tree, symlinks=True)
        return tree

    def use_debian(self) -> None:
        url = self.request.getfixturevalue("debian_url")
        self.monkeypatch.setenv("BISECTOR_DEBIAN_ARCHIVES", f"{url}=bookworm")
        self.monkeypatch.setenv("BISECTOR_DEBIAN_KEYRING", "none")  # unsigned local archive

    def use_mainline(self) -> None:
        self.monkeypatch.setenv("BISECTOR_UBUNTU_MAINLINE_URL",
                                self.request.getfixturevalue("mainline_url"))

    def fresh_state(self, name: str) -> None:
        """Another machine's cache and runs (nothing carried over but files we copy)."""
        self.monkeypatch.setenv("BISECTOR_CACHE", str(self.tmp / name / "cache"))
        self.monkeypatch.setenv("BISECTOR_RUNS", str(self.tmp / name / "runs"))

    def vm(self, *, git_first_new: int | None = None, debian_first_new: int | None = None,
           mainline_first_new: str | None = None, find_fix: bool = False,
           crash_after: int | None = None) -> None:
        """Replace the VM: kernels from the given commit / ABI / version on show the new
        state (the bug; with ``find_fix`` the fix).  ``crash_after``: the boot after that
        many raises InfraError, as a dying QEMU would."""

        def shows_new(art: KernelArtifact) -> bool:
            distro = art.meta.get("distro")
            if distro == "git" and git_first_new is not None:
                if art.meta["commit"] not in self.shas:  # the culprit reverted on the new end
                    assert str(art.meta["subject"]).startswith("Revert"), art.meta
                    return False
                return self.shas.index(art.meta["commit"]) >= git_first_new
            if distro == "debian" and debian_first_new is not None:
                return int(art.release.split("-")[1]) >= debian_first_new
            if distro == "ubuntu-mainline" and mainline_first_new is not None:
                return version_key(art.upstream or "") >= version_key(mainline_first_new)
            pytest.fail(f"the scenario did not expect {art.spec} ({distro}) to be booted")

        def boot_and_test(art: KernelArtifact, repro: Reproducer, run_dir: Path,
                          opts: RunOptions, timer: Timer, say: Callable[[str], None]) -> Outcome:
            if crash_after is not None and len(self.booted) >= crash_after:
                raise InfraError("scripted: QEMU was killed (out of memory)")
            booted = self.confirmed if run_dir.name.startswith("confirm-") else self.booted
            booted.append(art.meta["commit"] if art.meta.get("distro") == "git" else art.spec)
            new = shows_new(art)
            bad = new != find_fix
            what = ("fixed" if find_fix else "has the bug") if new else \
                ("still broken" if find_fix else "works")
            return Outcome(Verdict.BAD if bad else Verdict.GOOD,
                           f"scripted: {art.spec} ({art.release}) {what}")

        self.monkeypatch.setattr("bisector.runner.boot_and_test", boot_and_test)

    def cli(self, argv: list[str]) -> Ran:
        self.capsys.readouterr()
        code = cli.main(argv)
        got = self.capsys.readouterr()
        return Ran(code, got.out, got.err)


@pytest.fixture
def world(tmp_path: Path, tmp_cache: Path, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest) -> World:
    w = World(tmp_path, monkeypatch, capsys, request)
    w.home.mkdir()
    w.cwd.mkdir()
    (w.cwd / "reproducers").symlink_to(REPO / "reproducers")
    monkeypatch.setenv("HOME", str(w.home))
    monkeypatch.delenv("BISECTOR_TREE", raising=False)
    monkeypatch.chdir(w.cwd)
    return w


# ------------------------------------------------------------------ what answers look like

def report_dir(ran: Ran) -> Path:
    """The report directory named on the last line (``report: X/report.md``)."""
    m = re.fullmatch(r"report: (\S+)/report\.md", ran.lines[-1])
    assert m, ran
    return Path(m.group(1))


def steps_line(ran: Ran) -> tuple[int, int]:
    """``steps: N  builds: M``, printed before the report is written."""
    m = re.fullmatch(r"steps: (\d+)  builds: (\d+)", ran.lines[-2])
    assert m, ran
    return int(m.group(1)), int(m.group(2))


def assert_culprit(w: World, ran: Ran, index: int) -> None:
    """Exit 0 and a regression culprit, the mail lines and a report naming it."""
    sha = w.sha(index)
    assert ran.code == 0, ran
    assert ran.lines[0] == f"culprit: {sha[:12]} change {index}", ran
    assert f'  Fixes: {sha[:12]} ("change {index}")' in ran.lines, ran
    assert f"  #regzbot introduced: {sha}" in ran.lines, ran
    rep = report_dir(ran)
    assert sha[:12] in (rep / "report.md").read_text()
    assert sha[:12] in (rep / "report.html").read_text()
    assert json.loads((rep / "report.json").read_text())["result"]["culprit"]["sha"] == sha
    assert f"# first bad commit: [{sha}] change {index}" in (rep / "bisect.log").read_text()


def assert_git_steps(w: World, olds: list[int], new: int) -> None:
    """Endpoints first (old ones, then the new one), nothing twice, about log2 steps."""
    want = [w.sha(i) for i in [*olds, new]]
    assert w.booted[:len(want)] == want
    assert len(w.booted) == len(set(w.booted))
    span = new - max(olds)
    assert len(w.booted) <= len(want) + math.ceil(math.log2(span)) + 1


# ------------------------------------------------------------------ the examples

RUN_DEBIAN = ("bisector run --kernel debian:6.1.0-56 --repro "
              "reproducers/gre-ecn-mac-corruption.yaml")
RUN_GIT = ("bisector run --kernel git:v6.1.192 --tree ~/linux --repro "
           "reproducers/gre-ecn-mac-corruption.yaml")
BISECT_GIT = ("bisector bisect --repro reproducers/gre-ecn-mac-corruption.yaml "
              "--tree ~/linux --good v6.1.192 --bad HEAD")
BISECT_GOODS = "bisector bisect --repro FILE --tree ~/linux --good v6.1 --good v6.1.190 --bad HEAD"
BISECT_DEBIAN = ("bisector bisect --repro FILE --good debian:6.1.0-47 --bad debian:6.1.0-56 "
                 "[--tree ~/linux]")
BISECT_MAINLINE = ("bisector bisect --repro FILE --good ubuntu-mainline:v5.6 "
                   "--bad ubuntu-mainline:v5.8")
FIND_FIX = "bisector bisect --repro FILE --tree ~/linux --bad v6.1.170 --good HEAD --find-fix"
REPLAY = "bisector bisect … --replay bisect.log"
RESUME = "bisector resume [CAMPAIGN]"
VALIDATE = "bisector repro validate reproducers/*.yaml"
LIST = "bisector kernels list debian"
FETCH = "bisector kernels fetch debian:6.1.0-56"
IMAGE = "bisector image build [--rebuild]"
ACROSS = ("bisector bisect --repro FILE --good debian:6.1.0-53 --bad debian:6.12.57+deb13 "
          "--across-series")
BAYES = "bisector bisect … --strategy bayes"
CACHE_DU = "bisector cache du"
CACHE_PRUNE = "bisector cache prune --keep 5 --older-than 30d"
SWEEP = "bisector sweep --config sweep.example.yaml"

SUBS = {"FILE": [GRE]}


def ex_run_debian(w: World, form: str) -> None:
    w.use_debian()
    w.vm(debian_first_new=DEBIAN_FIRST_BAD)
    ran = w.cli(to_argv(RUN_DEBIAN))
    assert ran.code == 1, ran  # BAD: git bisect run's "bad"
    assert ran.lines[0] == "BAD: scripted: debian:6.1.0-56 (6.1.0-56-amd64) has the bug", ran
    assert ran.lines[1].startswith("kernel: debian:6.1.0-56 (6.1.0-56-amd64)"), ran
    assert ran.lines[2].startswith("phases: kernel "), ran
    logs = Path(ran.lines[3].removeprefix("logs:").strip())
    assert logs.is_relative_to(w.tmp / "runs")
    result = json.loads((logs / "result.json").read_text())
    assert result["verdict"] == "bad" and result["release"] == "6.1.0-56-amd64"
    assert "CONFIG_NET_IPGRE=y" in (logs / "kernel.config").read_text()
    assert w.booted == ["debian:6.1.0-56"]


def ex_run_git(w: World, form: str) -> None:
    w.use_tree()
    w.vm(git_first_new=CULPRIT)
    ran = w.cli(to_argv(RUN_GIT))
    assert ran.code == 0, ran  # GOOD
    assert ran.lines[0] == "GOOD: scripted: git:v6.1.192 (6.1.0-fake) works", ran
    assert ran.lines[1].startswith("kernel: git:v6.1.192 (6.1.0-fake)"), ran
    logs = Path(ran.lines[3].removeprefix("logs:").strip())
    config = (logs / "kernel.config").read_text()
    # built with the reproducer's options forced on
    assert all(f"CONFIG_{o}=y" in config for o in ("NET_NS", "VETH", "NET_IPGRE", "PACKET"))
    assert w.booted == [w.sha("v6.1.192")]


def ex_bisect_git(w: World, form: str) -> None:
    w.use_tree()
    w.vm(git_first_new=CULPRIT)
    ran = w.cli(to_argv(BISECT_GIT, subs=SUBS))
    assert_culprit(w, ran, CULPRIT)
    assert_git_steps(w, [10], N_COMMITS)


def ex_bisect_goods(w: World, form: str) -> None:
    w.use_tree()
    w.vm(git_first_new=CULPRIT)
    ran = w.cli(to_argv(BISECT_GOODS, subs=SUBS))
    assert_culprit(w, ran, CULPRIT)
    assert_git_steps(w, [1, 8], N_COMMITS)


def ex_bisect_debian(w: World, form: str) -> None:
    w.use_debian()
    if not form:
        w.vm(debian_first_new=DEBIAN_FIRST_BAD)
        ran = w.cli(to_argv(BISECT_DEBIAN, subs=SUBS))
        assert ran.code == 0, ran
        assert ran.lines[0] == "first bad kernel: debian:6.1.0-54 (last good: debian:6.1.0-53)"
        assert ran.lines[1] == ("  first bad debian:6.1.0-54 = v6.1.190, last good "
                                "debian:6.1.0-53 = v6.1.187: the change is in "
                                "v6.1.187..v6.1.190"), ran
        repro = (w.cwd / GRE).resolve()  # the campaign stores absolute paths
        assert ran.lines[2].startswith(f"  continue upstream: bisector bisect --repro {repro} "
                                       "--good v6.1.187 --bad v6.1.190 --tree PATH"), ran
        assert w.booted[:2] == ["debian:6.1.0-47", "debian:6.1.0-56"]
        assert len(w.booted) == len(set(w.booted)) <= 2 + 3
        return
    # with --tree: the list stage, then upstream v6.1.187..v6.1.190 in the tree
    w.use_tree()
    w.vm(debian_first_new=DEBIAN_FIRST_BAD, git_first_new=UPSTREAM_CULPRIT)
    ran = w.cli(to_argv(BISECT_DEBIAN, keep=[form], subs=SUBS))
    assert_culprit(w, ran, UPSTREAM_CULPRIT)
    debs = [b for b in w.booted if b.startswith("debian:")]
    commits = w.booted[len(debs):]
    assert debs[:2] == ["debian:6.1.0-47", "debian:6.1.0-56"] and "debian:6.1.0-54" in debs
    assert commits[:2] == [w.sha("v6.1.187"), w.sha("v6.1.190")]  # upstream tags tested
    assert set(commits) <= {w.sha(i) for i in range(5, 9)}


def ex_bisect_mainline(w: World, form: str) -> None:
    w.use_mainline()
    w.vm(mainline_first_new=MAINLINE_FIRST_BAD)
    ran = w.cli(to_argv(BISECT_MAINLINE, subs=SUBS))
    assert ran.code == 0, ran
    assert ran.lines[0] == ("first bad kernel: ubuntu-mainline:v5.7-rc2 "
                            "(last good: ubuntu-mainline:v5.7-rc1)"), ran
    assert ran.lines[1] == ("  first bad ubuntu-mainline:v5.7-rc2 = v5.7-rc2, last good "
                            "ubuntu-mainline:v5.7-rc1 = v5.7-rc1: the change is in "
                            "v5.7-rc1..v5.7-rc2"), ran
    assert w.booted[:2] == ["ubuntu-mainline:v5.6", "ubuntu-mainline:v5.8"]
    assert len(w.booted) == len(set(w.booted))


def ex_find_fix(w: World, form: str) -> None:
    w.use_tree()
    w.vm(git_first_new=FIX, find_fix=True)
    ran = w.cli(to_argv(FIND_FIX, subs=SUBS))
    sha = w.sha(FIX)
    assert ran.code == 0, ran
    assert ran.lines[0] == f"first fixed commit: {sha[:12]} change {FIX}", ran
    assert f'  fixed by: {sha[:12]} ("change {FIX}")' in ran.lines, ran
    assert f"  stable backport: commit {sha} upstream ('change {FIX}')" in ran.lines, ran
    assert not any("Fixes:" in ln or "regzbot" in ln for ln in ran.lines), ran
    assert_git_steps(w, [3], N_COMMITS)  # old end = the broken v6.1.170, new end = HEAD


def ex_replay(w: World, form: str) -> None:
    """``…`` is the README's first git bisection; its bisect.log is replayed elsewhere."""
    w.use_tree()
    w.vm(git_first_new=CULPRIT)
    args = to_argv(BISECT_GIT, subs=SUBS)[1:]  # what follows "bisect"
    first = w.cli(to_argv(BISECT_GIT, subs=SUBS))
    assert_culprit(w, first, CULPRIT)
    log_lines = (report_dir(first) / "bisect.log").read_text().splitlines(keepends=True)
    verdicts = [i for i, ln in enumerate(log_lines) if re.match(r"git bisect (good|bad) ", ln)]
    if form:  # the endpoints and the first bisection step only: the rest is tested
        log_lines = log_lines[:verdicts[2] + 1]
    (w.cwd / "bisect.log").write_text("".join(log_lines))
    replayed = {ln.split()[-1] for ln in log_lines if re.match(r"git bisect (good|bad) ", ln)}
    tested_before = list(w.booted)
    w.booted.clear()
    w.confirmed.clear()
    w.fresh_state("elsewhere")
    ran = w.cli(to_argv(REPLAY, subs={"…": args}))
    assert_culprit(w, ran, CULPRIT)
    assert not replayed & set(w.booted), "a replayed verdict was tested again"
    assert len(w.booted) == len(tested_before) - len(replayed)
    # replayed steps are not counted as steps; culprit verification's are
    assert steps_line(ran)[0] == len(w.booted) + len(w.confirmed)
    if not form:  # nothing searched; only culprit verification boots (its builds cached)
        assert w.booted == [] and steps_line(ran)[0] == len(w.confirmed)


def ex_resume(w: World, form: str) -> None:
    """A campaign whose VM dies after two steps, then ``resume`` (or, as the README's
    comment says, re-running the same command)."""
    w.use_tree()
    w.vm(git_first_new=CULPRIT, crash_after=2)
    crashed = w.cli(to_argv(BISECT_GIT, subs=SUBS))
    assert crashed.code == 3, crashed  # infrastructure error: the campaign stays resumable
    assert "bisector: infrastructure error: scripted: QEMU was killed" in crashed.err
    assert crashed.out == ""
    m = re.search(r"^\[bisector\] campaign (\d+): logs in ", crashed.err, re.M)
    assert m, crashed
    cid = m.group(1)
    before = list(w.booted)
    assert len(before) == 2
    w.vm(git_first_new=CULPRIT)  # the machine is fine again
    argv = (to_argv(BISECT_GIT, subs=SUBS) if form == "re-running works too"
            else to_argv(RESUME, keep=[form], subs={"CAMPAIGN": [cid]}))
    ran = w.cli(argv)
    assert f"resuming campaign {cid}: 2 finished step(s) will not be repeated" in ran.err, ran
    assert_culprit(w, ran, CULPRIT)
    assert report_dir(ran) == w.tmp / "runs" / f"campaign-{cid}" / "report"
    assert w.booted[:2] == before and len(w.booted) == len(set(w.booted))
    # the steps before the crash count too, and culprit verification's
    assert steps_line(ran)[0] == len(w.booted) + len(w.confirmed)
    again = w.cli(to_argv(RESUME, keep=[form], subs={"CAMPAIGN": [cid]}))
    assert again.code == 2, again  # nothing left to resume: a user error
    assert again.err.startswith("bisector: error: "), again


def ex_validate(w: World, form: str) -> None:
    ran = w.cli(to_argv(VALIDATE))
    assert len(REPRODUCERS) >= 5
    assert ran.code == 0, ran
    assert ran.lines == [f"ok: reproducers/{f.name} ({f.stem})" for f in REPRODUCERS], ran


def ex_kernels_list(w: World, form: str) -> None:
    if form == "also: ubuntu-mainline":
        w.use_mainline()
        ran = w.cli(to_argv(LIST.replace(" debian", " ubuntu-mainline")))
        assert ran.code == 0, ran
        # failed builds are hidden unless --all
        assert [ln.split()[0] for ln in ran.lines] == [f"ubuntu-mainline:{v}" for v in MAINLINE
                                                       if v not in MAINLINE_FAILED]
        return
    if form == "also: git --tree PATH":
        w.use_tree()
        ran = w.cli(to_argv(LIST.replace(" debian", " git --tree ~/linux")))
        assert ran.code == 0, ran
        assert [ln.split()[0] for ln in ran.lines] == [
            f"git:{t}" for t in ["v0", *TAGS.values()]], ran
        return
    w.use_debian()
    ran = w.cli(to_argv(LIST))
    assert ran.code == 0, ran
    assert [ln.split()[:2] for ln in ran.lines] == [
        [f"debian:6.1.0-{abi}", ver] for abi, ver in DEBIAN.items()], ran
    for line, ver in zip(ran.lines, DEBIAN.values(), strict=True):
        assert line.endswith(f"bookworm, upstream v{ver.split('-')[0]}"), line


def ex_kernels_fetch(w: World, form: str) -> None:
    w.use_debian()
    ran = w.cli(to_argv(FETCH))
    assert ran.code == 0, ran
    got = json.loads(ran.out)
    assert got["spec"] == "debian:6.1.0-56" and got["release"] == "6.1.0-56-amd64"
    assert got["upstream"] == "v6.1.192" and got["meta"]["version"] == "6.1.192-1"
    image = Path(got["image"])
    assert image.is_relative_to(w.tmp / "cache")
    assert image.read_bytes().endswith(b"kernel 6.1.0-56-amd64")
    assert got["modules"] is None and got["initrd"] is None  # virtio/ext4 built in


def ex_image_build(w: World, form: str) -> None:
    calls_log = mmdebstrap.install(w.tmp / "bin")
    w.monkeypatch.setenv("PATH", f"{w.tmp / 'bin'}{os.pathsep}{os.environ['PATH']}")
    w.monkeypatch.setenv("BISECTOR_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
    recipe = REPO / "vm-images" / "bookworm"
    packages = [p.split("#")[0].strip() for p in (recipe / "packages.txt").read_text().splitlines()]

    def build(keep: list[str]) -> Path:
        ran = w.cli(to_argv(IMAGE, keep=keep))
        assert ran.code == 0, ran
        root = Path(ran.out.strip())
        assert root.is_relative_to(w.tmp / "cache" / "images") and root.name.startswith(
            "bookworm-")
        for f in ("rootfs.ext4", "image.json", "ssh_host_ed25519_key.pub", "id_ed25519"):
            assert (root / f).is_file(), f
        return root

    root = build([])
    calls = mmdebstrap.calls(calls_log)
    assert len(calls) == 1
    argv = calls[0]
    assert argv[-3:-1] == ["bookworm", str(root.with_name(root.name + ".building") / "rootfs")]
    assert argv[-1] == "http://127.0.0.1:9/debian" and "--variant=minbase" in argv
    include = next(a for a in argv if a.startswith("--include="))
    assert include.removeprefix("--include=").split(",") == [p for p in packages if p]
    meta = json.loads((root / "image.json").read_text())
    assert meta["suite"] == "bookworm" and meta["mirror"] == "http://127.0.0.1:9/debian"
    # what bisector put into the bootstrapped root (read back from the ext4 disk)
    disk = root / "rootfs.ext4"
    assert ext4_ls(disk, "/etc/ssh") >= {"ssh_host_ed25519_key", "ssh_host_ed25519_key.pub",
                                         "sshd_config"}
    assert "ssh_host_rsa_key" not in ext4_ls(disk, "/etc/ssh")  # the bootstrap's key is gone
    assert "bisector-init" in ext4_ls(disk, "/sbin")
    assert ext4_ls(disk, "/root/.ssh") == {"authorized_keys"}
    assert ext4_ls(disk, "/var/cache/apt/archives") == set()
    key = (root / "ssh_host_ed25519_key.pub").read_text()
    if not form:
        assert build([]) == root  # cached: built once
        assert len(mmdebstrap.calls(calls_log)) == 1
        return
    assert build([form]) == root
    assert len(mmdebstrap.calls(calls_log)) == 2  # rebuilt from scratch
    assert (root / "ssh_host_ed25519_key.pub").read_text() != key  # fresh host key


def ex_across_series(w: World, form: str) -> None:
    """6.1.y and 6.12.y Debian kernels: refused without the flag, walked with it."""
    from tests.fakes.archive import build_deb, debian_archive, fake_kernel

    debs = []
    for rel, ver in (("6.1.0-53-amd64", "6.1.187-1"), ("6.1.0-57-amd64", "6.1.193-1"),
                     ("6.12.41+deb13-amd64", "6.12.41-1"), ("6.12.57+deb13-amd64", "6.12.57-1")):
        name = f"linux-image-{rel}-unsigned"
        debs.append((build_deb(w.tmp / f"{name}.deb", name, ver,
                               {f"boot/vmlinuz-{rel}": fake_kernel(rel.encode()),
                                f"boot/config-{rel}": CONFIG}), name, ver))
    root = w.tmp / "across"
    debian_archive(root, "bookworm", debs)
    booted: list[str] = []

    def boot_and_test(art: KernelArtifact, *a: object) -> Outcome:
        booted.append(art.spec)
        bad = art.release.startswith("6.12.")
        return Outcome(Verdict.BAD if bad else Verdict.GOOD, f"scripted: {art.release}")

    w.monkeypatch.setattr("bisector.runner.boot_and_test", boot_and_test)
    with serve(root) as url:
        w.monkeypatch.setenv("BISECTOR_DEBIAN_ARCHIVES", f"{url}=bookworm")
        w.monkeypatch.setenv("BISECTOR_DEBIAN_KEYRING", "none")
        argv = to_argv(ACROSS, subs=SUBS)
        refused = w.cli([a for a in argv if a != "--across-series"])
        assert refused.code == 2 and "different upstream series" in refused.err, refused
        assert booted == []  # refused before anything was tested
        ran = w.cli(argv)
    assert ran.code == 0, ran
    assert ran.lines[0] == ("first bad kernel: debian:6.12.41+deb13 "
                            "(last good: debian:6.1.0-57)"), ran
    assert booted[:2] == ["debian:6.1.0-53", "debian:6.12.57+deb13"]


def ex_bayes(w: World, form: str) -> None:
    """``…`` is the README's first git bisection, searched by the Bayesian engine."""
    w.use_tree()
    w.vm(git_first_new=CULPRIT)
    args = to_argv(BISECT_GIT, subs=SUBS)[1:]
    ran = w.cli(to_argv(BAYES, subs={"…": args}))
    assert_culprit(w, ran, CULPRIT)
    md = (report_dir(ran) / "report.md").read_text()
    assert "## Bayesian search: top hypotheses" in md


def _example_sweep(w: World) -> None:
    """sweep.example.yaml as shipped, copied (not linked: its results directory is
    relative to the file) next to the ``reproducers`` link."""
    shutil.copyfile(REPO / "sweep.example.yaml", w.cwd / "sweep.example.yaml")
    w.use_debian()
    w.vm(debian_first_new=DEBIAN_FIRST_BAD)


def ex_sweep(w: World, form: str) -> None:
    _example_sweep(w)
    first = w.cli(to_argv(SWEEP))
    # the two newest 6.1 kernels (56, 57) both show the bug: new failures, not regressions
    assert first.code == 0, first
    assert first.lines[0].startswith("sweep 1 (example-6.1): 4 cells in "), first
    assert first.lines[0].endswith("— 2 new failure"), first
    assert sorted(w.booted) == ["debian:6.1.0-56"] * 2 + ["debian:6.1.0-57"] * 2
    site = w.cwd / "sweep-results"
    for f in ("index.html", "report.md", "report.json", "junit.xml"):
        assert (site / "sweep-1" / f).is_file(), f
    second = w.cli(to_argv(SWEEP))
    assert second.code == 0 and second.lines[0].endswith("— 2 still failing"), second
    assert (site / "index.html").is_file()


def ex_cache_du(w: World, form: str) -> None:
    kernel = w.tmp / "cache" / "kernels" / "debian" / "k1"
    kernel.mkdir(parents=True)
    (kernel / "vmlinuz").write_bytes(b"x" * (3 << 20))
    ran = w.cli(to_argv(CACHE_DU))
    assert ran.code == 0, ran
    assert "3 MiB  kernels/debian" in ran.out and ran.lines[-1].endswith("total"), ran


def ex_cache_prune(w: World, form: str) -> None:
    import time

    kinds = w.tmp / "cache" / "kernels" / "debian"
    for i in range(7):  # 7 kernels, the 2 oldest unused for 40 days
        d = kinds / f"k{i}"
        d.mkdir(parents=True)
        (d / ".last-used").touch()
        t = time.time() - (40 if i < 2 else 1) * 86400 - i
        os.utime(d / ".last-used", (t, t))
    ran = w.cli(to_argv(CACHE_PRUNE))
    assert ran.code == 0, ran
    assert ran.lines[-1].startswith("removed 2 item(s)"), ran
    assert sorted(p.name for p in kinds.iterdir()) == [f"k{i}" for i in range(2, 7)]


def ext4_ls(disk: Path, path: str) -> set[str]:
    """Names in ``path`` of an ext4 image (debugfs, no mount needed)."""
    r = subprocess.run(["debugfs", "-R", f"ls -p {path}", str(disk)], capture_output=True,
                       text=True, check=True, timeout=60)
    names = {ln.split("/")[5] for ln in r.stdout.splitlines() if ln.count("/") >= 6}
    return names - {".", ".."}


@dataclass(frozen=True)
class Scenario:
    check: Callable[[World, str], None]
    #: the forms the line is run in: "" as written (optional groups dropped), else
    #: the text of the optional group kept, or a variant the line's comment names
    forms: tuple[str, ...] = ("",)


EXAMPLES: dict[str, Scenario] = {
    RUN_DEBIAN: Scenario(ex_run_debian),
    RUN_GIT: Scenario(ex_run_git),
    BISECT_GIT: Scenario(ex_bisect_git),
    BISECT_GOODS: Scenario(ex_bisect_goods),
    BISECT_DEBIAN: Scenario(ex_bisect_debian, ("", "--tree ~/linux")),
    BISECT_MAINLINE: Scenario(ex_bisect_mainline),
    FIND_FIX: Scenario(ex_find_fix),
    REPLAY: Scenario(ex_replay, ("", "partial log")),
    RESUME: Scenario(ex_resume, ("", "CAMPAIGN", "re-running works too")),
    VALIDATE: Scenario(ex_validate),
    LIST: Scenario(ex_kernels_list, ("", "also: ubuntu-mainline", "also: git --tree PATH")),
    FETCH: Scenario(ex_kernels_fetch),
    IMAGE: Scenario(ex_image_build, ("", "--rebuild")),
    ACROSS: Scenario(ex_across_series),
    BAYES: Scenario(ex_bayes),
    CACHE_DU: Scenario(ex_cache_du),
    CACHE_PRUNE: Scenario(ex_cache_prune),
    SWEEP: Scenario(ex_sweep),
}


def test_every_readme_example_has_a_test() -> None:
    found = readme_examples(README.read_text())
    assert len(found) == len(set(found)), "an example is in the README twice"
    assert set(found) - set(EXAMPLES) == set(), "README examples without a test"
    assert set(EXAMPLES) - set(found) == set(), "tests whose README line is gone"


def test_extraction() -> None:
    text = ("```sh\nbisector a \\\n    --b c  # comment\nmake x  # not ours\n"
            "bisector d [E] # x\n  # bisector commented out\n```\nbisector outside\n"
            "```cron\n.venv/bin/bisector run\n```\n")
    assert readme_examples(text) == ["bisector a --b c", "bisector d [E]"]


CASES = [pytest.param(line, form, id=f"{line} | {form}" if form else line)
         for line, sc in EXAMPLES.items() for form in sc.forms]


@pytest.mark.parametrize(("line", "form"), CASES)
def test_readme_example(line: str, form: str, world: World) -> None:
    EXAMPLES[line].check(world, form)


def test_readme_cron_example(world: World) -> None:
    """The crontab line runs the sweep (its exit code 1 only for a new regression),
    and a second start while one runs exits 75 at once, doing nothing."""
    from bisector.sweep.maintenance import sweep_lock

    block = README.read_text().split("```cron\n", 1)[1].split("```", 1)[0]
    m = re.search(r"cd (\S+) && \.venv/bin/bisector (sweep --config \S+) >> (\S+) 2>&1",
                  block)
    assert m, block
    _, command, _ = m.groups()
    _example_sweep(world)
    ran = world.cli(to_argv(f"bisector {command}"))
    assert ran.code == 0 and ran.lines[0].startswith("sweep 1 (example-6.1)"), ran
    booted = len(world.booted)
    with sweep_lock(world.cwd / "sweep-results", "example-6.1"):
        again = world.cli(to_argv(f"bisector {command}"))
    assert again.code == 75, again
    assert "another sweep of 'example-6.1' is running" in again.err
    assert len(world.booted) == booted


def test_readme_systemd_units(tmp_path: Path) -> None:
    """The README's service + timer are contrib/systemd's, and systemd accepts them
    (paths pointed at this checkout, whose venv has the bisector command)."""
    text = README.read_text()
    for name in ("bisector-sweep.service", "bisector-sweep.timer"):
        m = re.search(r"```ini\n# /etc/systemd/system/" + re.escape(name) + r"\n(.*?)```",
                      text, re.S)
        assert m, name
        shipped = (REPO / "contrib" / "systemd" / name).read_text()
        assert m.group(1) == shipped, f"README's {name} differs from contrib/systemd/{name}"
        (tmp_path / name).write_text(shipped.replace("/srv/bisector", str(REPO)))
    assert "Persistent=true" in (tmp_path / "bisector-sweep.timer").read_text()
    r = subprocess.run(["systemd-analyze", "verify", "bisector-sweep.service",
                        "bisector-sweep.timer"], cwd=tmp_path, capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
