"""Read a sweep file and turn it into tonight's plan (kernels × reproducers × params).

Everything that can be wrong with the input is found here, before anything is
written: an unknown key or a bad value (named with file and field, like a
reproducer's), a reproducer glob that matches nothing, a parameter a
reproducer does not declare, a kernel set that resolves to no kernel, an
archive that cannot be reached.  So a bad sweep file never leaves a half
sweep in the store.
"""

from __future__ import annotations

import glob as globlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from .. import git, reproducer
from ..errors import BisectorError, CommandError, InfraError, UserError
from ..kernel.base import version_key
from ..reproducer import Reproducer
from .model import CellKey, DebianSet, GitSet, KernelRef, LocalSet, SweepConfig, UbuntuSet

MAX_CONFIG_BYTES = 256 * 1024


@dataclass
class Plan:
    """A sweep's work, resolved afresh at every sweep from the config."""

    name: str
    config_path: Path
    config: SweepConfig
    results_dir: Path
    kernels: list[KernelRef]
    #: (reproducer name, param-set name) → the rendered reproducer
    reproducers: dict[tuple[str, str], Reproducer]
    #: git lines → their tree (the build source needs it)
    trees: dict[str, Path] = field(default_factory=dict)
    fragments: dict[str, list[Path]] = field(default_factory=dict)
    #: (reproducer name, param-set name) → its ``--param`` overrides
    overrides: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What the store files its sweeps under: the name *and* the results directory,
        so two configs that share a name but not a results directory never compare."""
        return f"{self.name}@{self.results_dir}"

    def cells(self) -> list[CellKey]:
        return [CellKey(line=k.line, kernel=k.spec, reproducer=name, params=pset)
                for k in self.kernels for (name, pset) in sorted(self.reproducers)]

    def kernel(self, spec: str) -> KernelRef:
        return next(k for k in self.kernels if k.spec == spec)

    def line(self, line: str) -> list[KernelRef]:
        return sorted((k for k in self.kernels if k.line == line), key=lambda k: k.order)


def read(path: Path) -> SweepConfig:
    """Parse and validate the file (strict: unknown keys are errors)."""
    raw = reproducer.read_limited(path, MAX_CONFIG_BYTES, f"{path}: sweep config")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    data = reproducer.strict_yaml(path, text, "a sweep config")
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(reproducer.format_validation(path, exc)) from None


def _rel(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def load(path: Path) -> Plan:
    """The plan for tonight, but for its kernels: config read, reproducers loaded
    (:func:`resolve_kernel_sets` lists the kernels: that may take the network)."""
    path = path.resolve()
    cfg = read(path)
    base = path.parent
    repros, overrides = _reproducers(path, cfg)
    return Plan(name=cfg.name or path.stem, config_path=path, config=cfg,
                results_dir=_rel(base, cfg.results).resolve(), kernels=[],
                reproducers=repros, overrides=overrides)


def _reproducers(path: Path, cfg: SweepConfig) -> tuple[
        dict[tuple[str, str], Reproducer], dict[tuple[str, str], dict[str, str]]]:
    out: dict[tuple[str, str], Reproducer] = {}
    given: dict[tuple[str, str], dict[str, str]] = {}
    for i, rs in enumerate(cfg.reproducers):
        where = f"{path}: field 'reproducers[{i}].glob'"
        pattern = str(_rel(path.parent, rs.glob))
        files = sorted(Path(f) for f in globlib.glob(pattern, recursive=True))
        files = [f for f in files if f.suffix in (".yaml", ".yml") and f.is_file()]
        if not files:
            raise UserError(f"{where}: {rs.glob!r} matches no reproducer file")
        for f in files:
            for pset, values in rs.params.items():
                if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", pset):
                    raise UserError(f"{path}: field 'reproducers[{i}].params': param-set "
                                    f"name {pset!r}: letters, digits, '.', '_', '-'")
                overrides = {k: _text(v) for k, v in values.items()}
                try:
                    repro = reproducer.load(f, overrides)
                except UserError as exc:
                    raise UserError(f"{path}: field 'reproducers[{i}].params.{pset}': "
                                    f"{exc}") from None
                key = (repro.spec.name, pset)
                if key in out and out[key].path != repro.path:
                    raise UserError(f"{where}: two reproducers named {repro.spec.name!r} "
                                    f"({out[key].path} and {f})")
                out[key], given[key] = repro, overrides
    return out, given


def _text(v: str | int | float | bool) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


# ---------------------------------------------------------------- kernel sets


def resolve_kernel_sets(plan: Plan) -> None:
    """Each kernel set → its kernels, newest last (a line's order)."""
    for name, ks in plan.config.kernels.items():
        where = f"{plan.config_path}: kernels.{name}"
        try:
            if ks.debian is not None:
                found = {name: debian_kernels(name, ks.debian)}
            elif ks.ubuntu is not None:
                found = {name: ubuntu_kernels(name, ks.ubuntu)}
            elif ks.git is not None:
                tree = _rel(plan.config_path.parent, ks.git.tree).resolve()
                found = git_kernels(name, ks.git, tree)
                for line in found:
                    plan.trees[line] = tree
                    plan.fragments[line] = [_rel(plan.config_path.parent, f).resolve()
                                            for f in ks.git.config_fragments]
            else:
                assert ks.local is not None
                found = {name: local_kernels(name, ks.local, plan.config_path.parent)}
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
        except BisectorError as exc:
            raise InfraError(f"{where}: cannot list its kernels: {exc}") from None
        for line, kernels in found.items():
            if not kernels:
                raise UserError(f"{where}: resolves to no kernels" +
                                (f" (line {line})" if line != name else ""))
            plan.kernels.extend(kernels)


def _refs(line: str, items: list[tuple[str, str, str | None]],
          tree: str | None = None) -> list[KernelRef]:
    return [KernelRef(line=line, spec=spec, label=label, order=i, upstream=up, tree=tree)
            for i, (spec, label, up) in enumerate(items)]


def debian_kernels(line: str, ks: DebianSet) -> list[KernelRef]:
    from ..kernel.debian import DebianSource, series_of

    src = DebianSource()
    entries = [e for e in src.kernels(ks.flavour) if series_of(e.version) == ks.series]
    picked = entries[-ks.newest:]
    return _refs(line, [(e.spec, f"{e.spec.partition(':')[2]} ({e.upstream})", e.upstream)
                        for e in picked])


def ubuntu_kernels(line: str, ks: UbuntuSet) -> list[KernelRef]:
    """The newest N mainline versions with a usable build (a failed build is passed
    over, as the mainline tools' "latest" does), walking down from the newest so only
    the folders needed are read."""
    from ..kernel.ubuntu import UbuntuMainlineSource, is_rc

    src = UbuntuMainlineSource()
    versions = [v for v in src.versions() if ks.rc or not is_rc(v)]
    if ks.series:
        versions = [v for v in versions if re.match(rf"v{re.escape(ks.series)}(\.|-|$)", v)]
    picked: list[str] = []
    for v in sorted(versions, key=version_key, reverse=True):
        if len(picked) == ks.newest:
            break
        (entry,) = src.builds(v)
        if not entry.note.startswith("failed"):
            picked.append(v)
    return _refs(line, [(f"ubuntu-mainline:{v}", v, v) for v in reversed(picked)])


def git_kernels(name: str, ks: GitSet, tree: Path) -> dict[str, list[KernelRef]]:
    """One line per branch: ``<set>/<branch>``, its tip tonight (fetched first if asked)."""
    if not (tree / ".git").exists() and not (tree / "HEAD").exists():
        raise UserError(f"tree {tree}: not a git repository")
    try:
        if ks.fetch:
            git.git(tree, "fetch", "--quiet", ks.remote, timeout=1800)
        out: dict[str, list[KernelRef]] = {}
        for branch in ks.branches:
            sha = _tip(tree, branch, ks.remote)
            subject = git.out(tree, "log", "-1", "--format=%s", sha)
            out[f"{name}/{branch}"] = _refs(
                f"{name}/{branch}", [(f"git:{sha}", f"{branch} @ {sha[:12]} {subject[:50]}",
                                      None)], tree=str(tree))
        return out
    except CommandError as exc:
        raise InfraError(f"tree {tree}: {exc}") from None


def _tip(tree: Path, branch: str, remote: str) -> str:
    for ref in (f"refs/remotes/{remote}/{branch}", f"refs/heads/{branch}", branch):
        r = git.git(tree, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    raise UserError(f"tree {tree}: no branch {branch!r}")


def local_kernels(line: str, ks: LocalSet, base: Path) -> list[KernelRef]:
    from debian.debfile import DebFile
    from debian.debian_support import Version

    folder = _rel(base, ks.dir)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a directory")
    found: list[tuple[Version, Path, str]] = []
    for deb in sorted(folder.glob("linux-image-*.deb")):
        try:
            control = DebFile(str(deb)).debcontrol()
        except Exception as exc:  # python-debian raises several kinds for a bad .deb
            raise UserError(f"{deb}: not a readable .deb ({exc.__class__.__name__})") from None
        found.append((Version(str(control.get("Version", "0"))), deb,
                      str(control.get("Package", deb.name))))
    found.sort(key=lambda t: t[0])
    if ks.newest:
        found = found[-ks.newest:]
    return _refs(line, [(f"local:{deb}", f"{pkg.removeprefix('linux-image-')} {ver}",
                         f"v{str(ver).split('-')[0]}") for ver, deb, pkg in found])


def overrides_of(plan: Plan, reproducer_name: str, pset: str) -> dict[str, str]:
    """The parameter overrides of one (reproducer, param set), as ``--param`` gives them."""
    return dict(plan.overrides.get((reproducer_name, pset), {}))
