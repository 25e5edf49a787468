"""The campaign as a picture and as files: the weekly stacked bars as inline SVG (drawn here, no
JavaScript, nothing the CSP forbids: colours are presentation attributes, not styles), the unit
table as CSV and XLSX (openpyxl)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from fastapi.responses import Response
from markupsafe import Markup, escape
from openpyxl import Workbook

from certdesk.domain.campaign import STATUSES
from certdesk.services.campaign import FIGURES, Campaign
from certdesk.web.portal.display import csv_response

COLOURS = {
    "renewed": "#2e7d32",
    "upcoming": "#90a4ae",
    "in_window": "#f9a825",
    "expired": "#c62828",
}
LABELS = {
    "expiring": "Ending in the period",
    "renewed": "Renewed",
    "in_window": "In the window, not renewed",
    "expired": "Expired without renewal",
    "upcoming": "Window not open yet",
    "without_certificate": "No active certificate",
}
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 760, 260, 40, 40, 30
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def chart(c: Campaign, gettext: Callable[[str], str]) -> Markup:
    """Expiries per week, stacked by status, with a legend; every value escaped."""
    peak = max([b.total for b in c.weeks] + [1])
    plot_h = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT - 10) / max(len(c.weeks), 1)
    every = max(1, len(c.weeks) // 13)  # at most ~13 date labels
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' width="{WIDTH}" height="{HEIGHT}" class="campaign-chart">',
        f"<title>{escape(gettext('Certificates ending per week'))}</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 10}" y2="{TOP + plot_h}"'
        ' stroke="#555"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for i, bar in enumerate(c.weeks):
        x = LEFT + i * slot + slot * 0.15
        y: float = TOP + plot_h
        for status in STATUSES:
            n = bar.counts[status.value]
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            label = f"{bar.week:%Y-%m-%d} {gettext(LABELS[status.value])}: {n}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}"'
                f' fill="{COLOURS[status.value]}"><title>{escape(label)}</title></rect>'
            )
        if bar.total:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{y - 3:.1f}" text-anchor="middle"'
                f' font-size="11">{bar.total}</text>'
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{TOP + plot_h + 14}" text-anchor="middle"'
                f' font-size="10">{bar.week:%m-%d}</text>'
            )
    for i, status in enumerate(STATUSES):
        lx = LEFT + i * 180
        parts.append(
            f'<rect x="{lx}" y="{HEIGHT - 16}" width="10" height="10"'
            f' fill="{COLOURS[status.value]}"/>'
            f'<text x="{lx + 14}" y="{HEIGHT - 7}" font-size="11">'
            f"{escape(gettext(LABELS[status.value]))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def table_rows(c: Campaign) -> list[list[Any]]:
    """The unit table as on the page, totals last."""
    rows: list[list[Any]] = [[u.unit_code, u.unit_name, *u.figures] for u in c.units]
    rows.append(["", "Total", *c.totals.figures])
    return rows


HEADER = ["unit", "unit name", *FIGURES]
PEOPLE_HEADER = ["unit", "person id", "name", "serial", "not after", "status"]


def _filename(c: Campaign, ext: str) -> str:
    return f"campaign-{c.start:%Y%m%d}-{c.end:%Y%m%d}.{ext}"


def as_csv(c: Campaign) -> Response:
    return csv_response(_filename(c, "csv"), HEADER, table_rows(c))


def as_xlsx(c: Campaign) -> Response:
    """Two sheets: the unit table (totals last) and the people behind it."""
    book = Workbook()
    units = book.active
    assert units is not None
    units.title = "units"
    units.append(HEADER)
    for row in table_rows(c):
        units.append(row)
    people = book.create_sheet("people")
    people.append(PEOPLE_HEADER)
    for unit in c.units:
        for p in unit.people:
            when = p.not_after.strftime("%Y-%m-%d %H:%M") if p.not_after else ""
            people.append([p.unit_code, p.person_id, p.name, p.serial or "", when, p.status])
    out = io.BytesIO()
    book.save(out)
    return Response(
        out.getvalue(),
        media_type=XLSX,
        headers={
            "Content-Disposition": f'attachment; filename="{_filename(c, "xlsx")}"',
            "Cache-Control": "no-store",
        },
    )
