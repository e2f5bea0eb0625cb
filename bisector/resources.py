"""Files bisector ships besides its code: git-build config, patches, guest image recipes.

Their editable sources stay at the top of the repository, ``kernels/`` and
``vm-images/``, where people look for them.  ``bisector/data/kernels`` and
``bisector/data/vm-images`` are relative symlinks to them, so they are package
data of ``bisector``: a wheel (``pip install .``) copies the files into
``site-packages/bisector/data/``, and an editable install (``pip install -e .``)
reads the repository through the symlinks.  Either way they are found with
:mod:`importlib.resources`, never relative to the repository, so an installed
bisector works from any directory.

The functions return real filesystem paths because their consumers are
external programs (``git apply``, ``mmdebstrap``'s file copies) and
:func:`bisector.image.recipe_hash`, which walks a directory.  That is safe:
``bisector`` is a regular package and pip installs it unpacked, so
:func:`importlib.resources.files` returns a :class:`pathlib.Path` both for a
wheel and for an editable install.  Only a zip-imported bisector would not,
and :func:`data_dir` refuses that with a clear message instead of handing out
paths that do not exist.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from .errors import InfraError, UserError

#: a directory of image recipes to use instead of the shipped ones (tests, experiments)
IMAGES_ENV = "BISECTOR_IMAGES"


def data_dir() -> Path:
    """``bisector/data`` of the installed package, as a real directory.

    Raises :class:`InfraError` when the package data is not there (a wheel
    built without it, or a zip import): that is a broken installation, not
    something the user's input could fix.
    """
    root = files("bisector")
    if not isinstance(root, Path):
        raise InfraError(f"bisector is imported from {root} (not a directory); "
                         "install it unpacked (pip install) to use its data files")
    data = root / "data"
    if not data.is_dir():
        raise InfraError(f"bisector's package data is missing ({data} not found): "
                         "the installation is broken, reinstall bisector")
    return data


def _shipped_dir(name: str) -> Path:
    path = data_dir() / name
    if not path.is_dir():
        raise InfraError(f"bisector's package data is missing ({path} not found): "
                         "the installation is broken, reinstall bisector")
    return path


def kernels_dir() -> Path:
    """The shipped ``kernels/`` directory (config fragments for git builds, patches)."""
    return _shipped_dir("kernels")


def kernel_config(name: str) -> Path:
    """A shipped kernel config fragment, e.g. ``base.config`` (every git build reads it).

    An unknown name is a :class:`UserError` that lists the fragments there are.
    """
    path = kernels_dir() / name
    if not path.is_file() or not name.endswith(".config") or "/" in name:
        known = sorted(p.name for p in kernels_dir().glob("*.config"))
        raise UserError(f"no shipped kernel config fragment {name!r} "
                        f"(known: {', '.join(known) or 'none'})")
    return path


def patches_dir() -> Path:
    """The shipped ``kernels/patches/`` (reverts of upstream fixes, for reproducer proofs)."""
    return kernels_dir() / "patches"


def patch(name: str) -> Path:
    """A shipped patch by file name (``gre-ecn-mac-corruption.patch``; the suffix may be
    left off).  An unknown name is a :class:`UserError` that lists the shipped patches."""
    base = name if name.endswith((".patch", ".diff")) else name + ".patch"
    path = patches_dir() / base
    if "/" in base or not path.is_file():
        known = sorted(p.name for p in patches_dir().glob("*.patch"))
        raise UserError(f"no shipped patch {name!r} (known: {', '.join(known) or 'none'})")
    return path


def images_dir() -> Path:
    """The directory of guest image recipes: ``$BISECTOR_IMAGES`` if set, else the shipped
    ``vm-images/``."""
    env = os.environ.get(IMAGES_ENV)
    if env:
        return Path(env)
    return _shipped_dir("vm-images")


def image_recipes() -> list[str]:
    """Names of the image recipes there are (subdirectories holding a ``recipe.yaml``)."""
    base = images_dir()
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / "recipe.yaml").is_file())


def image_recipe_dir(name: str) -> Path:
    """The recipe directory of guest image ``name``.

    Only names that :func:`image_recipes` lists are accepted, so a typo is a
    :class:`UserError` naming the recipes there are, instead of a cache entry
    (the name is part of the image's cache path) that nothing else can select.
    """
    known = image_recipes()
    if name not in known:
        raise UserError(f"no guest image recipe {name!r} in {images_dir()} "
                        f"(known: {', '.join(known) or 'none'})")
    return images_dir() / name
