from __future__ import annotations

from bisector.demo import _subsystem, plan, simulate


def test_plan_places_both_skips_on_the_bisection_path() -> None:
    p = plan(seed=3, total=20)
    assert abs(p.broken - p.culprit) >= 3 and abs(p.noboot - p.culprit) >= 3
    tested, found = simulate(20, p.culprit, {p.broken, p.noboot})
    assert found == p.culprit and p.broken in tested and p.noboot in tested


def test_subsystem_prefixes() -> None:
    assert _subsystem("net/ipv4/route.c") == "net: ipv4"
    assert _subsystem("fs/ext4/super.c") == "ext4"
    assert _subsystem("kernel/fork.c") == "fork"
