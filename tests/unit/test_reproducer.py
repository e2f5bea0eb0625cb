from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bisector.errors import UserError
from bisector.reproducer import load, parse, parse_overrides

REPO = Path(__file__).resolve().parents[2]

MINIMAL = {
    "name": "demo",
    "title": "a demo",
    "params": {"count": 3, "name": "x", "flag": False},
    "files": [{"path": "a.sh", "content": "echo {{ name }} {{ count }}\n", "mode": "0755"}],
    "setup": [{"name": "prep", "run": "echo setup {{ count }}"}],
    "run": [{"name": "test", "run": "./a.sh", "timeout": 5}],
    "verdict": {"good": {"exit_status": [0]}, "bad": {"exit_status": [1]}},
}


def write(tmp_path: Path, data: object, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def test_shipped_reproducers_validate() -> None:
    files = sorted((REPO / "reproducers").glob("*.yaml"))
    assert files, "no reproducers shipped"
    for f in files:
        spec, _ = parse(f)
        assert spec.name == f.stem


def test_minimal_loads_and_renders(tmp_path: Path) -> None:
    r = load(write(tmp_path, MINIMAL))
    assert r.setup[0].run == "echo setup 3"
    assert r.files[0].data == b"echo x 3\n"
    assert r.files[0].mode == 0o755
    assert r.spec.verdict.repeat == 1 and r.spec.verdict.good_needed == 1


def test_unknown_key_is_named(tmp_path: Path) -> None:
    bad = dict(MINIMAL, timout=5)
    with pytest.raises(UserError, match=r"r\.yaml: unknown key 'timout'"):
        load(write(tmp_path, bad))


def test_nested_unknown_key_is_named_with_path(tmp_path: Path) -> None:
    bad = dict(MINIMAL, run=[{"name": "t", "run": "true", "timeout_s": 3}])
    with pytest.raises(UserError, match=r"unknown key 'run\[0\]\.timeout_s'"):
        load(write(tmp_path, bad))


def test_missing_field(tmp_path: Path) -> None:
    bad = {k: v for k, v in MINIMAL.items() if k != "verdict"}
    with pytest.raises(UserError, match="missing required field 'verdict'"):
        load(write(tmp_path, bad))


def test_bad_regex_and_thresholds(tmp_path: Path) -> None:
    bad = dict(MINIMAL, verdict={"good": {"output": "("}, "bad": {"exit_status": [1]}})
    with pytest.raises(UserError, match=r"verdict\.good\.output.*invalid regex"):
        load(write(tmp_path, bad))
    bad = dict(MINIMAL, verdict={"good": {"exit_status": [0]}, "bad": {"exit_status": [1]},
                                 "repeat": 2, "bad_threshold": 3})
    with pytest.raises(UserError, match="bad_threshold cannot exceed repeat"):
        load(write(tmp_path, bad))


def test_empty_rule_rejected(tmp_path: Path) -> None:
    bad = dict(MINIMAL, verdict={"good": {}, "bad": {"exit_status": [1]}})
    with pytest.raises(UserError, match="at least one of"):
        load(write(tmp_path, bad))


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"r\.yaml: line 2: invalid YAML"):
        load(write(tmp_path, "name: x\n  bad: [\n"))


def test_param_override_types(tmp_path: Path) -> None:
    r = load(write(tmp_path, MINIMAL), parse_overrides(["count=7", "flag=yes"]))
    assert r.params["count"] == 7 and r.params["flag"] is True
    assert r.setup[0].run == "echo setup 7"
    with pytest.raises(UserError, match="unknown parameter 'nope'"):
        load(write(tmp_path, MINIMAL), {"nope": "1"})
    with pytest.raises(UserError, match="not an integer"):
        load(write(tmp_path, MINIMAL), {"count": "many"})
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        parse_overrides(["novalue"])


def test_undefined_template_variable(tmp_path: Path) -> None:
    bad = dict(MINIMAL, run=[{"name": "t", "run": "echo {{ missing }}"}])
    with pytest.raises(UserError, match=r"run\[0\]\.run.*template error.*missing"):
        load(write(tmp_path, bad))


def test_file_source_and_path_escape(tmp_path: Path) -> None:
    (tmp_path / "helper.py").write_text("print({{ count }})\n")
    ok = dict(MINIMAL, files=[{"path": "h.py", "source": "helper.py"}])
    assert load(write(tmp_path, ok)).files[0].data == b"print(3)\n"
    bad = dict(MINIMAL, files=[{"path": "../../etc/passwd", "content": "x"}])
    with pytest.raises(UserError, match="must be relative"):
        load(write(tmp_path, bad))
    missing = dict(MINIMAL, files=[{"path": "h.py", "source": "nope.py"}])
    with pytest.raises(UserError, match=r"files\[0\]\.source.*cannot read"):
        load(write(tmp_path, missing))


def test_config_option_normalised(tmp_path: Path) -> None:
    r = load(write(tmp_path, dict(MINIMAL, requires={"config": ["VETH", "CONFIG_NET_NS"]})))
    assert r.spec.requires.config == ["CONFIG_VETH", "CONFIG_NET_NS"]
    with pytest.raises(UserError, match="not a kernel config option"):
        load(write(tmp_path, dict(MINIMAL, requires={"config": ["veth y"]})))
