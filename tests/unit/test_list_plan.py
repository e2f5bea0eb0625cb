"""Which kernels a list bisection walks: one line of history, never a mix.

Stable point releases live on side branches with backports: along
``v6.5, v6.5.1 … v6.6-rc1`` GOOD/BAD is not monotonic, and a stable tag found
as "first bad" cannot be mapped into Linus's tree.  Between series a mainline
list keeps releases and rcs only; within a series its point releases are fine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bisector import kernel as kernels
from bisector.errors import UserError
from bisector.kernel.base import KernelArtifact, KernelEntry
from bisector.stages import plan_list

MAINLINE = ["v6.5", "v6.5.1", "v6.5.2", "v6.5.13", "v6.6-rc1", "v6.6-rc2", "v6.6", "v6.6.1",
            "v6.6.2", "v6.7-rc1", "v6.7", "v6.7.1"]
DISTRO = [("6.1.0-47", "v6.1.170"), ("6.1.0-53", "v6.1.187"), ("6.1.0-57", "v6.1.193"),
          ("6.12.41+deb13", "v6.12.41"), ("6.12.57+deb13", "v6.12.57")]


class FakeMainline:
    prefix = "ubuntu-mainline"

    def resolve(self, ref: str) -> KernelArtifact:  # pragma: no cover - plans only
        raise NotImplementedError

    def available(self) -> list[KernelEntry]:
        return [KernelEntry(f"ubuntu-mainline:{v}", v, upstream=v) for v in MAINLINE]


class FakeDistro:
    prefix = "fakedeb"

    def resolve(self, ref: str) -> KernelArtifact:  # pragma: no cover - plans only
        raise NotImplementedError

    def available(self) -> list[KernelEntry]:
        return [KernelEntry(f"fakedeb:{abi}", abi, upstream=up) for abi, up in DISTRO]


@pytest.fixture(autouse=True)
def sources() -> Iterator[None]:
    saved = dict(kernels.REGISTRY)
    kernels.register("ubuntu-mainline", FakeMainline)
    kernels.register("fakedeb", FakeDistro)
    yield
    kernels.REGISTRY.clear()
    kernels.REGISTRY.update(saved)


def walked(old: str, new: str, **kw: bool) -> list[str]:
    return [e.version for e in plan_list(f"ubuntu-mainline:{old}", f"ubuntu-mainline:{new}",
                                         **kw).items]


@pytest.mark.parametrize(("old", "new", "expected"), [
    # across series: Linus's releases and rcs only
    ("v6.5", "v6.7", ["v6.5", "v6.6-rc1", "v6.6-rc2", "v6.6", "v6.7-rc1", "v6.7"]),
    # a point-release endpoint is replaced by its series' release (and verified as such)
    ("v6.5.2", "v6.7.1", ["v6.5", "v6.6-rc1", "v6.6-rc2", "v6.6", "v6.7-rc1", "v6.7"]),
    # within one series: the release and its stable point releases are one line
    ("v6.6", "v6.6.2", ["v6.6", "v6.6.1", "v6.6.2"]),
    ("v6.6-rc1", "v6.6.1", ["v6.6-rc1", "v6.6-rc2", "v6.6", "v6.6.1"]),
])
def test_mainline_list_stays_on_one_line_of_history(old: str, new: str,
                                                    expected: list[str]) -> None:
    assert walked(old, new) == expected


def test_the_plan_says_which_list_it_chose() -> None:
    note = plan_list("ubuntu-mainline:v6.5.2", "ubuntu-mainline:v6.7").note
    assert "stable point releases are left out" in note
    assert "ubuntu-mainline:v6.5.2 → ubuntu-mainline:v6.5" in note


def test_distro_range_stays_inside_one_series_unless_asked() -> None:
    assert [e.version for e in plan_list("fakedeb:6.1.0-47", "fakedeb:6.1.0-57").items] == [
        "6.1.0-47", "6.1.0-53", "6.1.0-57"]
    with pytest.raises(UserError, match=r"different upstream series.*--across-series"):
        plan_list("fakedeb:6.1.0-53", "fakedeb:6.12.57+deb13")
    across = plan_list("fakedeb:6.1.0-53", "fakedeb:6.12.57+deb13", across_series=True)
    assert len(across.items) == 4 and "--across-series" in across.note


def test_mainline_endpoint_without_its_release_is_refused(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setattr("tests.unit.test_list_plan.MAINLINE",
                        [v for v in MAINLINE if v != "v6.5"])
    with pytest.raises(UserError, match=r"v6\.5\.2 is a stable point release"):
        plan_list("ubuntu-mainline:v6.5.2", "ubuntu-mainline:v6.7")


def test_real_mainline_source_through_the_plan(tmp_path: Path) -> None:
    """The same rule over the real fetcher's listing (a local archive)."""
    from bisector.kernel.ubuntu import UbuntuMainlineSource
    from tests.fakes.archive import serve

    root = tmp_path / "mainline"
    for v in ("v5.6", "v5.6.1", "v5.6.2", "v5.7-rc1", "v5.7", "v5.7.1", "v5.8"):
        (root / v).mkdir(parents=True)
    with serve(root) as url:
        kernels.register("ubuntu-mainline", lambda: UbuntuMainlineSource(base_url=url))
        plan = plan_list("ubuntu-mainline:v5.6", "ubuntu-mainline:v5.8")
    assert [e.version for e in plan.items] == ["v5.6", "v5.7-rc1", "v5.7", "v5.8"]
