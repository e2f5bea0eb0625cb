from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated bisector cache + runs dir (unit tests never touch the real cache)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("BISECTOR_CACHE", str(cache))
    monkeypatch.setenv("BISECTOR_RUNS", str(tmp_path / "runs"))
    yield cache


def pytest_report_header(config: pytest.Config) -> str:
    return f"bisector cache: {os.environ.get('BISECTOR_CACHE', '~/.cache/bisector')}"
