"""bisector installed from a wheel works outside the checkout.

The editable install the rest of the suite uses reads ``kernels/`` and
``vm-images/`` straight from the repository, so it cannot notice a wheel that
lacks them.  This builds a real wheel from a copy of the sources, installs it
into a fresh venv (offline: ``--no-deps --no-index``, the dependencies come
from the project venv through a ``.pth`` path line), and runs bisector from
there with the working directory outside the checkout.  Boots nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
#: what the wheel is built from (no build/ or *.egg-info: a stale build/lib would
#: put files into the wheel that the current pyproject.toml no longer ships)
SOURCES = ("pyproject.toml", "README.md", "bisector", "kernels", "vm-images")
REPRO = REPO / "reproducers" / "gre-ecn-mac-corruption.yaml"


@dataclass(frozen=True)
class Installed:
    venv: Path
    python: Path
    bisector: Path
    #: a directory outside the checkout and the venv, the commands' cwd
    elsewhere: Path
    env: dict[str, str]

    def run(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(a) for a in argv], cwd=self.elsewhere, env=self.env,
                              capture_output=True, text=True, timeout=120)

    def python_json(self, code: str) -> dict[str, Any]:
        """Run ``code`` in the installed venv; it prints one JSON object last."""
        r = self.run(self.python, "-c", code)
        assert r.returncode == 0, f"installed bisector failed:\n{r.stdout}\n{r.stderr}"
        out: dict[str, Any] = json.loads(r.stdout.splitlines()[-1])
        return out

    def inside(self, path: str | Path) -> bool:
        return Path(path).resolve().is_relative_to(self.venv.resolve())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            # symlinks=True keeps bisector/data/* as the links they are in the repo
            shutil.copytree(REPO / name, src / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    dist = tmp / "dist"
    # the project venv's own setuptools (pyproject's dev extra), no network
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                        "--no-build-isolation", "-w", dist, src],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"wheel build failed (run 'make venv'?):\n{r.stdout}\n{r.stderr}"
    (wheel,) = dist.glob("bisector-*.whl")

    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    r = subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q",
                        "--no-deps", "--no-index", wheel],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"wheel install failed:\n{r.stdout}\n{r.stderr}"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()
    # A plain path line: the project site-packages joins sys.path after the new venv's own,
    # and its .pth files (the editable-install hook mapping bisector to the checkout) are
    # not processed, so `import bisector` can only find the wheel's copy.
    (Path(site) / "bisector_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "BISECTOR_IMAGES",
                        "VIRTUAL_ENV")}
    env.update(BISECTOR_CACHE=str(tmp / "cache"), BISECTOR_RUNS=str(tmp / "runs"),
               PYTHONDONTWRITEBYTECODE="1")
    return Installed(env_dir, python, env_dir / "bin" / "bisector", elsewhere, env)


def test_the_wheel_not_the_checkout_is_imported(installed: Installed) -> None:
    out = installed.python_json(
        "import json, bisector, bisector.resources as r; "
        "print(json.dumps({'init': bisector.__file__, 'resources': r.__file__}))")
    assert installed.inside(out["init"]), out
    assert installed.inside(out["resources"]), out
    assert not Path(out["init"]).resolve().is_relative_to(REPO), out


def test_repro_validate_runs_from_anywhere(installed: Installed) -> None:
    repro = installed.elsewhere / REPRO.name
    shutil.copyfile(REPRO, repro)
    r = installed.run(installed.bisector, "repro", "validate", repro.name)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    assert f"ok: {repro.name}" in r.stdout


def test_image_recipe_comes_from_the_package(installed: Installed) -> None:
    """Everything ``bisector image build`` reads before mmdebstrap runs, from the wheel."""
    out = installed.python_json(
        "import json; from bisector import image, resources\n"
        "d = image.recipe_dir('bookworm')\n"
        "try:\n"
        "    image.recipe_dir('no-such-image'); unknown = ''\n"
        "except Exception as exc:\n"
        "    unknown = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps({'dir': str(d), 'recipes': resources.image_recipes(),\n"
        "                  'packages': image.packages(d), 'unknown': unknown,\n"
        "                  'files': sorted(p.name for p in d.iterdir())}))")
    recipe = REPO / "vm-images" / "bookworm"
    assert installed.inside(out["dir"]), out
    assert out["recipes"] == ["bookworm"]
    assert "openssh-server" in out["packages"]
    assert out["files"] == sorted(p.name for p in recipe.iterdir())
    # byte-identical, so the image cache key (recipe_hash) is the checkout's
    for name in out["files"]:
        assert (Path(out["dir"]) / name).read_bytes() == (recipe / name).read_bytes()
    assert str(out["unknown"]).startswith("UserError: ")
    assert "known: bookworm" in str(out["unknown"])


def test_git_build_config_inputs_come_from_the_package(installed: Installed) -> None:
    out = installed.python_json(
        "import json, os; from pathlib import Path\n"
        "from bisector import resources\n"
        "from bisector.kernel.gitbuild import GitBuildSource\n"
        "os.makedirs('tree/.git', exist_ok=True)\n"
        "src = GitBuildSource(Path('tree'), required=['CONFIG_NET_IPGRE'])\n"
        "print(json.dumps({'base': str(resources.kernel_config('base.config')),\n"
        "                  'culprit': str(resources.patch('gre-ecn-mac-corruption.patch')),\n"
        "                  'lines': src.fragment_lines()}))")
    base = Path(out["base"])
    assert installed.inside(base), out
    assert base.read_text() == (REPO / "kernels" / "base.config").read_text()
    lines = out["lines"]
    for opt in ("CONFIG_VIRTIO_NET=y", "CONFIG_EXT4_FS=y", "CONFIG_NET_IPGRE=y"):
        assert opt in lines
    culprit = Path(out["culprit"])  # the demo's injected culprit
    assert installed.inside(culprit), out
    assert culprit.read_bytes() == (REPO / "kernels" / "patches" / culprit.name).read_bytes()


def test_sweep_reports_and_mails_render_from_the_package(installed: Installed) -> None:
    """The sweep's templates (site, Markdown, mails) are in the wheel."""
    shutil.copytree(REPO / "tests", installed.elsewhere / "tests",
                    ignore=shutil.ignore_patterns("__pycache__"))
    out = installed.python_json(
        "import json, pathlib, bisector.sweep.site as site, bisector.sweep.notify as nt\n"
        "from bisector.sweep.model import Notify, SmtpTarget\n"
        "from tests.fakes.sweep_report import sample_report\n"
        "r = sample_report(pathlib.Path('out'))\n"
        "paths = site.write_site(r)\n"
        "n = Notify(email=SmtpTarget(**{'from': 'a@b.c', 'to': ['d@e.f']}))\n"
        "mails = nt.regression_mails(r, n)\n"
        "print(json.dumps({'site': site.__file__, 'page': paths.page.read_text()[:400],\n"
        "                  'md': paths.markdown.read_text()[:200],\n"
        "                  'mails': [str(m['Subject']) for m in mails]}))")
    assert installed.inside(out["site"]), out
    assert "<html" in out["page"].lower() and out["md"].startswith("#"), out
    assert any(s.startswith("[REGRESSION]") for s in out["mails"]), out
