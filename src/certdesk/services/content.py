"""Announcements and downloadable forms the office publishes on the portal (rule 13)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from certdesk.domain.errors import CertdeskError
from certdesk.services.context import Context
from certdesk.store import content as content_store
from certdesk.store.db import AnyRow

MAX_FORM_BYTES = 2 * 1024 * 1024
FORM_TYPES = {
    ".pdf": "application/pdf",
    ".txt": "text/plain; charset=utf-8",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
_ZIP = b"PK\x03\x04"
_MAGIC = {".pdf": b"%PDF-", ".odt": _ZIP, ".docx": _ZIP}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


@dataclass(frozen=True)
class Announcement:
    id: int
    title: str
    body: str
    author: str
    published_at: dt.datetime


@dataclass(frozen=True)
class Form:
    name: str
    title: str
    media_type: str
    size: int
    uploaded_at: dt.datetime


def _announcement(row: AnyRow) -> Announcement:
    return Announcement(row.id, row.title, row.body, row.author, row.published_at)


def _form(row: AnyRow) -> Form:
    return Form(row.name, row.title, row.media_type, len(row.data), row.uploaded_at)


def publish_announcement(ctx: Context, title: str, body: str) -> int:
    if not title.strip() or not body.strip():
        raise CertdeskError("input.invalid", detail="title and text are required")
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        new_id = content_store.insert_announcement(
            conn, title.strip()[:255], body.strip(), ctx.actor, now
        )
        ctx.record(
            conn,
            now,
            "announcement.publish",
            "announcement",
            str(new_id),
            after={"title": title.strip()[:255]},
        )
    return new_id


def list_announcements(ctx: Context, limit: int = 20) -> list[Announcement]:
    with ctx.db.read() as conn:
        return [_announcement(row) for row in content_store.recent_announcements(conn, limit)]


class RecentAnnouncements:
    """The newest announcements, kept by the process while their number in the database stays
    the same (they are only ever added). The login query reads that number at every request
    (`Principal.announcements`), so the home page costs no query of its own and a publication by
    any process shows at the next page. One per process."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._kept: dict[int, tuple[int, list[Announcement]]] = {}  # limit → (count, newest)

    def kept(self, count: int, limit: int) -> list[Announcement] | None:
        """The newest `limit` if read since the `count`-th was published, else None."""
        found = self._kept.get(limit)
        return found[1] if found is not None and found[0] == count else None

    def read(self, count: int, limit: int) -> list[Announcement]:
        """Read them (blocking: off the event loop) and keep them for `count`."""
        newest = list_announcements(self.ctx, limit)
        self._kept[limit] = (count, newest)  # read after `count` was: never older than it
        return newest


def check_form(name: str, data: bytes) -> str:
    """The media type a form is served with, or a refusal: known document types only, and the
    content must look like what the name says (a renamed program is not a PDF)."""
    allowed = ", ".join(sorted(FORM_TYPES))
    if not _NAME.match(name):
        raise CertdeskError("input.invalid", detail=f"file name {name!r} is not allowed")
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if suffix not in FORM_TYPES:
        raise CertdeskError(
            "form.wrong_type", name=name, detail="unknown file type", allowed=allowed
        )
    if len(data) > MAX_FORM_BYTES:
        raise CertdeskError("form.too_large", limit=MAX_FORM_BYTES // 1024)
    if not data:
        raise CertdeskError("input.invalid", detail="the file is empty")
    if not data.startswith(_MAGIC.get(suffix, b"")):
        raise CertdeskError(
            "form.wrong_type", name=name, detail=f"the content is not {suffix}", allowed=allowed
        )
    if suffix == ".txt":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise CertdeskError(
                "form.wrong_type", name=name, detail="not UTF-8 text", allowed=allowed
            ) from None
    return FORM_TYPES[suffix]


def get_announcement(ctx: Context, announcement_id: int) -> Announcement:
    with ctx.db.read() as conn:
        return _announcement(content_store.get_announcement(conn, announcement_id))


def upload_form(ctx: Context, name: str, title: str, data: bytes) -> Form:
    """Store a form for download; only documents of known types and at most 2 MB."""
    media_type = check_form(name, data)
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        content_store.replace_form(
            conn, name, title.strip()[:255] or name, media_type, data, ctx.actor, now
        )
        ctx.record(
            conn,
            now,
            "form.upload",
            "form",
            name,
            after={"title": title, "bytes": len(data)},
        )
    return Form(name, title, media_type, len(data), now)


def list_forms(ctx: Context) -> list[Form]:
    with ctx.db.read() as conn:
        return [_form(row) for row in content_store.all_forms(conn)]


def get_form(ctx: Context, name: str) -> tuple[Form, bytes]:
    if not _NAME.match(name):  # no such name can be stored (and PostgreSQL refuses NUL)
        raise CertdeskError("form.not_found", name=name)
    with ctx.db.read() as conn:
        row = content_store.get_form(conn, name)
    if row is None:
        raise CertdeskError("form.not_found", name=name)
    return _form(row), row.data
