"""Kernel sources (see :mod:`bisector.kernel.base`) and their registry."""

from .base import (
    REGISTRY,
    KernelArtifact,
    KernelEntry,
    KernelSource,
    KernelUnavailable,
    register,
    resolve,
    source_for,
    split_spec,
)
from .debian import DebianSource
from .gitbuild import BuildFailure, GitBuildSource, from_env
from .local import LocalSource
from .ubuntu import UbuntuMainlineSource

register("debian", DebianSource)
register("ubuntu-mainline", UbuntuMainlineSource)
register("local", LocalSource)
register("git", from_env)

__all__ = [
    "REGISTRY",
    "BuildFailure",
    "GitBuildSource",
    "KernelArtifact",
    "KernelEntry",
    "KernelSource",
    "KernelUnavailable",
    "register",
    "resolve",
    "source_for",
    "split_spec",
]
