"""Kernel sources (see :mod:`bisector.kernel.base`) and their registry."""

from .base import (
    REGISTRY,
    KernelArtifact,
    KernelEntry,
    KernelSource,
    KernelUnavailable,
    listing,
    register,
    resolve,
    source_for,
    split_spec,
)
from .debian import DebianSource
from .gitbuild import BuildFailure, GitBuildSource
from .local import LocalSource
from .resolver import KernelResolver, is_git, is_prebuilt
from .ubuntu import UbuntuMainlineSource

register("debian", DebianSource)
register("ubuntu-mainline", UbuntuMainlineSource)
register("local", LocalSource)
# git: specs are not in the registry: they need a tree, the reproducer's options and
# fragments, which only KernelResolver has

__all__ = [
    "REGISTRY",
    "BuildFailure",
    "GitBuildSource",
    "KernelArtifact",
    "KernelEntry",
    "KernelResolver",
    "KernelSource",
    "KernelUnavailable",
    "is_git",
    "is_prebuilt",
    "listing",
    "register",
    "resolve",
    "source_for",
    "split_spec",
]
