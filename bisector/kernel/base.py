"""Kernel sources: one protocol, a plain registry, one artifact type.

A *spec* names a kernel: ``debian:6.1.0-56``, ``ubuntu-mainline:v5.7.1``,
``local:/path/to/linux-image.deb`` (later ``git:<rev>``).  The prefix selects
a :class:`KernelSource` from :data:`REGISTRY`; the source turns the rest into
a :class:`KernelArtifact` on disk, cached by content hash so the same bytes
are never downloaded or unpacked twice.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import InfraError, Untestable, UserError

#: touched in an artifact's directory each time it is used
LAST_USED = ".last-used"


class KernelUnavailable(Untestable):
    """The kernel exists in the source's index but cannot be had (e.g. its build failed):
    a bisection step on it is SKIP, like a commit that does not build."""


@dataclass
class KernelArtifact:
    spec: str
    #: what ``uname -r`` will print in the guest
    release: str
    #: bzImage / vmlinuz
    image: Path
    #: directory holding the modules tree for ``release`` (``…/lib/modules/<release>``)
    modules: Path | None
    #: the kernel's .config; None means *unknown* (e.g. a bare bzImage): the run then
    #: says that the reproducer's required options were not checked
    config: Path | None
    #: the cache directory this artifact lives in (derived files go here too)
    root: Path
    #: provenance: package name/version, sha256, URL …
    meta: dict[str, Any] = field(default_factory=dict)
    #: the upstream tag this kernel is based on (``v6.1.190``), when the source knows it;
    #: a two-stage bisection needs it to continue in the git tree
    upstream: str | None = None

    def config_value(self, option: str) -> str | None:
        """``y``/``m``/a string, or None when unset or the config is unknown."""
        values = self.config_values()
        return values.get(option if option.startswith("CONFIG_") else f"CONFIG_{option}")

    def config_values(self) -> dict[str, str]:
        if self.config is None or not self.config.exists():
            return {}
        out: dict[str, str] = {}
        for line in self.config.read_text(errors="replace").splitlines():
            m = re.match(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$", line)
            if m:
                out[m.group(1)] = m.group(2).strip('"')
        return out

    def save(self) -> None:
        data = asdict(self)
        for k in ("image", "modules", "config", "root"):
            data[k] = str(data[k]) if data[k] is not None else None
        (self.root / "artifact.json").write_text(json.dumps(data, indent=2, sort_keys=True))
        self.touch()

    def touch(self) -> None:
        """Note that the artifact was used now (``bisector cache prune`` keeps recent ones)."""
        with contextlib.suppress(OSError):
            (self.root / LAST_USED).touch()

    @classmethod
    def load(cls, root: Path) -> KernelArtifact | None:
        path = root / "artifact.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        art = cls(spec=data["spec"], release=data["release"], image=Path(data["image"]),
                  modules=Path(data["modules"]) if data["modules"] else None,
                  config=Path(data["config"]) if data["config"] else None,
                  root=Path(data["root"]), meta=data.get("meta", {}),
                  upstream=data.get("upstream"))
        if not art.image.exists():
            return None
        art.touch()
        return art


@dataclass(frozen=True)
class KernelEntry:
    """One kernel a source can provide (a line of ``bisector kernels list``)."""

    spec: str
    version: str
    note: str = ""
    #: the upstream tag it is based on (``v6.1.190``), where the index says so
    upstream: str | None = None


class KernelSource(Protocol):
    """What every kernel source provides, and what its callers rely on.

    * ``resolve(ref)`` returns a :class:`KernelArtifact` whose ``image`` exists;
      it raises :class:`UserError` for a ref the source does not know,
      :class:`KernelUnavailable` for a kernel it lists but cannot provide (its
      build failed), and :class:`InfraError` for trouble fetching it.  It sets
      ``config`` whenever the kernel's .config is known (otherwise required
      options cannot be checked) and ``upstream`` whenever the source knows the
      upstream tag (otherwise a two-stage bisection cannot continue in git).
    * ``available()`` is the list a bisection over this source walks, so it is
      **ordered oldest first**; :func:`listing` checks that order (by upstream
      version, where entries carry one) in one place.
    """

    prefix: str

    def resolve(self, ref: str) -> KernelArtifact: ...

    def available(self) -> list[KernelEntry]: ...


#: prefix → factory; a plain dict, filled in ``bisector.kernel.__init__``
REGISTRY: dict[str, Callable[[], KernelSource]] = {}


def register(prefix: str, factory: Callable[[], KernelSource]) -> None:
    REGISTRY[prefix] = factory


def split_spec(spec: str) -> tuple[str, str]:
    prefix, sep, ref = spec.partition(":")
    if not sep or not ref:
        raise UserError(f"kernel {spec!r}: expected SOURCE:REF, e.g. debian:6.1.0-56 "
                        f"(sources: {', '.join(sorted(REGISTRY))})")
    if prefix not in REGISTRY:
        raise UserError(f"kernel {spec!r}: unknown source {prefix!r} "
                        f"(known: {', '.join(sorted(REGISTRY))})")
    return prefix, ref


def source_for(prefix: str) -> KernelSource:
    if prefix not in REGISTRY:
        raise UserError(f"unknown kernel source {prefix!r} (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[prefix]()


def resolve(spec: str) -> KernelArtifact:
    """A prebuilt kernel by spec (``git:`` specs go through :mod:`bisector.kernel.resolver`)."""
    prefix, ref = split_spec(spec)
    return REGISTRY[prefix]().resolve(ref)


def version_key(version: str) -> tuple[int, ...]:
    """``v6.1.190`` < ``v6.2-rc1`` < ``v6.2`` < ``v6.2.1``: kernel version order."""
    m = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:-rc(\d+))?", version)
    if not m:
        return ()
    major, minor, patch, rc = m.groups()
    # an -rc sorts before its release: rc N → N, the release → a large number
    return (int(major), int(minor), int(rc) if rc else 10_000, int(patch or 0))


@runtime_checkable
class ExtensibleListing(Protocol):
    """A source whose ``available()`` is only what it carries now (Debian's live
    archive), but that can find more kernels elsewhere (snapshot.debian.org)."""

    def available_including(self, specs: Sequence[str]) -> list[KernelEntry]:
        """``available()`` plus the kernels needed to walk from the oldest of ``specs``
        to the newest (those specs included), still oldest first."""
        ...


def listing(prefix: str, include: Sequence[str] = ()) -> list[KernelEntry]:
    """``available()`` of a source, checked to be oldest first (the contract above).

    With ``include`` (a bisection's endpoints) a source that can look further
    (:class:`ExtensibleListing`) is asked to, when an endpoint is not in its
    current list.  A source that breaks the order would make a bisection walk a
    list whose verdicts are not monotonic: that is a bug in the source, an
    InfraError.
    """
    source = source_for(prefix)
    entries = source.available()
    known = {e.spec for e in entries}
    if any(s not in known for s in include) and isinstance(source, ExtensibleListing):
        entries = source.available_including(include)
    keyed = [(e, version_key(e.upstream)) for e in entries if e.upstream]
    for (a, ka), (b, kb) in itertools.pairwise(keyed):
        if ka and kb and kb < ka:
            raise InfraError(f"kernel source {prefix!r} lists {b.spec} ({b.upstream}) after "
                             f"{a.spec} ({a.upstream}): its list must be oldest first")
    return entries
