"""Reminder and digest e-mails: rendered from Jinja2 templates in the recipient's language
(plain text and HTML; the text template's first line is the subject) and sent with the standard
library's smtplib.

Each outbox row gets a stable Message-ID, so if a job dies after the server took a mail and
before the row was marked sent, the copy sent again is recognisably the same message.
"""

from __future__ import annotations

import contextlib
import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from types import TracebackType
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from certdesk.config import Config

TEMPLATES = Path(__file__).parent / "templates" / "mail"
LOCALES = ("zh-CN", "en")
_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


def message_id(outbox_id: int, topic: str, sender: str) -> str:
    """The same for every attempt at one outbox row."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "certdesk.invalid"
    digest = hashlib.sha256(topic.encode()).hexdigest()[:16]
    return f"<certdesk.{outbox_id}.{digest}@{domain}>"


def render(kind: str, locale: str, payload: dict[str, Any], config: Config) -> tuple[str, str, str]:
    """(subject, text, html) of a `reminder` or `digest` in `locale` (zh-CN when unknown)."""
    locale = locale if locale in LOCALES else "zh-CN"
    values = {"m": payload, "portal": config.base_url + "/", "support": config.support}
    subject, _, text = _env.get_template(f"{kind}.{locale}.txt").render(values).partition("\n")
    html = _env.get_template(f"{kind}.{locale}.html").render(values)
    return subject.strip(), text.lstrip("\n"), html


def build(
    config: Config,
    outbox_id: int,
    topic: str,
    kind: str,
    locale: str,
    to: str,
    payload: dict[str, Any],
) -> EmailMessage:
    subject, text, html = render(kind, locale, payload, config)
    msg = EmailMessage()
    msg["From"] = config.smtp.sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id(outbox_id, topic, config.smtp.sender)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    msg["Content-Language"] = locale  # after: making it multipart moves Content-* headers down
    return msg


class Mailer:
    """One SMTP connection for a delivery round, opened at the first mail."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> Mailer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):  # gone either way
                self._smtp.quit()
            self._smtp = None

    def _connect(self) -> smtplib.SMTP:
        s = self.config.smtp
        tls = ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.security == "tls":
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_seconds, context=tls)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
            if s.security == "starttls":
                smtp.starttls(context=tls)
        if s.username:
            password = Path(s.password_file).read_text(encoding="utf-8").strip()
            smtp.login(s.username, password)
        return smtp

    def send(self, msg: EmailMessage) -> None:
        """Send one mail; any error closes the connection (the next mail opens a new one)."""
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            self._smtp.send_message(msg)
        except BaseException:
            self.close()
            raise
