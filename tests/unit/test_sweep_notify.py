"""Sweep notifications, delivered for real: mails through an SMTP server (aiosmtpd) on
127.0.0.1 and the webhook's JSON to an http.server on 127.0.0.1.

Each test builds its :class:`SweepReport` with :func:`sweep` (the notifiers read
nothing else), sends it with :func:`bisector.sweep.notify.send` and reads what
the servers received: the subject, the envelope recipients (the configured list
plus matching subscriptions), the ``#regzbot`` line, the excerpt block.  Failures
(server down, 500, no password) must come back as one-line errors, not raise.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import http.server
import json
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from bisector.sweep import notify as nt
from bisector.sweep.model import (
    Category,
    CellKey,
    CellResult,
    CellStatus,
    Change,
    KernelRef,
    Notify,
    Regression,
    RegressionStatus,
    SmtpTarget,
    Subscription,
    SweepReport,
    SweepStatus,
    WebhookTarget,
)
from tests.fakes.archive import serve_handler

SHA = "1a2b3c4d5e6f" + "7" * 28
OTHER_SHA = "abcdefabcdef" + "1" * 28
GOOD, BAD, NEWER = "debian:6.1.0-54", "debian:6.1.0-56", "debian:6.1.0-57"
OOPS = ("[   12.345678] BUG: kernel NULL pointer dereference, address: 0000000000000008\n"
        "[   12.345999] RIP: 0010:gre_gso_segment+0x1c/0x2e0")
LIST = "regressions@lists.example.org"
RANGE_LINE = f"#regzbot introduced: {GOOD}..{BAD}"
CULPRIT_LINE = "#regzbot introduced: 1a2b3c4d5e6f"
UNNAMED = [RegressionStatus.BISECTING, RegressionStatus.FAILED,
           RegressionStatus.NOT_BISECTED, RegressionStatus.DOUBTFUL]


# ---------------------------------------------------------------- building reports


def change(category: Category, reproducer: str = "net-gre", *, line: str = "debian-6.1",
           **kw: Any) -> Change:
    status = CellStatus.GOOD if category in (Category.FIXED, Category.STILL_PASSING,
                                             Category.NEW_PASS) else CellStatus.BAD
    return Change(**{"category": category, "line": line, "reproducer": reproducer,
                     "params": "default", "kernel": BAD, "status": status, **kw})


def regression(reproducer: str = "net-gre", status: RegressionStatus = RegressionStatus.FOUND,
               *, id: int = 1, line: str = "debian-6.1", **kw: Any) -> Regression:
    return Regression(**{
        "id": id, "line": line, "reproducer": reproducer, "params": "default",
        "last_good": GOOD, "first_bad": BAD, "since": "2025-01-02", "status": status,
        "culprit": SHA, "culprit_subject": "net: gre: keep the outer header", "campaign_id": 7,
        "excerpt": OOPS,
        "reproduce": f"bisector run --kernel {BAD} --repro reproducers/{reproducer}.yaml",
        **kw})


def sweep(tmp_path: Path, changes: list[Change], regressions: list[Regression] | None = None,
          cells: list[CellResult] | None = None) -> SweepReport:
    """A finished sweep #42 of "nightly"; a regression gets its NEW_REGRESSION row."""
    regressions = regressions or []
    tracked = {(c.line, c.reproducer) for c in changes}
    changes = changes + [change(Category.NEW_REGRESSION, r.reproducer, line=r.line)
                         for r in regressions if (r.line, r.reproducer) not in tracked]
    results = tmp_path / "results"
    return SweepReport(
        sweep_id=42, name="nightly", config_path=str(tmp_path / "sweep.yaml"),
        started="2025-01-02T02:30:00", finished="2025-01-02T03:32:10",
        status=SweepStatus.DONE, wall_s=3730, results_dir=str(results),
        sweep_dir=str(results / "sweep-42"),
        kernels=[KernelRef(line="debian-6.1", spec=GOOD, label="6.1.0-54 (v6.1.187)", order=0),
                 KernelRef(line="debian-6.1", spec=BAD, label="6.1.0-56 (v6.1.192)", order=1)],
        reproducers=sorted({c.reproducer for c in changes}), cells=cells or [],
        changes=changes, regressions=regressions)


def config(port: int, *, when: str = "changed", subscriptions: list[Subscription] | None = None,
           base_url: str | None = None, **smtp: Any) -> Notify:
    return Notify(when=when,  # type: ignore[arg-type]  # a table's str
                  email=SmtpTarget(**{"host": "127.0.0.1", "port": port,
                                      "from": "bisector <bot@example.org>", "to": [LIST],
                                      "timeout": 5, **smtp}),
                  subscriptions=subscriptions or [], base_url=base_url,
                  reported_by="bisector <bot@example.org>")


# ---------------------------------------------------------------- a real SMTP server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    msg: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.msg["Subject"])

    @property
    def body(self) -> str:
        part = self.msg.get_body(("plain",))
        assert part is not None
        text = part.get_content()
        assert isinstance(text, str)
        return text.replace("\r\n", "\n")  # the wire's CRLF


@dataclass
class Inbox:
    """What the server accepted; ``refuse``: addresses it answers 550 for;
    ``reject``: a subject prefix whose mails it answers 554 after DATA."""

    port: int
    mails: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    reject: str | None = None

    async def handle_RCPT(self, server: SMTPServer, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session,
                          envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        if self.reject and str(msg["Subject"]).startswith(self.reject):
            return "554 5.7.1 rejected by policy"
        self.mails.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"

    def by_subject(self, prefix: str) -> list[Received]:
        return [m for m in self.mails if m.subject.startswith(prefix)]

    def one(self, prefix: str) -> Received:
        got = self.by_subject(prefix)
        assert len(got) == 1, [m.subject for m in self.mails]
        return got[0]


@contextmanager
def smtp_server(**smtp_kw: Any) -> Iterator[Inbox]:
    inbox = Inbox(free_port())
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, **smtp_kw)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as box:
        yield box


def deliver(report: SweepReport, notify: Notify) -> nt.NotifyOutcome:
    out = nt.send(report, notify)
    assert out.errors == []
    return out


def excerpt_block(body: str) -> list[str]:
    """The lines between the ===== fences (one block per reproducer)."""
    return re.findall(r"^=+\n(.*?)\n?^=+$", body, flags=re.M | re.S)


# ---------------------------------------------------------------- the summary mail


@pytest.mark.parametrize(("categories", "told"), [
    ([Category.NEW_REGRESSION, Category.FIXED], "1 new regression, 1 fixed"),
    ([Category.NEW_REGRESSION] * 2 + [Category.STILL_FAILING],
     "2 new regressions, 1 still failing"),
    ([Category.NEW_PASS] * 2 + [Category.STILL_PASSING], "2 new passes"),
    ([Category.UNSTABLE, Category.APPEARED, Category.DISAPPEARED],
     "1 unstable, 1 appeared, 1 disappeared"),
])
def test_summary_subject_counts_what_changed(tmp_path: Path, inbox: Inbox,
                                             categories: list[Category], told: str) -> None:
    changes = [change(c, f"r{i}") for i, c in enumerate(categories)]
    deliver(sweep(tmp_path, changes), config(inbox.port))
    assert inbox.one("[bisector]").subject == f"[bisector] nightly sweep 42: {told}"


def test_summary_reads_new_regressions_first_then_fixed_failing_unstable_rest(
        tmp_path: Path, inbox: Inbox) -> None:
    order = [Category.NEW_FAILURE, Category.UNSTABLE, Category.STILL_FAILING, Category.FIXED,
             Category.NEW_REGRESSION]
    deliver(sweep(tmp_path, [change(c, f"r{i}") for i, c in enumerate(order)]),
            config(inbox.port))
    body = inbox.one("[bisector]").body
    heads = ["New regression (1)", "Fixed (1)", "Still failing (1)", "Unstable (1)",
             "Other changes", "New failure: 1"]
    at = [body.index(h) for h in heads]
    assert at == sorted(at)


@pytest.mark.parametrize(("status", "says", "never"), [
    (RegressionStatus.FOUND, 'culprit: 1a2b3c4d5e6f ("net: gre: keep the outer header")', ""),
    (RegressionStatus.BISECTING, "bisection running", "culprit:"),
    (RegressionStatus.DOUBTFUL, "bisection doubtful", "culprit:"),
    (RegressionStatus.FAILED, "bisection failed", "culprit:"),
])
def test_summary_names_the_culprit_only_once_found(tmp_path: Path, inbox: Inbox,
                                                   status: RegressionStatus, says: str,
                                                   never: str) -> None:
    deliver(sweep(tmp_path, [], [regression(status=status)]), config(inbox.port))
    body = " ".join(inbox.one("[bisector]").body.split())
    assert says in body
    assert not never or never not in body
    assert "#regzbot" not in body  # the regression mail carries it, once


def test_summary_still_failing_says_since_when_and_how_many_nights(
        tmp_path: Path, inbox: Inbox) -> None:
    rows = [change(Category.STILL_FAILING, "mroute", since="2024-12-30", nights=3)]
    deliver(sweep(tmp_path, rows), config(inbox.port))
    assert "failing since 2024-12-30, 3 nights" in inbox.one("[bisector]").body


@pytest.mark.parametrize(("base_url", "link"), [
    (None, "file://{results}/sweep-42/index.html"),
    ("https://ci.example.org/sweeps/", "https://ci.example.org/sweeps/sweep-42/index.html"),
])
def test_summary_links_the_sweep_page(tmp_path: Path, inbox: Inbox, base_url: str | None,
                                      link: str) -> None:
    deliver(sweep(tmp_path, [change(Category.FIXED)]), config(inbox.port, base_url=base_url))
    want = link.format(results=(tmp_path / "results").resolve())
    assert want in inbox.one("[bisector]").body.splitlines()


@pytest.mark.parametrize(("when", "categories", "summaries"), [
    ("changed", [Category.STILL_PASSING, Category.STILL_PASSING], 0),
    ("always", [Category.STILL_PASSING, Category.STILL_PASSING], 1),
    ("changed", [Category.STILL_PASSING, Category.NEW_PASS], 1),
])
def test_changed_mails_only_a_change_always_mails_every_sweep(
        tmp_path: Path, inbox: Inbox, when: str, categories: list[Category],
        summaries: int) -> None:
    out = deliver(sweep(tmp_path, [change(c, f"r{i}") for i, c in enumerate(categories)]),
                  config(inbox.port, when=when))
    assert len(inbox.mails) == len(out.mails) == summaries


def test_always_with_nothing_changed_says_so(tmp_path: Path, inbox: Inbox) -> None:
    deliver(sweep(tmp_path, [change(Category.STILL_PASSING)]), config(inbox.port, when="always"))
    got = inbox.one("[bisector]")
    assert got.subject == "[bisector] nightly sweep 42: no changes"
    assert "Still passing: 1" in got.body


def test_summary_goes_to_subscribers_of_the_reproducers_it_names(
        tmp_path: Path, inbox: Inbox) -> None:
    subs = [Subscription(reproducers="net-*", to=["netdev@example.org"]),
            Subscription(reproducers="veth", to=["veth@example.org"])]  # still passing only
    rows = [change(Category.FIXED, "net-gre"), change(Category.STILL_PASSING, "veth")]
    deliver(sweep(tmp_path, rows), config(inbox.port, subscriptions=subs))
    assert inbox.one("[bisector]").rcpt_tos == [LIST, "netdev@example.org"]


# ---------------------------------------------------------------- regression mails


@pytest.mark.parametrize(("glob", "subscribed"), [
    ("net-gre", True), ("net-*", True), ("*", True), ("net-?re", True),
    ("NET-*", False),  # names are matched case-sensitively, on every platform
    ("ipvs*", False), ("gre", False),
])
def test_regression_mail_recipients_follow_subscription_globs(
        tmp_path: Path, inbox: Inbox, glob: str, subscribed: bool) -> None:
    subs = [Subscription(reproducers=glob, to=["Net Dev <netdev@example.org>"])]
    deliver(sweep(tmp_path, [], [regression("net-gre")]), config(inbox.port, subscriptions=subs))
    got = inbox.one("[REGRESSION]")
    assert got.rcpt_tos == ([LIST, "netdev@example.org"] if subscribed else [LIST])
    assert ("netdev@example.org" in str(got.msg["Cc"] or "")) is subscribed


def test_regression_mail_subject_names_line_and_reproducer(tmp_path: Path,
                                                           inbox: Inbox) -> None:
    out = deliver(sweep(tmp_path, [], [regression("net-gre")]), config(inbox.port))
    assert [m.subject for m in inbox.by_subject("[REGRESSION]")] == [
        "[REGRESSION] debian-6.1: net-gre"]
    assert nt.SentMail("[REGRESSION] debian-6.1: net-gre", (LIST,)) in out.mails


@pytest.mark.parametrize(("status", "regzbot"),
                         [(RegressionStatus.FOUND, CULPRIT_LINE)]
                         + [(s, RANGE_LINE) for s in UNNAMED])
def test_regzbot_line_is_the_culprit_when_found_and_the_range_otherwise(
        tmp_path: Path, inbox: Inbox, status: RegressionStatus, regzbot: str) -> None:
    deliver(sweep(tmp_path, [], [regression(status=status)]), config(inbox.port))
    lines = inbox.one("[REGRESSION]").body.splitlines()
    assert [ln for ln in lines if ln.startswith("#regzbot")] == [regzbot]


def test_a_git_line_regzbot_range_uses_short_commits(tmp_path: Path, inbox: Inbox) -> None:
    r = regression(status=RegressionStatus.BISECTING, last_good=f"git:{OTHER_SHA}",
                   first_bad=f"git:{SHA}")
    deliver(sweep(tmp_path, [], [r]), config(inbox.port))
    assert "#regzbot introduced: abcdefabcdef..1a2b3c4d5e6f" in inbox.one(
        "[REGRESSION]").body.splitlines()


def test_a_doubtful_culprit_is_not_presented_as_the_answer(tmp_path: Path,
                                                          inbox: Inbox) -> None:
    r = regression(status=RegressionStatus.DOUBTFUL, note="the revert still fails")
    deliver(sweep(tmp_path, [], [r]), config(inbox.port))
    body = inbox.one("[REGRESSION]").body
    flat = " ".join(body.split())
    assert "doubtful" in flat and "not the answer" in flat
    assert f"The regression is in {GOOD}..{BAD}" in flat
    assert not re.search(r"^(culprit:|Fixes:)", body, flags=re.M)
    assert "culprit: 1a2b3c4d5e6f" not in flat
    assert CULPRIT_LINE not in body


@pytest.mark.parametrize(("lines", "subject", "first"), [
    (("debian-6.1", "debian-6.1"), "[REGRESSION] debian-6.1: net-fou and 1 more",
     "[1/2] debian-6.1: net-fou [default]"),
    (("debian-6.1", "ubuntu"), "[REGRESSION] debian-6.1: net-gre and 1 more",
     "[1/2] debian-6.1: net-gre [default]"),
])
def test_reproducers_failing_on_one_culprit_are_one_mail(tmp_path: Path, inbox: Inbox,
                                                         lines: tuple[str, str], subject: str,
                                                         first: str) -> None:
    regs = [regression("net-gre", id=1, line=lines[0]), regression("net-fou", id=2, line=lines[1])]
    deliver(sweep(tmp_path, [], regs), config(inbox.port))
    [got] = inbox.by_subject("[REGRESSION]")
    assert got.subject == subject
    body = got.body.splitlines()
    assert first in body and sum(ln.startswith("[2/2] ") for ln in body) == 1
    assert len(excerpt_block(got.body)) == 2
    assert [ln for ln in body if ln.startswith("#regzbot")] == [CULPRIT_LINE]


@pytest.mark.parametrize(("second", "mails"), [
    ({}, 1),                                   # same line, same range: one bug until told
    ({"first_bad": NEWER}, 2),                 # another range
    ({"line": "ubuntu"}, 2),                   # another line
    ({"status": RegressionStatus.FOUND}, 2),   # one is bisected to a commit, one is not
])
def test_unbisected_regressions_group_by_line_and_range(tmp_path: Path, inbox: Inbox,
                                                        second: dict[str, Any],
                                                        mails: int) -> None:
    regs = [regression("net-gre", RegressionStatus.BISECTING, id=1),
            regression("net-fou", **{"status": RegressionStatus.NOT_BISECTED, "id": 2, **second})]
    deliver(sweep(tmp_path, [], regs), config(inbox.port))
    assert len(inbox.by_subject("[REGRESSION]")) == mails


@pytest.mark.parametrize(("own", "cell_excerpt", "reason", "shown"), [
    (OOPS, "", "", "BUG: kernel NULL pointer dereference"),
    ("", "cell: the test said FAIL", "", "cell: the test said FAIL"),
    ("", "", "exit status 1 (expected 0)",
     "no output was captured for this failure; the run's reason: exit status 1 (expected 0)"),
    (" \n", "", "", "no output was captured for this failure, and the run recorded no reason"),
])
def test_the_excerpt_block_is_never_empty(tmp_path: Path, inbox: Inbox, own: str,
                                          cell_excerpt: str, reason: str, shown: str) -> None:
    key = CellKey(line="debian-6.1", kernel=BAD, reproducer="net-gre")
    cell = CellResult(key=key, status=CellStatus.BAD, reason=reason, excerpt=cell_excerpt)
    r = regression(excerpt=own, cell_id=key.id)
    deliver(sweep(tmp_path, [], [r], cells=[cell]), config(inbox.port))
    [block] = excerpt_block(inbox.one("[REGRESSION]").body)
    assert block.strip() and shown in block


def test_a_long_console_excerpt_keeps_head_and_tail_without_escapes(
        tmp_path: Path, inbox: Inbox) -> None:
    console = "\n".join(f"\x1b[31mline {i}\x1b[0m" for i in range(500))
    deliver(sweep(tmp_path, [], [regression(excerpt=console)]), config(inbox.port))
    [block] = excerpt_block(inbox.one("[REGRESSION]").body)
    assert block.startswith("line 0\n") and block.endswith("line 499")
    assert "lines cut" in block and "\x1b" not in block


@pytest.mark.parametrize(("campaign_report", "link"), [
    ("campaigns/7/report.html", "https://ci.example.org/s/campaigns/7/report.html"),
    (None, "https://ci.example.org/s/sweep-42/index.html#regression-1"),  # site.py's id
])
def test_regression_mail_tells_how_to_reproduce_and_whom_to_credit(
        tmp_path: Path, inbox: Inbox, campaign_report: str | None, link: str) -> None:
    r = regression(campaign_report=campaign_report)
    deliver(sweep(tmp_path, [], [r]), config(inbox.port, base_url="https://ci.example.org/s"))
    lines = inbox.one("[REGRESSION]").body.splitlines()
    assert f"  bisector run --kernel {BAD} --repro reproducers/net-gre.yaml" in lines
    assert "Reported-by: bisector <bot@example.org>" in lines
    assert f"Link: {link}" in lines
    assert "failing since: 2025-01-02" in lines
    assert f"last good:     {GOOD} (6.1.0-54 (v6.1.187))" in lines
    assert f"first bad:     {BAD} (6.1.0-56 (v6.1.192))" in lines
    assert 'Fixes: 1a2b3c4d5e6f ("net: gre: keep the outer header")' in lines


def test_mails_are_plain_utf8_with_message_id_and_date(tmp_path: Path, inbox: Inbox) -> None:
    r = regression(culprit_subject="gre: drop the überflüssige header — again")
    deliver(sweep(tmp_path, [], [r]), config(inbox.port))
    for got in inbox.mails:
        assert got.msg.get_content_type() == "text/plain" and not got.msg.is_multipart()
        assert got.msg.get_content_charset() == "utf-8"
        assert re.fullmatch(r"<[^@\s]+@example\.org>", str(got.msg["Message-ID"]))
        assert email.utils.parsedate_to_datetime(str(got.msg["Date"])).tzinfo is not None
        assert "<html" not in got.body.lower()
    assert "überflüssige header — again" in inbox.one("[REGRESSION]").body
    assert len({str(m.msg["Message-ID"]) for m in inbox.mails}) == 2


def test_prose_is_wrapped_but_commands_output_and_trailers_are_not(
        tmp_path: Path, inbox: Inbox) -> None:
    long_note = "verification failed " * 12
    long_output = "[   99.000000] " + "x" * 120
    r = regression(status=RegressionStatus.DOUBTFUL, note=long_note, excerpt=long_output,
                   culprit_subject="a commit subject that is rather long " * 3)
    deliver(sweep(tmp_path, [], [r]), config(inbox.port))
    body = inbox.one("[REGRESSION]").body
    assert long_output in body.splitlines()        # console output verbatim
    free = [ln for ln in body.splitlines()  # paths and URLs are not prose either
            if ln != long_output and str(tmp_path) not in ln
            and not ln.startswith(("  bisector run", "Link:", "report:", "Fixes:"))]
    assert len(free) > 30 and max(map(len, free)) <= 72


# ---------------------------------------------------------------- SMTP behaviour


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_uses_the_password_from_the_named_environment_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []

    def authenticator(server: SMTPServer, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        seen.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"s3cret")

    monkeypatch.setenv("BISECTOR_TEST_SMTP_PASSWORD", "s3cret")
    with smtp_server(authenticator=authenticator, auth_require_tls=False,
                     auth_required=True) as box:
        deliver(sweep(tmp_path, [change(Category.FIXED)]),
                config(box.port, username="bot", password_env="BISECTOR_TEST_SMTP_PASSWORD"))
        assert seen == [("bot", "s3cret")] and len(box.mails) == 1


@pytest.mark.parametrize(("smtp", "field"), [
    ({"username": "bot", "password_env": "BISECTOR_TEST_UNSET"}, "notify.email.password_env"),
    ({"username": "bot"}, "notify.email.password_env"),
    ({"password_env": "BISECTOR_TEST_UNSET"}, "notify.email.username"),
])
def test_a_credential_mistake_is_a_one_line_error_naming_the_field(
        tmp_path: Path, inbox: Inbox, monkeypatch: pytest.MonkeyPatch, smtp: dict[str, Any],
        field: str) -> None:
    monkeypatch.delenv("BISECTOR_TEST_UNSET", raising=False)
    out = nt.send(sweep(tmp_path, [change(Category.FIXED)]), config(inbox.port, **smtp))
    [error] = out.errors
    assert field in error and "\n" not in error
    assert out.mails == [] and inbox.mails == []


def test_an_unreachable_smtp_server_is_an_error_not_an_exception(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    out = nt.send(sweep(tmp_path, [], [regression()]), config(port))
    [error] = out.errors
    assert f"127.0.0.1:{port}" in error and "2 of 2 mails not sent" in error
    assert "\n" not in error and out.mails == []


def test_starttls_is_asked_for_when_configured(tmp_path: Path, inbox: Inbox) -> None:
    out = nt.send(sweep(tmp_path, [change(Category.FIXED)]), config(inbox.port, starttls=True))
    [error] = out.errors
    assert "STARTTLS" in error and inbox.mails == []  # this server offers none: not sent


def test_a_refused_recipient_does_not_stop_the_others(tmp_path: Path, inbox: Inbox) -> None:
    inbox.refuse.add("gone@example.org")
    subs = [Subscription(reproducers="*", to=["gone@example.org"])]
    out = nt.send(sweep(tmp_path, [], [regression()]), config(inbox.port, subscriptions=subs))
    assert len(inbox.mails) == 2 and all(m.rcpt_tos == [LIST] for m in inbox.mails)
    assert len(out.errors) == 2 and all("gone@example.org refused: 550" in e
                                        for e in out.errors)
    assert [m.recipients for m in out.mails] == [(LIST,), (LIST,)]


def test_a_rejected_mail_does_not_stop_the_next(tmp_path: Path, inbox: Inbox) -> None:
    inbox.reject = "[bisector]"  # the summary, sent first
    out = nt.send(sweep(tmp_path, [], [regression()]), config(inbox.port))
    assert [m.subject for m in inbox.mails] == ["[REGRESSION] debian-6.1: net-gre"]
    [error] = out.errors
    assert error.startswith("mail '[bisector] nightly sweep 42") and "554 5.7.1" in error
    assert [m.subject for m in out.mails] == ["[REGRESSION] debian-6.1: net-gre"]


# ---------------------------------------------------------------- the webhook


@dataclass
class Hook:
    url: str
    bodies: list[dict[str, Any]]
    content_types: list[str]


@contextmanager
def webhook_server(status: int = 200, delay: float = 0.0) -> Iterator[Hook]:
    hook = Hook("", [], [])

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers["Content-Length"]))
            hook.bodies.append(json.loads(data))
            hook.content_types.append(self.headers.get("Content-Type", ""))
            time.sleep(delay)
            self.send_response(status)
            body = b"internal error\n" if status >= 400 else b"{}"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serve_handler(Handler) as url:
        hook.url = f"{url}/hooks/sweep"
        yield hook


def hook_config(url: str, timeout: float = 5) -> Notify:
    return Notify(webhook=WebhookTarget(url=url, timeout=timeout))


def test_the_webhook_receives_the_sweep_as_json(tmp_path: Path) -> None:
    report = sweep(tmp_path, [change(Category.FIXED, "ipvs")], [regression()])
    with webhook_server() as hook:
        out = nt.send(report, hook_config(hook.url))
    assert out.errors == [] and out.webhook_status == 200
    [got] = hook.bodies
    assert hook.content_types == ["application/json"]
    assert got["sweep"]["id"] == 42 and got["sweep"]["name"] == "nightly"
    assert got["sweep"]["status"] == "done"
    assert got["counts"]["new regression"] == 1 and got["counts"]["fixed"] == 1
    assert set(got["counts"]) == {c.value for c in Category}
    assert [c["reproducer"] for c in got["changes"]] == ["ipvs", "net-gre"]
    [reg] = got["regressions"]
    assert reg["culprit"] == SHA and reg["status"] == "found" and reg["named"] is True
    assert reg["regzbot"] == CULPRIT_LINE


def test_the_webhook_payload_never_names_a_doubtful_culprit_as_found(tmp_path: Path) -> None:
    payload = nt.webhook_payload(sweep(tmp_path, [], [
        regression(status=RegressionStatus.DOUBTFUL)]))
    [reg] = json.loads(json.dumps(payload))["regressions"]
    assert reg["named"] is False and reg["regzbot"] == RANGE_LINE


@pytest.mark.parametrize(("status", "delay", "timeout", "says"), [
    (500, 0.0, 5, "HTTP 500"),
    (302, 0.0, 5, "HTTP 302"),                    # a redirect is not a delivery
    (200, 1.0, 0.2, "no answer within 0.2s"),     # WebhookTarget.timeout is honoured
])
def test_a_failing_webhook_is_an_error_not_an_exception(tmp_path: Path, status: int,
                                                        delay: float, timeout: float,
                                                        says: str) -> None:
    with webhook_server(status, delay) as hook:
        out = nt.send(sweep(tmp_path, [change(Category.FIXED)]), hook_config(hook.url, timeout))
    [error] = out.errors
    assert says in error and hook.url in error and "\n" not in error
    assert out.webhook_status is None


def test_a_refused_webhook_connection_is_an_error_not_an_exception(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    out = nt.send(sweep(tmp_path, [change(Category.FIXED)]), hook_config(url))
    [error] = out.errors
    assert error.startswith(f"webhook {url}: ") and "\n" not in error
    assert out.webhook_status is None


def test_mail_and_webhook_failures_are_both_reported(tmp_path: Path) -> None:
    notify = config(free_port()).model_copy(
        update={"webhook": WebhookTarget(url=f"http://127.0.0.1:{free_port()}/hook")})
    out = nt.send(sweep(tmp_path, [change(Category.FIXED)]), notify)
    assert [e.split(" ", 1)[0] for e in out.errors] == ["mail:", "webhook"]
    assert not out.ok
