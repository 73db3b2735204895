"""Email over SMTP (smtplib in a thread): STARTTLS or implicit TLS, authentication,
a plain-text and an HTML part, and one thread per incident: a group's first message
sets the Message-ID that every later one names in In-Reply-To and References.
"""

from __future__ import annotations

import asyncio
import html
import smtplib
import ssl
import uuid
from email.message import EmailMessage
from email.utils import formatdate

from fastmango.agent.alerts.notify import Result, alert_line, clip, fmt_value, title, when
from fastmango.agent.alerts.routing import Notification
from fastmango.redact import redact_secrets

SUBJECT = 200  # RFC 5322 lines stay under 998; mail clients show far less
BODY = 100_000
ALERTS = 100


def _plain(note: Notification, link: str) -> str:
    lines = [title(note), ""]
    for a in note.alerts[:ALERTS]:
        lines += [
            f"[{a.status.upper()}] {alert_line(a)}",
            f"  severity: {a.severity}",
            f"  value / threshold: {fmt_value(a.value)} / {fmt_value(a.threshold)}",
            f"  since: {when(a.starts_at)}"
            + (f", resolved {when(a.ends_at)}" if a.status == "resolved" else ""),
        ]
        if a.summary:
            lines.append(f"  {a.summary}")
        if a.description:
            lines.append(f"  {a.description}")
        lines.append("")
    if len(note.alerts) > ALERTS:
        lines.append(f"…and {len(note.alerts) - ALERTS} more alerts")
    if link:
        lines.append(f"Dashboard: {link}")
    return clip("\n".join(lines), BODY)


def _html(note: Notification, link: str) -> str:
    e = html.escape
    rows = []
    for a in note.alerts[:ALERTS]:
        color = (
            "#2e7d32"
            if a.status == "resolved"
            else ("#b71c1c" if a.severity == "critical" else "#e65100")
        )
        rows.append(
            f'<tr><td style="color:{color};font-weight:bold">{e(a.status.upper())}</td>'
            f"<td><b>{e(clip(alert_line(a), 2000))}</b><br>{e(clip(a.summary, 5000))}"
            f"<br><small>{e(clip(a.description, 5000))}</small></td>"
            f"<td>{e(a.severity)}</td>"
            f"<td>{e(fmt_value(a.value))} / {e(fmt_value(a.threshold))}</td>"
            f"<td>{e(when(a.starts_at))}</td></tr>"
        )
    more = (
        f"<p>…and {len(note.alerts) - ALERTS} more alerts</p>" if len(note.alerts) > ALERTS else ""
    )
    button = f'<p><a href="{e(link)}">Open the dashboard</a></p>' if link else ""
    return clip(
        f"<!doctype html><html><body><h2>{e(title(note))}</h2>"
        '<table cellpadding="6" border="1" style="border-collapse:collapse">'
        "<tr><th>Status</th><th>Alert</th><th>Severity</th><th>Value / threshold</th>"
        f"<th>Since</th></tr>{''.join(rows)}</table>{more}{button}</body></html>",
        BODY,
        marker="",
    )


def message(
    note: Notification, link: str, sender: str, to: list[str], domain: str = "fastmango.local"
) -> EmailMessage:
    """The email of one notification, threaded on the group's first Message-ID."""
    msg = EmailMessage()
    msg["Subject"] = clip(" ".join(title(note).split()), SUBJECT)  # no line breaks of any kind
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<{uuid.uuid4().hex[:20]}.fastmango@{domain}>"  # short: never folded
    root = note.ref.get("email_thread")
    if root:
        msg["In-Reply-To"] = root
        msg["References"] = root
    msg["X-Fastmango-Group"] = clip(note.group, 900)
    msg.set_content(_plain(note, link))
    msg.add_alternative(_html(note, link), subtype="html")
    return msg


class EmailNotifier:
    name = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int = 587,
        starttls: bool = True,
        require_tls: bool = True,
        username: str | None = None,
        password: str | None = None,
        sender: str,
        to: list[str],
        timeout: float = 10.0,
        retries: int = 3,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.starttls, self.require_tls = starttls, require_tls
        self.username, self.password = username, password
        self.sender, self.to = sender, to
        self.timeout, self.retries = timeout, retries
        self.tls = tls_context or ssl.create_default_context()

    async def send(self, note: Notification, link: str) -> Result:
        msg = message(note, link, self.sender, self.to)
        result = await self.deliver(msg)
        if result.ok:
            thread = note.ref.get("email_thread") or str(msg["Message-ID"])
            return Result(True, {"email_thread": thread}, attempts=result.attempts)
        return result

    async def deliver(self, msg: EmailMessage) -> Result:
        error = ""
        for attempt in range(1, self.retries + 2):
            try:
                await asyncio.to_thread(self._smtp, msg)
                return Result(True, attempts=attempt)
            except smtplib.SMTPResponseException as exc:
                raw = exc.smtp_error
                said = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
                error = f"SMTP {exc.smtp_code}: {said[:200]}"
                if 500 <= exc.smtp_code < 600:  # permanent: auth refused, recipient unknown
                    return Result(False, error=redact_secrets(error), attempts=attempt)
            except (smtplib.SMTPException, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            if attempt <= self.retries:
                await asyncio.sleep(0.5 * 2 ** (attempt - 1))
        return Result(False, error=redact_secrets(error), attempts=self.retries + 1)

    def _smtp(self, msg: EmailMessage) -> None:
        smtp: smtplib.SMTP
        if self.port == 465:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self.tls)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            smtp.ehlo()
            tls = self.port == 465
            if not tls and self.starttls and smtp.has_extn("starttls"):
                smtp.starttls(context=self.tls)
                smtp.ehlo()
                tls = True
            if self.require_tls and not tls:
                raise smtplib.SMTPNotSupportedError(
                    f"{self.host}:{self.port} offers no STARTTLS and email.require_tls is on"
                )
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(msg)
