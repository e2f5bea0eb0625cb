"""Kernel sources: one protocol, a plain registry, one artifact type.

A *spec* names a kernel: ``debian:6.1.0-56``, ``ubuntu-mainline:v5.7.1``,
``local:/path/to/linux-image.deb`` (later ``git:<rev>``).  The prefix selects
a :class:`KernelSource` from :data:`REGISTRY`; the source turns the rest into
a :class:`KernelArtifact` on disk, cached by content hash so the same bytes
are never downloaded or unpacked twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import UserError


class KernelUnavailable(UserError):
    """The kernel exists in the source's index but cannot be had (e.g. its build failed)."""


@dataclass
class KernelArtifact:
    spec: str
    #: what ``uname -r`` will print in the guest
    release: str
    #: bzImage / vmlinuz
    image: Path
    #: directory holding the modules tree for ``release`` (``…/lib/modules/<release>``)
    modules: Path | None
    config: Path | None
    #: the cache directory this artifact lives in (derived files go here too)
    root: Path
    #: provenance: package name/version, sha256, URL, upstream version …
    meta: dict[str, Any] = field(default_factory=dict)

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

    @classmethod
    def load(cls, root: Path) -> KernelArtifact | None:
        path = root / "artifact.json"
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        art = cls(spec=data["spec"], release=data["release"], image=Path(data["image"]),
                  modules=Path(data["modules"]) if data["modules"] else None,
                  config=Path(data["config"]) if data["config"] else None,
                  root=Path(data["root"]), meta=data.get("meta", {}))
        if not art.image.exists():
            return None
        return art


@dataclass(frozen=True)
class KernelEntry:
    """One line of ``bisector kernels list``."""

    spec: str
    version: str
    note: str = ""


class KernelSource(Protocol):
    """What every kernel source provides."""

    prefix: str

    def resolve(self, ref: str) -> KernelArtifact:
        """Fetch/build what is missing and return the artifact (UserError for a bad ref)."""
        ...

    def available(self) -> list[KernelEntry]:
        """Kernels this source can provide, oldest first (for ``kernels list``)."""
        ...


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
    prefix, ref = split_spec(spec)
    return REGISTRY[prefix]().resolve(ref)
