from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from bisector.errors import UserError
from bisector.reproducer import load, parse, parse_overrides

REPO = Path(__file__).resolve().parents[2]

MINIMAL = {
    "name": "r",
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


@pytest.mark.parametrize(("declared", "expected"), [(None, None), (0, 0.0), (0.0, 0.0),
                                                     (0.02, 0.02), (0.499, 0.499)])
def test_false_alarm_rate_is_optional_and_in_zero_to_half(tmp_path: Path, declared: object,
                                                          expected: float | None) -> None:
    verdict = dict(MINIMAL["verdict"])  # type: ignore[call-overload]
    if declared is not None:
        verdict["false_alarm_rate"] = declared
    r = load(write(tmp_path, dict(MINIMAL, verdict=verdict)))
    assert r.spec.verdict.false_alarm_rate == expected


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
    with pytest.raises(UserError, match="must name a file, relative"):
        load(write(tmp_path, bad))
    missing = dict(MINIMAL, files=[{"path": "h.py", "source": "nope.py"}])
    with pytest.raises(UserError, match=r"files\[0\]\.source.*cannot read"):
        load(write(tmp_path, missing))


def test_config_option_normalised(tmp_path: Path) -> None:
    r = load(write(tmp_path, dict(MINIMAL, requires={"config": ["VETH", "CONFIG_NET_NS"]})))
    assert r.spec.requires.config == ["CONFIG_VETH", "CONFIG_NET_NS"]
    with pytest.raises(UserError, match="not a kernel config option"):
        load(write(tmp_path, dict(MINIMAL, requires={"config": ["veth y"]})))


# ------------------------------------------------------------------ untrusted input

#: template payloads that reach Python objects (and from there the host) in plain jinja2
PAYLOADS = [
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ name.__class__.__base__.__subclasses__() }}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_template_cannot_reach_the_host(tmp_path: Path, payload: str) -> None:
    marker = tmp_path / "pwned"
    bad = dict(MINIMAL, run=[{"name": "t", "run": payload.replace("'id'", f"'touch {marker}'")}])
    with pytest.raises(UserError, match=r"r\.yaml: field 'run\[0\]\.run': (refused by the "
                                        r"template sandbox|template error)"):
        load(write(tmp_path, bad))
    assert not marker.exists()


def _symlink_out(tmp_path: Path) -> str:
    (tmp_path / "outside.txt").write_text("secret")
    (tmp_path / "repro").mkdir(exist_ok=True)
    (tmp_path / "repro" / "link").symlink_to(tmp_path / "outside.txt")
    return "link"


@pytest.mark.parametrize(("source", "message"), [
    ("../../../../etc/shadow", "leaves the reproducer's folder"),
    ("/etc/shadow", "is absolute"),
    ("sub/../../outside.txt", "leaves the reproducer's folder"),
    (None, "leaves the reproducer's folder"),  # a symlink pointing outside
])
def test_file_source_stays_in_the_reproducers_folder(tmp_path: Path, source: str | None,
                                                     message: str) -> None:
    (tmp_path / "repro").mkdir()
    src = source if source is not None else _symlink_out(tmp_path)
    bad = dict(MINIMAL, files=[{"path": "x", "source": src}])
    with pytest.raises(UserError, match=rf"files\[0\]\.source'?: .*{message}"):
        load(write(tmp_path / "repro", bad))


def _fifo(tmp_path: Path) -> Path:
    p = tmp_path / "r.yaml"
    os.mkfifo(p)
    return p


def _huge(tmp_path: Path) -> Path:
    p = tmp_path / "r.yaml"
    with p.open("wb") as fh:
        fh.truncate(200 << 20)  # sparse: 200 MB that cost nothing
    return p


@pytest.mark.parametrize(("make", "message"), [
    (lambda t: Path("/dev/zero"), "not a regular file"),
    (_fifo, "not a regular file"),
    (_huge, "over the 1048576-byte limit"),
    (lambda t: write(t, b"\x7fELF\x02\x01\x01\x00\x00\x00".decode("latin-1")),
     "invalid YAML|a reproducer must be a YAML mapping"),
    (lambda t: write(t, "name: r\nname: s\ntitle: x\n"), "duplicate key 'name'"),
    (lambda t: write(t, "a: &x [1]\nb: *x\n"), "anchors and aliases are not allowed"),
    (lambda t: write(t, dict(MINIMAL, name="other")), "'other' does not match the file name"),
    (lambda t: write(t, dict(MINIMAL, timeout=float("inf"))), "field 'timeout'"),
    (lambda t: write(t, dict(MINIMAL, run=[{"name": "t", "run": "x", "timeout": 1e9}])),
     r"field 'run\[0\]\.timeout'"),
    (lambda t: write(t, dict(MINIMAL, files=[{"path": "", "content": "x"}])), "must name a file"),
    (lambda t: write(t, {**MINIMAL, "verdict": {**MINIMAL["verdict"],  # type: ignore[dict-item]
                                                 "trigger_rate": 0}}),
     r"field 'verdict\.trigger_rate'"),
    (lambda t: write(t, {**MINIMAL, "verdict": {**MINIMAL["verdict"],  # type: ignore[dict-item]
                                                 "false_alarm_rate": 0.5}}),
     r"field 'verdict\.false_alarm_rate'"),
    (lambda t: write(t, {**MINIMAL, "verdict": {**MINIMAL["verdict"],  # type: ignore[dict-item]
                                                 "false_alarm_rate": -0.01}}),
     r"field 'verdict\.false_alarm_rate'"),
    (lambda t: write(t, {**MINIMAL, "verdict": {**MINIMAL["verdict"],  # type: ignore[dict-item]
                                                 "false_alarm_rate": float("nan")}}),
     r"field 'verdict\.false_alarm_rate'"),
    (lambda t: write(t, {**MINIMAL, "verdict": {**MINIMAL["verdict"],  # type: ignore[dict-item]
                                                 "false_alarm_rate": "never"}}),
     r"field 'verdict\.false_alarm_rate'"),
    (lambda t: write(t, {**MINIMAL, "verdict": {**MINIMAL["verdict"],  # type: ignore[dict-item]
                                                 "fresh_boot": "often"}}),
     r"field 'verdict\.fresh_boot'"),
    (lambda t: write(t, dict(MINIMAL, files=[{"path": ".", "content": "x"}])), "must name a file"),
    (lambda t: write(t, dict(MINIMAL, files=[{"path": "d/", "content": "x"}])), "must name a file"),
    (lambda t: write(t, dict(MINIMAL, params={**MINIMAL["params"], "n": 0},  # type: ignore[dict-item]
                             run=[{"name": "t", "run": "{{ 1 / n }}"}])),
     r"field 'run\[0\]\.run': template failed: ZeroDivisionError"),
    (lambda t: write(t, dict(MINIMAL, params={**MINIMAL["params"], "n": 9},  # type: ignore[dict-item]
                             run=[
        {"name": "t", "run": "{{ 'x' * 10 ** n }}"}])), "over the 1048576 limit"),
])
def test_bad_reproducer_files_are_one_line_user_errors(tmp_path: Path, make: object,
                                                       message: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(UserError, match=message) as exc:
        load(path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)


def test_binary_source_must_not_be_templated(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(b"\x00\xff\xfe binary")
    bad = dict(MINIMAL, files=[{"path": "b", "source": "blob.bin"}])
    with pytest.raises(UserError, match=r"files\[0\]\.source.*not UTF-8.*template: false"):
        load(write(tmp_path, bad))
    ok = dict(MINIMAL, files=[{"path": "b", "source": "blob.bin", "template": False}])
    assert load(write(tmp_path, ok)).files[0].data == b"\x00\xff\xfe binary"


def test_infinite_param_override_is_refused(tmp_path: Path) -> None:
    data = dict(MINIMAL, params={"rate": 0.5})
    with pytest.raises(UserError, match="not a finite number"):
        load(write(tmp_path, data), {"rate": "inf"})
