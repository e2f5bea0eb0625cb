"""What a Dask task's failure becomes for the caller (futures scripted: the protocol
boundary is ``Future.result()``)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from distributed import KilledWorker

from bisector.distributed import result_of
from bisector.errors import InfraError, UserError


class Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def result(self) -> object:
        raise self.exc


@pytest.mark.parametrize("exc", [
    # every worker that took it died
    KilledWorker("cell-1-abc-0", SimpleNamespace(address="tcp://127.0.0.1:1"), 3),  # type: ignore[arg-type]
    OSError("connection to the scheduler lost"),
    TimeoutError("no answer"),
])
def test_the_cluster_losing_the_work_is_infrastructure(exc: BaseException) -> None:
    with pytest.raises(InfraError, match="Dask: cell x: "):
        result_of(Failed(exc), "cell x")


def test_bisectors_own_errors_come_back_as_raised() -> None:
    with pytest.raises(UserError, match="bad reproducer"):
        result_of(Failed(UserError("bad reproducer")), "cell x")
