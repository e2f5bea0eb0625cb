"""Reproducer files: load, validate strictly, render.

A reproducer is a YAML file users write and share — it may come from a
stranger in a mail — so it is untrusted input:

* validation is strict (unknown or duplicate keys are rejected: a typo such as
  ``timout:`` must not be silently ignored; YAML anchors/aliases, which can
  make a small file expand without bound, are refused) and every error names
  the file and the field;
* the file (and every ``files[].source``) must be a regular file under a size
  limit, read once — never a FIFO, a device or a 200 MB blob;
* ``files[].source`` stays inside the reproducer's own directory (resolved,
  symlinks included);
* parameters are rendered with jinja2's *immutable sandbox*
  (StrictUndefined; no globals but the parameters): a template can format
  values, and cannot reach Python objects, the host or the filesystem — nor
  hang or fill memory: a number or repetition too large is refused before it
  is computed (``9 ** 99999999``, ``'x' * 10 ** 9``), and each field renders
  within a time and a memory budget (nested loops, ``'x'.rjust(10 ** 10)``).

Nothing in a reproducer runs on the host: its steps run in the guest.
"""

from __future__ import annotations

import math
import os
import re
import resource
import signal
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import jinja2
import jinja2.sandbox
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import UserError

Scalar = str | int | float | bool

#: a reproducer YAML file larger than this is refused (the shipped ones are < 20 KiB)
MAX_FILE_BYTES = 1 << 20
#: a ``files[].source`` larger than this is refused
MAX_SOURCE_BYTES = 16 << 20
#: a rendered field larger than this is refused (a template cannot blow up memory)
MAX_RENDERED_CHARS = 1 << 20
#: the largest integer (in bits) a template may compute: ~10,000 digits, more than a
#: value worth formatting, too small for one operation to pin a CPU
MAX_INT_BITS = 1 << 15
#: the time one field may take to render (they take milliseconds)
RENDER_SECONDS = 10.0
#: the memory one field may take to render, on top of what the process has
RENDER_MEMORY = 1 << 30
#: the longest timeout the runner accepts (one day), for steps and iterations
MAX_TIMEOUT_S = 86400.0
Seconds = Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)]


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
    #: the guest needs the outside network (the host and beyond); off by default: a
    #: reproducer from a stranger cannot reach the host's services or the internet
    network: bool = False

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
        p = PurePosixPath(self.path)
        if (not self.path.strip() or self.path.endswith("/") or p.is_absolute()
                or ".." in p.parts or p.name in ("", ".")):
            raise ValueError("'path' must name a file, relative, inside the work directory")
        if not re.fullmatch(r"0?[0-7]{3}", self.mode):
            raise ValueError("'mode' must be octal like '0755'")
        return self


class Step(_Strict):
    name: str
    run: str  # shell script (bash), rendered with params
    timeout: Seconds = 60.0


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
    #: boot a fresh guest for every iteration (default: all iterations in one boot; a
    #: guest that dies is booted again either way)
    fresh_boot: bool = False
    #: the bug is flaky: P(a run on a buggy kernel shows it); declaring it makes
    #: `bisector bisect` use the Bayesian search (--strategy auto)
    trigger_rate: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
    #: P(a run on a kernel *without* the bug shows it anyway); 0 for a signature check a
    #: good kernel cannot produce (a fixed kernel does not corrupt the MAC).  Unset: unknown,
    #: the Bayesian search allows for 0-3 %.  At 0.5 a failure would say nothing.
    false_alarm_rate: Annotated[float, Field(ge=0, lt=0.5, allow_inf_nan=False)] | None = None

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


class ReproducerSpec(_Strict):
    """The YAML file as the schema sees it (before rendering)."""

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
    timeout: Seconds = 600.0
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


class Reproducer(BaseModel):
    """A validated reproducer plus where it came from and its rendered parts."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    spec: ReproducerSpec
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


class _StrictLoader(yaml.SafeLoader):
    """safe_load that also refuses duplicate keys and anchors/aliases."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.MarkedYAMLError(None, None, "anchors and aliases are not allowed",
                                       event.start_mark)
        return super().compose_node(parent, index)


def _unique_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            if key in seen:
                raise yaml.MarkedYAMLError(None, None, f"duplicate key {key!r}",
                                           key_node.start_mark)
            seen.add(key)
        except TypeError:  # an unhashable key: the constructor below says so
            pass
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)

#: for other strict files (the sweep config): same error wording
format_validation = _format_validation


def read_limited(path: Path, limit: int, where: str) -> bytes:
    """The bytes of a *regular* file no larger than ``limit`` (UserError otherwise).

    Checked before opening, so a FIFO, ``/dev/zero`` or a huge file never blocks
    or fills memory.  ``where`` starts the message (the file and field)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UserError(f"{where}: cannot read {path}: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{where}: {path} is not a regular file")
    if st.st_size > limit:
        raise UserError(f"{where}: {path} is {st.st_size} bytes, over the {limit}-byte limit")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise UserError(f"{where}: cannot read {path}: {exc.strerror}") from exc
    if len(data) > limit:
        raise UserError(f"{where}: {path} grew past the {limit}-byte limit while read")
    return data


def strict_yaml(path: Path, text: str, what: str) -> dict[Any, Any]:
    """A YAML mapping, strictly (no duplicate keys, anchors or aliases); a one-line
    UserError naming the file (and line) otherwise.  ``what`` names the kind of file."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except RecursionError:  # PyYAML composes nodes recursively: "[[[[…" 50,000 deep
        raise UserError(f"{path}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}:{where}: invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: {what} must be a YAML mapping")
    return data


def parse(path: Path) -> tuple[ReproducerSpec, str]:
    """Read and validate; raise UserError naming the file and field."""
    raw = read_limited(path, MAX_FILE_BYTES, f"{path}: reproducer")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}: "
                        f"{raw[exc.start:exc.start + 1]!r})") from None
    data = strict_yaml(path, text, "a reproducer")
    try:
        spec = ReproducerSpec.model_validate(data)
    except ValidationError as exc:
        raise UserError(_format_validation(path, exc)) from None
    if spec.name != path.stem:
        raise UserError(f"{path}: field 'name': {spec.name!r} does not match the file name "
                        f"(expected {path.stem!r})")
    return spec, text


def parse_overrides(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--param {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def load(path: Path, overrides: dict[str, str] | None = None) -> Reproducer:
    """Validate, apply parameter overrides and render steps and files."""
    spec, text = parse(path)
    params: dict[str, Scalar] = dict(spec.params)
    for key, value in (overrides or {}).items():
        if key not in params:
            known = ", ".join(sorted(params)) or "none"
            raise UserError(f"{path}: unknown parameter '{key}' (declared: {known})")
        params[key] = _coerce(value, params[key])
    env = _BoundedSandbox(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.globals.clear()  # no range/lipsum/cycler/joiner/namespace: parameters only

    def render(where: str, template: str) -> str:
        try:
            with _time_budget(RENDER_SECONDS), _memory_cap(RENDER_MEMORY):
                out = env.from_string(template).render(**params)
        except _TooSlow:
            raise UserError(f"{path}: field '{where}': rendering takes longer than "
                            f"{RENDER_SECONDS:.0f}s (a loop too large?)") from None
        except MemoryError:
            raise UserError(f"{path}: field '{where}': rendering needs more than "
                            f"{RENDER_MEMORY >> 20} MiB of memory") from None
        except jinja2.exceptions.SecurityError as exc:
            raise UserError(f"{path}: field '{where}': refused by the template sandbox: "
                            f"{exc}") from None
        except jinja2.TemplateError as exc:
            raise UserError(f"{path}: field '{where}': template error: {exc}") from None
        except Exception as exc:  # e.g. {{ 1 / n }} with n = 0, or an overflow
            raise UserError(f"{path}: field '{where}': template failed: "
                            f"{exc.__class__.__name__}: {exc}") from None
        if len(out) > MAX_RENDERED_CHARS:
            raise UserError(f"{path}: field '{where}': renders to {len(out)} characters, "
                            f"over the {MAX_RENDERED_CHARS} limit")
        return out

    def steps(kind: str, items: list[Step]) -> list[Step]:
        return [s.model_copy(update={"run": render(f"{kind}[{i}].run", s.run)})
                for i, s in enumerate(items)]

    files = []
    for i, f in enumerate(spec.files):
        if f.source is not None:
            raw = read_limited(confined_source(path, f.source, i), MAX_SOURCE_BYTES,
                               f"{path}: field 'files[{i}].source'")
            if f.template:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise UserError(f"{path}: field 'files[{i}].source': {f.source} is not "
                                    "UTF-8 text; set 'template: false' to upload it as "
                                    "is") from None
                data = render(f"files[{i}]", text).encode()
            else:
                data = raw
        else:
            assert f.content is not None
            data = render(f"files[{i}].content", f.content).encode() if f.template \
                else f.content.encode()
        files.append(RenderedFile(path=f.path, data=data, mode=int(f.mode, 8)))
    return Reproducer(spec=spec, path=path, params=params, setup=steps("setup", spec.setup),
                  run=steps("run", spec.run), cleanup=steps("cleanup", spec.cleanup),
                  files=files, text=text)


class _TooSlow(BaseException):
    """Rendering ran out of its time budget (a BaseException: no ``except Exception``
    on the way may swallow it)."""


@contextmanager
def _time_budget(seconds: float) -> Iterator[None]:
    """Raise :class:`_TooSlow` in the block after ``seconds`` (SIGALRM: the main thread
    only, as in the CLI; elsewhere the size checks of :class:`_BoundedSandbox` remain)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise _TooSlow

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)


@contextmanager
def _memory_cap(extra: int) -> Iterator[None]:
    """Allocations beyond ``extra`` more bytes of address space fail (MemoryError) in the
    block: one operation cannot take gigabytes (``'x'.rjust(10 ** 10)``)."""
    try:
        with open("/proc/self/statm") as fh:
            used = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (OSError, ValueError):
        yield
        return
    cap = used + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY and soft <= cap:
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class _BoundedSandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
    """The sandbox, with the size of a result checked before one operation computes
    it: the limit on the rendered text comes too late for ``9 ** 99999999`` (minutes
    of CPU in one step) or ``'x' * 10 ** 9``."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any,
                   right: Any) -> Any:
        ints = all(isinstance(v, int) for v in (left, right))
        if ints and operator == "**" and right > 0 and \
                right * max(abs(left).bit_length() - 1, 0) > MAX_INT_BITS:
            raise jinja2.exceptions.SecurityError(f"{left} ** {right} is too large")
        if ints and operator == "*" and \
                abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
            raise jinja2.exceptions.SecurityError("an integer product this large")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(n, int) and \
                        len(seq) * n > MAX_RENDERED_CHARS:
                    raise jinja2.exceptions.SecurityError(
                        f"repeating {len(seq)} items {n} times is over the "
                        f"{MAX_RENDERED_CHARS} limit")
        return super().call_binop(context, operator, left, right)


def confined_source(path: Path, source: str, index: int) -> Path:
    """``files[].source`` resolved (symlinks too); it must stay in the reproducer's folder."""
    base = path.parent.resolve()
    where = f"{path}: field 'files[{index}].source'"
    if os.path.isabs(source):
        raise UserError(f"{where}: {source!r} is absolute; give a path relative to "
                        f"the reproducer's folder")
    src = (base / source).resolve()
    if not src.is_relative_to(base):
        raise UserError(f"{where}: {source!r} leaves the reproducer's folder {base}")
    return src


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
            number = float(value)
        except ValueError:
            raise UserError(f"--param: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise UserError(f"--param: {value!r} is not a finite number")
        return number
    return value
