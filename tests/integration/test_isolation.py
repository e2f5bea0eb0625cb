"""A reproducer from a stranger cannot reach the host from the guest (real boot, TCG).

slirp without ``restrict=on`` maps 10.0.2.2 to the host's loopback: a guest could
talk to any service bound to the host's 127.0.0.1.  By default it cannot; a
reproducer that declares ``requires: {network: true}`` can (which also proves
the probe itself works, so the default case is not passing by accident).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.test_boot import KERNEL, bisector, result

pytestmark = pytest.mark.vm

PROBE = """import socket
s = socket.socket()
s.settimeout(8)
try:
    s.connect(("10.0.2.2", {{ port }}))
    print("REACHED", s.recv(16).decode())
except OSError as exc:
    print("BLOCKED", exc)
"""


@pytest.fixture
def host_service() -> Iterator[int]:
    """A TCP service on the host's 127.0.0.1 that greets whoever connects."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.5)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.sendall(b"hello-host")
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    srv.close()


def reproducer(tmp_path: Path, port: int, network: bool) -> Path:
    data = {
        "name": "reach-host", "title": "can the guest reach the host's loopback?",
        "requires": {"tools": ["python3"], "network": network},
        "params": {"port": port},
        "files": [{"path": "probe.py", "content": PROBE}],
        "run": [{"name": "connect", "run": "python3 probe.py", "timeout": 30}],
        "verdict": {"good": {"exit_status": [0], "output": "BLOCKED"},
                    "bad": {"exit_status": [0], "output": "REACHED hello-host"}},
    }
    path = tmp_path / "reach-host.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(("network", "verdict", "code"), [(False, "good", 0),
                                                          (True, "bad", 1)])
def test_guest_reaches_the_host_only_when_declared(tmp_path: Path, host_service: int,
                                                   network: bool, verdict: str,
                                                   code: int) -> None:
    p = bisector("run", "--kernel", KERNEL, "--repro",
                 str(reproducer(tmp_path, host_service, network)), "--accel", "tcg",
                 "--run-dir", str(tmp_path), "--json")
    res = result(p)
    assert (res["verdict"], p.returncode) == (verdict, code), (res["reason"], p.stderr)
    assert any("guest network open" in n for n in res["notes"]) is network  # type: ignore[union-attr]
    qemu_cmd = (Path(str(res["run_dir"])) / "qemu.cmd").read_text()
    assert ("restrict=on" in qemu_cmd) is not network
