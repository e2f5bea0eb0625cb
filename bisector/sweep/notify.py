"""Telling people what a sweep found, in the forms kernel people already read.

Two kinds of mail, after KernelCI's regression mails, the kernel test robot's
reports and syzbot's:

* one **summary mail** per sweep (:func:`summary_mail`): new regressions
  first, each with its culprit once the bisection named one, then fixed, still
  failing ("failing since <date>, N nights"), unstable, then the rest as
  counts and lines.  It carries no ``#regzbot`` line: regzbot would open a
  second entry for a regression its own mail already reported.
* one **regression mail** per culprit (:func:`regression_mails`): reproducers
  failing on the same culprit commit (or, while no commit is named, on the same
  line and kernel range) are one mail, so a maintainer gets one report for one
  bug.  It has what a reply needs: last good and first bad kernel, the failure's
  output, one ``bisector run`` command, ``Reported-by:``/``Link:`` and a
  ``#regzbot introduced:`` line — the commit only when the bisection FOUND it;
  otherwise the kernel range, and a doubtful commit is called doubtful.

Mails are text/plain UTF-8 (no HTML: many kernel lists reject it), with a
Message-ID and a Date; prose is wrapped at 72 columns, while console output,
commands and trailers are never wrapped (wrapping them breaks them).

:func:`send` delivers the mails over SMTP and posts :func:`webhook_payload` as
JSON.  It never raises: the sweep's results are stored before it runs, so a
dead mail server must not turn a finished sweep into a crash; every failure is
one line in :attr:`NotifyOutcome.errors` for the caller to print (and exit
with its infrastructure code).
"""

from __future__ import annotations

import email.utils
import fnmatch
import logging
import os
import re
import secrets
import shlex
import smtplib
import ssl
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import jinja2
import requests

from ..errors import InfraError, UserError
from .model import (
    Category,
    Change,
    Notify,
    Regression,
    RegressionStatus,
    SmtpTarget,
    SweepReport,
    WebhookTarget,
)

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

#: prose width; console lines and commands keep theirs
WIDTH = 72
#: an excerpt longer than this keeps its head and tail (the oops and the end)
EXCERPT_LINES = (60, 20)
#: console lines longer than this are cut (RFC 5322 allows 998 octets a line)
EXCERPT_LINE_CHARS = 400

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SHA = re.compile(r"[0-9a-f]{40}")


# ---------------------------------------------------------------- the outcome


@dataclass(frozen=True)
class SentMail:
    subject: str
    #: envelope recipients (bare addresses), in header order: To, then Cc
    recipients: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.subject} → {', '.join(self.recipients)}"


@dataclass
class NotifyOutcome:
    """What :func:`send` did: the caller prints ``errors`` and exits non-zero if any."""

    mails: list[SentMail] = field(default_factory=list)
    #: the webhook's HTTP status; None: no webhook configured, or no answer
    webhook_status: int | None = None
    #: one line each, naming what failed (a config field, the server, the URL)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class SmtpFactory(Protocol):
    """How :func:`send` opens its connection (``smtplib.SMTP``; tests may wrap it)."""

    def __call__(self, host: str, port: int, *, timeout: float) -> smtplib.SMTP: ...


# ---------------------------------------------------------------- wording


def one_line(text: object) -> str:
    """An error or a stranger's string as one line (mail headers, error lines)."""
    return " ".join(str(text).split())


def ref(spec: str) -> str:
    """A kernel or commit as regzbot and git read it: 12 hex for a commit
    (``git:<sha>`` or a bare sha), the kernel spec as it is otherwise."""
    bare = spec.removeprefix("git:")
    return bare[:12] if _SHA.fullmatch(bare) else spec


def _is_commit(spec: str | None) -> bool:
    return spec is not None and _SHA.fullmatch(spec.removeprefix("git:")) is not None


def commit_line(r: Regression) -> str:
    """``1a2b3c4d5e6f ("subject")``: the form of a Fixes: trailer."""
    assert r.culprit is not None
    return ref(r.culprit) + (f' ("{one_line(r.culprit_subject)}")' if r.culprit_subject else "")


def named(r: Regression) -> bool:
    """The bisection named a culprit we stand behind (FOUND; never DOUBTFUL)."""
    return r.status is RegressionStatus.FOUND and r.culprit is not None


def kernel_range(r: Regression) -> str:
    """Where the regression is: the named first-bad kernel of a list bisection, or
    the night's last good..first bad."""
    if named(r) and not _is_commit(r.culprit):
        assert r.culprit is not None
        return f"{ref(r.last_good)}..{ref(r.culprit)}"
    return f"{ref(r.last_good)}..{ref(r.first_bad)}"


def regzbot_line(r: Regression) -> str:
    """The commit only when FOUND; a range otherwise (regzbot reads both)."""
    if named(r) and _is_commit(r.culprit):
        assert r.culprit is not None
        return f"#regzbot introduced: {ref(r.culprit)}"
    return f"#regzbot introduced: {kernel_range(r)}"


def answer(r: Regression) -> str:
    """One sentence: what the bisection says, or why it says nothing yet."""
    campaign = f" (campaign {r.campaign_id})" if r.campaign_id is not None else ""
    why = f": {one_line(r.note)}" if r.note else ""
    if named(r) and _is_commit(r.culprit):
        return f"culprit: {commit_line(r)}{campaign}"
    if named(r):
        assert r.culprit is not None
        return f"first bad kernel (bisected): {r.culprit}{campaign}"
    where = f"the regression is in {kernel_range(r)}"
    if r.status is RegressionStatus.DOUBTFUL:
        ended = (f"it ended at {commit_line(r)}, but that is not confirmed"
                 if r.culprit else "it named no commit it could confirm")
        return (f"bisection doubtful{campaign}{why}; {ended} and is not the answer; {where}")
    if r.status is RegressionStatus.BISECTING:
        return f"bisection running{campaign}; {where}"
    if r.status is RegressionStatus.FAILED:
        return f"bisection failed{campaign}{why}; {where}"
    return f"not bisected{why}; {where}"


_PLURAL = {Category.NEW_REGRESSION: "new regressions", Category.NEW_FAILURE: "new failures",
           Category.NEW_PASS: "new passes"}


def count_phrase(category: Category, n: int) -> str:
    return f"{n} {_PLURAL.get(category, category.value) if n != 1 else category.value}"


def counts(report: SweepReport) -> dict[Category, int]:
    return {c: len(report.by_category(c)) for c in Category}


def _duration(seconds: float) -> str:
    m = round(seconds) // 60
    return f"{m // 60}h {m % 60:02d}m" if m >= 60 else f"{m}m {round(seconds) % 60:02d}s"


def _clean(line: str) -> str:
    line = _CONTROL.sub("", _ANSI.sub("", line.rstrip()))
    return line if len(line) <= EXCERPT_LINE_CHARS else line[:EXCERPT_LINE_CHARS] + " [...]"


def clip_excerpt(text: str) -> str:
    """Console output fit for a mail: no escape codes, no overlong lines, the head
    (where an oops starts) and the tail (where a test says why) of a long one."""
    lines = [_clean(ln) for ln in text.strip("\n").splitlines()]
    head, tail = EXCERPT_LINES
    if len(lines) > head + tail:
        cut = len(lines) - head - tail
        lines = [*lines[:head], f"[... {cut} lines cut ...]", *lines[-tail:]]
    return "\n".join(lines)


def failure_output(report: SweepReport, r: Regression) -> str:
    """The failure's output, never empty: the regression's excerpt, else its cell's,
    else a sentence saying there is none and why the cell failed."""
    cell = next((c for c in report.cells if r.cell_id and c.key.id == r.cell_id), None)
    for text in (r.excerpt, cell.excerpt if cell else ""):
        if text.strip():
            return clip_excerpt(text)
    reason = one_line(cell.reason) if cell and cell.reason.strip() else ""
    where = f" (evidence: {cell.run_dir})" if cell and cell.run_dir else ""
    if reason:
        return f"(no output was captured for this failure; the run's reason: {reason}){where}"
    return f"(no output was captured for this failure, and the run recorded no reason){where}"


def reproduce_command(report: SweepReport, r: Regression) -> str:
    """The regression's own ``bisector run`` command, else one built from its file."""
    if r.reproduce.strip():
        return one_line(r.reproduce)
    repro = report.reproducer_files.get(r.reproducer)
    cmd = (f"bisector run --kernel {shlex.quote(r.first_bad)} --repro "
           + (shlex.quote(repro) if repro else "PATH"))
    notes = ([] if repro else [f"PATH: the file of the reproducer {r.reproducer!r}"]) + (
        [f"with the sweep's param set {r.params!r}"] if r.params != "default" else [])
    return cmd + (f"   # {'; '.join(notes)}" if notes else "")


# ---------------------------------------------------------------- links, recipients


def url_for(report: SweepReport, path: str | Path, base_url: str | None) -> str:
    """Where a reader opens ``path``: under ``base_url`` when it lies in the results
    directory (the served site), else a file:// URL (readable on this host only)."""
    p = Path(path)
    p = p if p.is_absolute() else Path(report.results_dir) / p
    if base_url:
        try:
            rel = p.resolve().relative_to(Path(report.results_dir).resolve())
        except ValueError:
            pass
        else:
            return base_url.rstrip("/") + "/" + quote(rel.as_posix())
    return p.resolve().as_uri()


def sweep_url(report: SweepReport, base_url: str | None) -> str:
    return url_for(report, Path(report.sweep_dir) / "index.html", base_url)


def _subscribers(notify: Notify, reproducers: Iterable[str]) -> list[str]:
    names = set(reproducers)
    return [to for s in notify.subscriptions
            if any(fnmatch.fnmatchcase(n, s.reproducers) for n in names) for to in s.to]


def _unique(addresses: Iterable[str], seen: set[str]) -> list[str]:
    out = []
    for a in addresses:
        key = email.utils.parseaddr(a)[1].lower() or a.lower()
        if key not in seen:
            seen.add(key)
            out.append(a)
    return out


def _message(target: SmtpTarget, notify: Notify, reproducers: Iterable[str], subject: str,
             body: str, idstring: str) -> EmailMessage:
    """A plain-text mail: To the configured list, Cc the matching subscribers."""
    seen: set[str] = set()
    to = _unique(target.to, seen)
    cc = _unique(_subscribers(notify, reproducers), seen)
    msg = EmailMessage()
    msg["From"] = target.sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = one_line(subject)
    msg["Date"] = email.utils.format_datetime(datetime.now().astimezone())
    domain = email.utils.parseaddr(target.sender)[1].rpartition("@")[2] or "localhost"
    # short enough not to be folded; unique (a resent sweep is a new mail), yet it
    # says which sweep and mail it is
    msg["Message-ID"] = f"<bisector.{idstring}.{secrets.token_hex(6)}@{domain}>"
    msg["X-Mailer"] = "bisector"
    lines = body.splitlines()
    cte = ("quoted-printable" if any(len(ln.encode()) > 998 for ln in lines)
           else "7bit" if body.isascii() else "8bit")
    msg.set_content(body, subtype="plain", charset="utf-8", cte=cte)
    return msg


def _wrap(text: str, first: str = "", rest: str | None = None) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=first,
                         subsequent_indent=first if rest is None else rest,
                         break_long_words=False, break_on_hyphens=False)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["wrap"] = _wrap
    return env


# ---------------------------------------------------------------- the summary mail


def _track(x: Change | Regression) -> tuple[str, str, str]:
    return (x.line, x.reproducer, x.params)


def _change_row(c: Change, regression: Regression | None) -> list[str]:
    """One bullet: the track and kernel, then what it means for this category."""
    head = f"{c.line}: {c.reproducer} [{c.params}] on {c.kernel}"
    was = (f"was {c.previous_status.value} on {c.previous_kernel}"
           if c.previous_status is not None and c.previous_kernel else "")
    rows = [head]
    if c.category is Category.NEW_REGRESSION and regression is not None:
        rows += [f"last good {regression.last_good}, first bad {regression.first_bad}",
                 answer(regression)]
    elif c.category is Category.STILL_FAILING:
        nights = f", {c.nights} night{'s' if c.nights != 1 else ''}" if c.nights else ""
        rows.append(f"failing since {c.since or 'an unknown date'}{nights}")
        if regression is not None:
            rows.append(answer(regression))
    elif c.category is Category.UNSTABLE and c.flake_rate is not None:
        rows.append(f"BAD in {c.flake_rate:.0%} of its recent runs")
    elif was:
        rows.append(was)
    if c.note:
        rows.append(one_line(c.note))
    return rows


@dataclass(frozen=True)
class _Section:
    title: str
    count: int
    rows: list[list[str]]


_FIRST = (Category.NEW_REGRESSION, Category.FIXED, Category.STILL_FAILING, Category.UNSTABLE)
_REST = (Category.NEW_FAILURE, Category.NEWLY_UNTESTABLE, Category.NEW_PASS,
         Category.APPEARED, Category.DISAPPEARED)


def summary_subject(report: SweepReport) -> str:
    n = counts(report)
    told = [count_phrase(c, n[c]) for c in Category
            if c is not Category.STILL_PASSING and n[c]]
    return f"[bisector] {report.name} sweep {report.sweep_id}: {', '.join(told) or 'no changes'}"


def summary_body(report: SweepReport, notify: Notify) -> str:
    regs = {_track(r): r for r in report.regressions}
    n = counts(report)

    def section(c: Category) -> _Section:
        title = count_phrase(c, n[c]).split(" ", 1)[1]
        return _Section(title[0].upper() + title[1:], n[c],
                        [_change_row(x, regs.get(_track(x))) for x in report.by_category(c)])

    told = [count_phrase(c, n[c]) for c in Category if n[c]]
    return _env().get_template("sweep-summary.txt.j2").render(
        report=report, status=report.status.value, duration=_duration(report.wall_s),
        tracks=len(report.changes), told=", ".join(told) or "nothing",
        first=[section(c) for c in _FIRST if n[c]], rest=[section(c) for c in _REST if n[c]],
        passing=n[Category.STILL_PASSING], link=sweep_url(report, notify.base_url))


def summary_mail(report: SweepReport, notify: Notify) -> EmailMessage | None:
    """The sweep's one summary mail; None when there is no mail target, or when
    nothing but "still passing" happened and ``notify.when`` is "changed"."""
    if notify.email is None or (notify.when == "changed" and not report.changed()):
        return None
    named_repros = {c.reproducer for c in report.changes
                    if c.category is not Category.STILL_PASSING}
    return _message(notify.email, notify, named_repros, summary_subject(report),
                    summary_body(report, notify), f"{report.name}.{report.sweep_id}")


# ---------------------------------------------------------------- regression mails


@dataclass(frozen=True)
class _Item:
    """One failing reproducer of a regression mail, as the template lays it out."""

    r: Regression
    title: str
    answer: str
    output: str
    reproduce: str
    report: str | None


def group_key(r: Regression) -> tuple[str, ...]:
    """Same culprit commit → one mail; no named culprit → same line and range."""
    if named(r):
        assert r.culprit is not None
        return ("culprit", ref(r.culprit))
    return ("range", r.line, r.last_good, r.first_bad)


def new_regressions(report: SweepReport) -> list[Regression]:
    """The regressions tonight's comparison calls new (so one is mailed once)."""
    new = {_track(c) for c in report.by_category(Category.NEW_REGRESSION)}
    return [r for r in report.regressions if _track(r) in new]


def grouped(regressions: Sequence[Regression]) -> list[list[Regression]]:
    groups: dict[tuple[str, ...], list[Regression]] = {}
    for r in regressions:
        groups.setdefault(group_key(r), []).append(r)
    return [sorted(g, key=_track) for g in groups.values()]


def regression_subject(group: Sequence[Regression]) -> str:
    r = group[0]
    more = f" and {len(group) - 1} more" if len(group) > 1 else ""
    return f"[REGRESSION] {r.line}: {r.reproducer}{more}"


def headline(lead: Regression) -> str:
    """The mail's answer in one line, shared by its reproducers (so no campaign id)."""
    if named(lead) and _is_commit(lead.culprit):
        return f"culprit: {commit_line(lead)}"
    if named(lead):
        return f"first bad kernel (bisected): {lead.culprit}"
    return f"The regression is in {kernel_range(lead)}"


def regression_body(report: SweepReport, notify: Notify, group: Sequence[Regression]) -> str:
    lead = group[0]
    def said(r: Regression) -> str:  # the culprit is the mail's headline: not again
        return ("found the culprit above" + (f" (campaign {r.campaign_id})"
                                             if r.campaign_id is not None else "")
                if named(lead) else answer(r))

    items = [_Item(r, f"{r.line}: {r.reproducer} [{r.params}]", said(r),
                   failure_output(report, r), reproduce_command(report, r),
                   url_for(report, r.campaign_report, notify.base_url)
                   if r.campaign_report else None) for r in group]
    # else the regression's entry on the sweep page (site.py's id="regression-<id>")
    link = next((i.report for i in items if i.report), None) or (
        f"{sweep_url(report, notify.base_url)}#regression-{lead.id}")
    labels = {k.spec: k.label for k in report.kernels}
    return _env().get_template("sweep-regression.txt.j2").render(
        report=report, items=items, lead=lead, named=named(lead),
        doubtful=any(r.status is RegressionStatus.DOUBTFUL for r in group),
        headline=headline(lead),
        fixes=f"Fixes: {commit_line(lead)}" if named(lead) and _is_commit(lead.culprit)
        else None,
        labels=labels, reported_by=notify.reported_by, link=link,
        regzbot=regzbot_line(lead), sweep_link=sweep_url(report, notify.base_url))


def regression_mails(report: SweepReport, notify: Notify,
                     regressions: Sequence[Regression] | None = None) -> list[EmailMessage]:
    """One mail per culprit, for ``regressions`` (default: tonight's new ones)."""
    if notify.email is None:
        return []
    target = notify.email
    chosen = new_regressions(report) if regressions is None else regressions
    return [_message(target, notify, [r.reproducer for r in g], regression_subject(g),
                     regression_body(report, notify, g),
                     f"{report.name}.{report.sweep_id}.regression{g[0].id}")
            for g in grouped(chosen)]


# ---------------------------------------------------------------- the webhook


def webhook_payload(report: SweepReport, base_url: str | None = None) -> dict[str, Any]:
    """The sweep as JSON for a dashboard or chat bot; its keys are a contract
    (``schema`` changes when one does)."""
    n = counts(report)
    return {
        "schema": 1,
        "sweep": {"id": report.sweep_id, "name": report.name, "status": report.status.value,
                  "started": report.started, "finished": report.finished,
                  "wall_s": report.wall_s, "link": sweep_url(report, base_url)},
        "changed": report.changed(),
        "counts": {c.value: n[c] for c in Category},
        "changes": [c.model_dump(mode="json") for c in report.changes],
        "regressions": [{**r.model_dump(mode="json"), "excerpt": failure_output(report, r),
                         "named": named(r), "answer": answer(r), "regzbot": regzbot_line(r)}
                        for r in report.regressions],
    }


def post_webhook(payload: dict[str, Any], target: WebhookTarget,
                 session: requests.Session | None = None) -> int:
    """POST the payload once (a retry could post it twice); its HTTP status.
    Raises InfraError (one line) on a non-2xx answer, a redirect or no answer."""
    try:
        if session is None:
            with requests.Session() as own:
                resp = own.post(target.url, json=payload, timeout=target.timeout,
                                allow_redirects=False)
        else:
            resp = session.post(target.url, json=payload, timeout=target.timeout,
                                allow_redirects=False)
    except requests.Timeout as exc:
        raise InfraError(f"webhook {target.url}: no answer within {target.timeout:g}s "
                         f"(notify.webhook.timeout): {one_line(exc)[:200]}") from exc
    except requests.RequestException as exc:
        raise InfraError(f"webhook {target.url}: {one_line(exc)[:300]}") from exc
    if not 200 <= resp.status_code < 300:
        text = one_line(resp.text)[:200]
        raise InfraError(f"webhook {target.url}: HTTP {resp.status_code} {resp.reason}"
                         + (f": {text}" if text else ""))
    return resp.status_code


# ---------------------------------------------------------------- sending


def smtp_password(target: SmtpTarget) -> str | None:
    """The password from the environment variable the config names (UserError: unset)."""
    if target.username is None and target.password_env is None:
        return None
    if target.password_env is None:
        raise UserError("notify.email.username is set but notify.email.password_env is not: "
                        "name the environment variable that holds the SMTP password")
    if target.username is None:
        raise UserError("notify.email.password_env is set but notify.email.username is not")
    password = os.environ.get(target.password_env)
    if password is None:
        raise UserError(f"notify.email.password_env: the environment variable "
                        f"{target.password_env} is not set (the SMTP password for "
                        f"{target.username!r}); no mail sent")
    return password


def _smtp_error(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        err = exc.smtp_error
        text = err.decode(errors="replace") if isinstance(err, bytes) else str(err)
        return f"{exc.smtp_code} {one_line(text)}"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "all recipients refused: " + ", ".join(
            f"{a} ({c} {one_line(m.decode(errors='replace'))})"
            for a, (c, m) in exc.recipients.items())
    return one_line(exc) or type(exc).__name__


def recipients(msg: EmailMessage) -> tuple[str, ...]:
    return tuple(a for _, a in email.utils.getaddresses(msg.get_all("To", []) +
                                                        msg.get_all("Cc", [])) if a)


def deliver(mails: Sequence[EmailMessage], target: SmtpTarget,
            smtp_factory: SmtpFactory = smtplib.SMTP) -> tuple[list[SentMail], list[str]]:
    """Send over one connection; a mail the server refuses does not stop the others."""
    sent: list[SentMail] = []
    errors: list[str] = []
    if not mails:
        return sent, errors
    try:
        password = smtp_password(target)
    except UserError as exc:
        return sent, [str(exc)]
    server = f"{target.host}:{target.port}"
    try:
        with smtp_factory(target.host, target.port, timeout=target.timeout) as smtp:
            if target.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if target.username is not None and password is not None:
                smtp.login(target.username, password)
            smtp.ehlo_or_helo_if_needed()
            for msg in mails:
                subject, rcpts = str(msg["Subject"]), recipients(msg)
                opts = ["BODY=8BITMIME"] if (msg["Content-Transfer-Encoding"] == "8bit"
                                             and smtp.has_extn("8bitmime")) else []
                try:
                    refused = smtp.send_message(msg, from_addr=email.utils.parseaddr(
                        target.sender)[1], to_addrs=list(rcpts), mail_options=opts)
                except (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException) as exc:
                    errors.append(f"mail {subject!r} via {server}: {_smtp_error(exc)}")
                    continue
                sent.append(SentMail(subject, tuple(a for a in rcpts if a not in refused)))
                errors += [f"mail {subject!r} via {server}: {a} refused: {code} "
                           f"{one_line(text.decode(errors='replace'))}"
                           for a, (code, text) in refused.items()]
    except (smtplib.SMTPException, OSError) as exc:
        lost = len(mails) - len(sent)
        errors.append(f"mail: SMTP {server} (notify.email): {_smtp_error(exc)}; "
                      f"{lost} of {len(mails)} mail{'s' if len(mails) != 1 else ''} not sent")
    return sent, errors


def send(report: SweepReport, notify: Notify, *, smtp_factory: SmtpFactory = smtplib.SMTP,
         session: requests.Session | None = None) -> NotifyOutcome:
    """Mail and post what the sweep found; never raises (see the module docstring)."""
    out = NotifyOutcome()
    if notify.email is not None:
        try:
            summary = summary_mail(report, notify)
            mails = ([summary] if summary else []) + regression_mails(report, notify)
        except Exception as exc:  # a wording bug must not lose the stored sweep
            log.exception("building the sweep's mails failed")
            out.errors.append(f"mail: building the mails failed: {type(exc).__name__}: "
                              f"{one_line(exc)}")
        else:
            out.mails, errors = deliver(mails, notify.email, smtp_factory)
            out.errors += errors
    if notify.webhook is not None:
        try:
            out.webhook_status = post_webhook(webhook_payload(report, notify.base_url),
                                              notify.webhook, session)
        except InfraError as exc:
            out.errors.append(str(exc))
        except Exception as exc:  # as above: report, do not raise
            log.exception("posting the sweep's webhook failed")
            out.errors.append(f"webhook {notify.webhook.url}: {type(exc).__name__}: "
                              f"{one_line(exc)}")
    return out
