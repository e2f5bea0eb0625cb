"""Real kernels, real QEMU (TCG), real SSH: the default run boots these.

They share the user's bisector cache (the guest image and the Debian kernel
are built/downloaded once); each test gets its own run directory.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bisector import proc
from bisector.kernel import resolve
from bisector.paths import cache_dir
from tests.fakes.archive import build_deb, serve, sha256

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parents[2]
GRE = REPO / "reproducers" / "gre-ecn-mac-corruption.yaml"
KERNEL = "debian:6.1.0-56"


def bisector(*args: str, env: dict[str, str] | None = None,
             timeout: float = 900) -> subprocess.CompletedProcess[str]:
    import os

    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "bisector.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=full_env, stdin=subprocess.DEVNULL,
                          check=False)


def result(proc: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert proc.stdout.strip(), proc.stderr
    # `--json` is one line, so `>> nightly.jsonl` (the README's cron example) is JSON lines
    assert len(proc.stdout.strip().splitlines()) == 1, proc.stdout
    return dict(json.loads(proc.stdout))


def no_qemu_for(run_dir: Path) -> bool:
    out = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True,
                         check=False).stdout
    return str(run_dir) not in out


def test_seed000_good_on_fixed_debian_kernel(tmp_path: Path) -> None:
    p = bisector("run", "--kernel", KERNEL, "--repro", str(GRE), "--accel", "auto",
                 "--run-dir", str(tmp_path), "--json")
    res = result(p)
    assert p.returncode == 0, p.stderr
    assert res["verdict"] == "good"
    # GOOD for the right reason: the frame arrived, with the MAC it was sent with
    assert "inner dst 18:be:92:a0:ee:26 unchanged" in str(res["reason"])
    # "auto" chose an accelerator that works here: KVM only if the probe saw a KVM guest
    # print its banner; else TCG, for a reason the probe found (on the reference machines
    # KVM exists but hangs).  The probe's cached answer is the one this run used.
    accel, _, why = str(res["accel"]).partition(" ")
    if accel == "kvm":
        assert "printed its banner" in why, why
    else:
        assert accel == "tcg", res["accel"]
        assert re.search(r"/dev/kvm not usable|KVM probe exited|KVM guest printed nothing", why)
    if "/dev/kvm not usable" not in why:
        probe = json.loads((cache_dir() / "accel-probe.json").read_text())
        assert probe["accel"] == accel and probe["reason"] in why
    run_dir = Path(str(res["run_dir"]))
    for f in ("console.log", "ssh-transcript.log", "qemu.cmd", "result.json",
              "kernel.config", "dmesg-iteration-1.txt"):
        assert (run_dir / f).stat().st_size > 0, f
    assert "non-ECT from 10.254.3.1 with TOS=0x1" in (run_dir / "dmesg-iteration-1.txt"
                                                     ).read_text()
    assert not (run_dir / "overlay.qcow2").exists()
    assert no_qemu_for(run_dir)


def test_panic_at_boot_is_skip_with_console_kept(tmp_path: Path) -> None:
    p = bisector("run", "--kernel", KERNEL, "--repro", str(GRE), "--accel", "tcg",
                 "--append", "rdinit=/nonexistent", "--run-dir", str(tmp_path), "--json")
    res = result(p)
    assert p.returncode == 125, p.stderr
    assert res["verdict"] == "skip" and "Kernel panic" in str(res["reason"])
    run_dir = Path(str(res["run_dir"]))
    assert "Kernel panic - not syncing" in (run_dir / "console.log").read_text()
    assert no_qemu_for(run_dir)


def test_never_reaching_ssh_is_skip(tmp_path: Path) -> None:
    # init=/bin/cat: the kernel boots fine, but userspace never starts sshd
    p = bisector("run", "--kernel", KERNEL, "--repro", str(GRE), "--accel", "tcg",
                 "--append", "init=/bin/cat", "--boot-timeout", "35",
                 "--run-dir", str(tmp_path), "--json")
    res = result(p)
    assert p.returncode == 125, p.stderr
    assert res["verdict"] == "skip" and "no SSH within 35s" in str(res["reason"])
    run_dir = Path(str(res["run_dir"]))
    assert "Linux version" in (run_dir / "console.log").read_text()
    assert no_qemu_for(run_dir)


def test_ubuntu_mainline_fetcher_with_a_real_deb(tmp_path: Path) -> None:
    """The mainline layout served from 127.0.0.1 with a real kernel .deb; boots and runs."""
    art = resolve(KERNEL)
    deb = next(Path(p) for p in (art.root.parent.parent.parent / "downloads").glob(
        "linux-image-6.1.0-56-amd64-unsigned_*.deb"))
    folder = tmp_path / "mainline" / "v6.1.192" / "amd64"
    folder.mkdir(parents=True)
    # Split Debian's package the way Ubuntu ships mainline builds: image + modules.
    stamp = "6.1.192-060192.202611160000"
    tree = tmp_path / "tree"
    proc.run(["dpkg-deb", "-x", deb, tree])
    mods = {str(p.relative_to(tree)): p.read_bytes() for p in (tree / "lib").rglob("*")
            if p.is_file()}
    boot = {str(p.relative_to(tree)): p.read_bytes() for p in (tree / "boot").rglob("*")
            if p.is_file()}
    names = []
    for kind, files in (("image-unsigned", boot), ("modules", mods)):
        name = f"linux-{kind}-6.1.192-060192-generic_{stamp}_amd64.deb"
        build_deb(folder / name, f"linux-{kind}-6.1.192-060192-generic", stamp, files,
                  compress="none")
        names.append(name)
    sums = "".join(f"{sha256(folder / n)}  {n}\n" for n in names)
    (folder / "CHECKSUMS").write_text(f"# Checksums-Sha256:\n{sums}")
    (folder / "status").write_text("0\n")
    with serve(tmp_path / "mainline") as url:
        listing = bisector("kernels", "list", "ubuntu-mainline",
                           env={"BISECTOR_UBUNTU_MAINLINE_URL": url})
        assert "ubuntu-mainline:v6.1.192" in listing.stdout, listing.stderr
        p = bisector("run", "--kernel", "ubuntu-mainline:v6.1.192", "--repro", str(GRE),
                     "--accel", "tcg", "--run-dir", str(tmp_path / "runs"), "--json",
                     env={"BISECTOR_UBUNTU_MAINLINE_URL": url})
    res = result(p)
    assert p.returncode == 0, p.stderr
    assert res["verdict"] == "good" and res["release"] == "6.1.0-56-amd64"
