"""How the portal shows what is stored in machine form: subjects with OpenSSL's short names
(`serialNumber=…`, not `2.5.4.5=…`), an audit record's change as a list of fields, CSV answers.
One place, used as Jinja filters by `render.py` and by the export routes."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from fastapi.responses import Response

# Names cryptography's rfc4514_string leaves as dotted numbers, by OpenSSL's short names.
SHORT_NAMES = {
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.TITLE: "title",
    NameOID.GIVEN_NAME: "GN",
    NameOID.SURNAME: "SN",
    NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
}


# RFC 5280 CRLReason names → the English label (a msgid: zh-CN in console.po).
REASON_LABELS = {
    "unspecified": "Unspecified",
    "keyCompromise": "Key compromise",
    "cACompromise": "CA compromise",
    "affiliationChanged": "Affiliation changed",
    "superseded": "Superseded",
    "cessationOfOperation": "Cessation of operation",
    "certificateHold": "Certificate hold",
    "removeFromCRL": "Remove from CRL",
    "privilegeWithdrawn": "Privilege withdrawn",
    "aACompromise": "AA compromise",
}


def reason_label(reason: str | None) -> str:
    """The label of a stored reason (an unknown one as it is)."""
    return REASON_LABELS.get(reason or "", reason or "")


def short_dn(subject: str | None) -> str:
    """A stored RFC 4514 subject with short names; unreadable text is shown as it is."""
    if not subject:
        return ""
    try:
        return x509.Name.from_rfc4514_string(subject).rfc4514_string(SHORT_NAMES)
    except ValueError:
        return subject


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value) or "—"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _snapshot(value: Any) -> Any:
    """An audit snapshot as stored (canonical JSON text) → its value."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def change_rows(before: Any, after: Any) -> list[tuple[str, str, str]]:
    """(field, old, new) of an audit record's snapshots (JSON text or values), fields in
    order; a field that did not change in a record with both snapshots is left out."""
    before, after = _snapshot(before), _snapshot(after)
    old = before if isinstance(before, dict) else ({} if before is None else {"": before})
    new = after if isinstance(after, dict) else ({} if after is None else {"": after})
    rows = []
    for field in sorted(set(old) | set(new)):
        was, now = old.get(field), new.get(field)
        if field in old and field in new and was == now:
            continue
        rows.append((field, _text(was) if field in old else "", _text(now) if field in new else ""))
    return rows


def _cell(value: Any) -> str:
    """A cell as text; one that a spreadsheet would run as a formula is quoted."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(("=", "+", "-", "@", "\t", "\r")) else text


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    """A CSV download: UTF-8 with a BOM (so Excel reads Chinese names), CRLF lines."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return Response(
        ("\ufeff" + out.getvalue()).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
