"""Reproducer files: load, validate strictly, render.

A reproducer is a YAML file users write and share, so validation is strict
(unknown keys are rejected: a typo such as ``timout:`` must not be silently
ignored) and every error names the file and the field.  Parameters are
rendered with jinja2 (StrictUndefined: a missing parameter is an error, not an
empty string) and can be overridden from the command line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import jinja2
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import UserError

Scalar = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Commits(_Strict):
    """Upstream commits, when known (12+ hex digits)."""

    introduced: str | None = None
    fixed: str | None = None

    @field_validator("introduced", "fixed")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{7,40}", v):
            raise ValueError("must be a commit id (7-40 lowercase hex digits)")
        return v


class Requirements(_Strict):
    #: kernel config options the kernel must have (=y or =m), CONFIG_ prefix optional
    config: list[str] = Field(default_factory=list)
    #: commands that must exist in the guest image
    tools: list[str] = Field(default_factory=list)

    @field_validator("config")
    @classmethod
    def _config(cls, v: list[str]) -> list[str]:
        out = []
        for opt in v:
            name = opt if opt.startswith("CONFIG_") else f"CONFIG_{opt}"
            if not re.fullmatch(r"CONFIG_[A-Z0-9_]+", name):
                raise ValueError(f"{opt!r} is not a kernel config option name")
            out.append(name)
        return out


class FileSpec(_Strict):
    """A file uploaded to the guest work directory before setup."""

    path: str
    content: str | None = None
    source: str | None = None  # relative to the YAML file
    mode: str = "0644"
    template: bool = True  # render jinja2 params into ``content``

    @model_validator(mode="after")
    def _one_of(self) -> FileSpec:
        if (self.content is None) == (self.source is None):
            raise ValueError("give exactly one of 'content' or 'source'")
        if self.path.startswith("/") or ".." in Path(self.path).parts:
            raise ValueError("'path' must be relative and stay inside the work directory")
        if not re.fullmatch(r"0?[0-7]{3}", self.mode):
            raise ValueError("'mode' must be octal like '0755'")
        return self


class Step(_Strict):
    name: str
    run: str  # shell script (bash), rendered with params
    timeout: Annotated[float, Field(gt=0)] = 60.0


class Rule(_Strict):
    """What a GOOD or BAD outcome looks like.

    Every given criterion must hold: the exit status of the last ``run`` step is
    in ``exit_status``, ``output`` (regex) matches its stdout, ``console`` (regex)
    matches the kernel log (console + dmesg) of that iteration.
    """

    exit_status: list[int] | None = None
    output: str | None = None
    console: str | None = None

    @field_validator("output", "console")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v, re.MULTILINE)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from exc
        return v

    @model_validator(mode="after")
    def _nonempty(self) -> Rule:
        if self.exit_status is None and self.output is None and self.console is None:
            raise ValueError("a rule needs at least one of exit_status, output, console")
        return self


class VerdictRules(_Strict):
    good: Rule
    bad: Rule
    repeat: Annotated[int, Field(ge=1, le=100)] = 1
    #: BAD when at least this many iterations were bad (flaky bugs: repeat 5, threshold 1)
    bad_threshold: Annotated[int, Field(ge=1)] = 1
    #: GOOD when at least this many iterations were good (default: all of them)
    good_threshold: Annotated[int, Field(ge=1)] | None = None
    #: a timed-out test step is SKIP unless the hang *is* the bug
    on_timeout: Literal["skip", "bad"] = "skip"

    @model_validator(mode="after")
    def _thresholds(self) -> VerdictRules:
        if self.bad_threshold > self.repeat:
            raise ValueError("bad_threshold cannot exceed repeat")
        if self.good_threshold is not None and self.good_threshold > self.repeat:
            raise ValueError("good_threshold cannot exceed repeat")
        return self

    @property
    def good_needed(self) -> int:
        return self.good_threshold if self.good_threshold is not None else self.repeat


class Reproducer(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    title: str
    description: str = ""
    links: list[str] = Field(default_factory=list)
    commits: Commits = Field(default_factory=Commits)
    requires: Requirements = Field(default_factory=Requirements)
    params: dict[str, Scalar] = Field(default_factory=dict)
    files: list[FileSpec] = Field(default_factory=list)
    setup: list[Step] = Field(default_factory=list)
    run: Annotated[list[Step], Field(min_length=1)]
    cleanup: list[Step] = Field(default_factory=list)
    #: budget for one whole iteration (setup + run + cleanup), seconds
    timeout: Annotated[float, Field(gt=0)] = 600.0
    verdict: VerdictRules
    #: free-form notes on where this reproducer was proven (kept for the docs)
    proven: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("params")
    @classmethod
    def _param_names(cls, v: dict[str, Scalar]) -> dict[str, Scalar]:
        for k in v:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
                raise ValueError(f"parameter name {k!r} is not an identifier")
        return v


class RenderedFile(BaseModel):
    path: str
    data: bytes
    mode: int


class Loaded(BaseModel):
    """A validated reproducer plus where it came from and its rendered parts."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    spec: Reproducer
    path: Path
    params: dict[str, Scalar]
    setup: list[Step]
    run: list[Step]
    cleanup: list[Step]
    files: list[RenderedFile]
    text: str  # the YAML as read, kept as evidence


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def _format_validation(path: Path, exc: ValidationError) -> str:
    errs = exc.errors()
    first = errs[0]
    loc = _field_path(tuple(first["loc"]))
    if first["type"] == "extra_forbidden":
        msg = f"{path}: unknown key '{loc}'"
    elif first["type"] == "missing":
        msg = f"{path}: missing required field '{loc}'"
    else:
        msg = f"{path}: field '{loc}': {first['msg']}"
    if len(errs) > 1:
        msg += f" (and {len(errs) - 1} more error{'s' if len(errs) > 2 else ''})"
    return msg


def parse(path: Path) -> tuple[Reproducer, str]:
    """Read and validate; raise UserError naming the file and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read reproducer: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}:{where}: invalid YAML: {problem}") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: a reproducer must be a YAML mapping")
    try:
        spec = Reproducer.model_validate(data)
    except ValidationError as exc:
        raise UserError(_format_validation(path, exc)) from None
    return spec, text


def parse_overrides(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--param {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def load(path: Path, overrides: dict[str, str] | None = None) -> Loaded:
    """Validate, apply parameter overrides and render steps and files."""
    spec, text = parse(path)
    params: dict[str, Scalar] = dict(spec.params)
    for key, value in (overrides or {}).items():
        if key not in params:
            known = ", ".join(sorted(params)) or "none"
            raise UserError(f"{path}: unknown parameter '{key}' (declared: {known})")
        params[key] = _coerce(value, params[key])
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)

    def render(where: str, template: str) -> str:
        try:
            return env.from_string(template).render(**params)
        except jinja2.TemplateError as exc:
            raise UserError(f"{path}: field '{where}': template error: {exc}") from None

    def steps(kind: str, items: list[Step]) -> list[Step]:
        return [s.model_copy(update={"run": render(f"{kind}[{i}].run", s.run)})
                for i, s in enumerate(items)]

    files = []
    for i, f in enumerate(spec.files):
        if f.source is not None:
            src = (path.parent / f.source).resolve()
            try:
                raw = src.read_bytes()
            except OSError as exc:
                raise UserError(f"{path}: field 'files[{i}].source': cannot read {src}: "
                                f"{exc.strerror}") from None
            data = render(f"files[{i}]", raw.decode()).encode() if f.template else raw
        else:
            assert f.content is not None
            data = render(f"files[{i}].content", f.content).encode() if f.template \
                else f.content.encode()
        files.append(RenderedFile(path=f.path, data=data, mode=int(f.mode, 8)))
    return Loaded(spec=spec, path=path, params=params, setup=steps("setup", spec.setup),
                  run=steps("run", spec.run), cleanup=steps("cleanup", spec.cleanup),
                  files=files, text=text)


def _coerce(value: str, default: Scalar) -> Scalar:
    """CLI overrides are strings; give them the type of the declared default."""
    if isinstance(default, bool):
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise UserError(f"--param: {value!r} is not a boolean")
    if isinstance(default, int):
        try:
            return int(value, 0)
        except ValueError:
            raise UserError(f"--param: {value!r} is not an integer") from None
    if isinstance(default, float):
        try:
            return float(value)
        except ValueError:
            raise UserError(f"--param: {value!r} is not a number") from None
    return value
