"""The renewal campaign against a hand-built data set: the service, and the console's CSV/XLSX
and the API's JSON compared with it."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import openpyxl
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from certdesk.domain.clock import FixedClock
from certdesk.services import registry
from certdesk.services.campaign import FIGURES, Campaign, campaign
from certdesk.services.context import Context
from certdesk.services.issuance import Issuance
from certdesk.services.reminders import delivery_log
from certdesk.services.renewal import Renewals
from officers import OTHER_PERSON, open_office
from test_remind import issue
from test_renewal import Holder

NOW = dt.datetime(2027, 2, 25, 9, 30, tzinfo=dt.UTC)
FEB_1 = dt.date(2027, 2, 1)
APR_30 = dt.date(2027, 4, 30)
STAFF_UNIT = "DEMO"


def at(ctx: Context, moment: dt.datetime) -> None:
    assert isinstance(ctx.clock, FixedClock)
    ctx.clock.current = moment


def build(issuance: Issuance) -> Context:
    """FIN: p-001 ends 03-01 and p-002 03-11 (both in the window on 02-25), p-004 04-15
    (upcoming), p-003 has no certificate. TAX: t-001 ends 03-06 and renewed, t-002 ended 02-09."""
    ctx = issuance.ctx
    registry.add_person(ctx, "p-002", "Li Si", "FIN", "li@fin.example")
    registry.add_person(ctx, "p-003", "Wang Wu", "FIN", "wang@fin.example")
    registry.add_person(ctx, "p-004", "Zhao Liu", "FIN", "zhao@fin.example")
    registry.add_unit(ctx, "TAX", "Tax Bureau", "Qian Contact", "it@tax.example", "0771-2")
    registry.add_person(ctx, "t-001", "Sun Qi", "TAX", "sun@tax.example")
    registry.add_person(ctx, "t-002", "Zhou Ba", "TAX", "zhou@tax.example")
    start = ctx.clock.now()  # 2026-03-01 09:30
    plan = [
        ("p-001", 0),
        ("p-002", 10),
        ("p-004", 45),
        ("t-001", 5),
        ("t-002", -20),
    ]
    keys = {}
    for n, (person, offset) in enumerate(plan):
        at(ctx, start + dt.timedelta(days=offset))
        keys[person] = issue(issuance, person, f"TOK-{n}")
    at(ctx, dt.datetime(2027, 2, 20, 9, 30, tzinfo=dt.UTC))
    serial, key = keys["t-001"]
    Holder(Renewals(ctx, issuance), key, serial).renew(ec.generate_private_key(ec.SECP256R1()))
    at(ctx, NOW)
    return ctx


EXPECTED = {  # unit: expiring, renewed, in window, expired, upcoming, without certificate
    "TAX": (2, 1, 0, 1, 0, 0),
    "FIN": (3, 0, 2, 0, 1, 1),
}


def counts(c: Campaign) -> dict[str, tuple[int, ...]]:
    return {
        u.unit_code: (
            u.expiring,
            u.renewed,
            u.in_window,
            u.expired,
            u.upcoming,
            u.without_certificate,
        )
        for u in c.units
    }


def test_campaign_numbers(issuance: Issuance) -> None:
    ctx = build(issuance)
    c = campaign(ctx, FEB_1, APR_30)
    assert counts(c) == EXPECTED
    assert [u.unit_code for u in c.units] == ["TAX", "FIN"]  # expired first: the bigger risk
    t = c.totals
    assert (t.expiring, t.renewed, t.in_window, t.expired, t.upcoming, t.without_certificate) == (
        5,
        1,
        2,
        1,
        1,
        1,
    )
    fin = {p.person_id: p.status for p in c.units[1].people}
    assert fin == {
        "p-001": "in_window",
        "p-002": "in_window",
        "p-004": "upcoming",
        "p-003": "without_certificate",
    }
    bars = {b.week.isoformat(): {k: v for k, v in b.counts.items() if v} for b in c.weeks}
    assert c.weeks[0].week == FEB_1 and len(c.weeks) == 13
    assert {w: b for w, b in bars.items() if b} == {
        "2027-02-08": {"expired": 1},
        "2027-03-01": {"in_window": 1, "renewed": 1},
        "2027-03-08": {"in_window": 1},
        "2027-04-12": {"upcoming": 1},
    }
    only_tax = campaign(ctx, FEB_1, APR_30, "TAX")
    assert counts(only_tax) == {"TAX": EXPECTED["TAX"]}
    # the period bounds: a February-only period has t-002 and nothing of March
    feb = campaign(ctx, FEB_1, dt.date(2027, 2, 28))
    assert counts(feb) == {"TAX": (1, 0, 0, 1, 0, 0), "FIN": (0, 0, 0, 0, 0, 1)}


def page_table(html: str) -> list[list[str]]:
    """The unit table's rows on the page: unit code, then the numbers (totals last)."""
    table = html.split('id="campaign-units"')[1].split("</table>")[0]
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]:
        code = re.search(r'class="mono">([^<]+)<', tr)
        nums = re.findall(r'class="num">(\d+)<', tr)
        rows.append([code.group(1) if code else "", *nums])
    return rows


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_page_exports_and_api_agree(ctx: Context) -> None:
    office = open_office(ctx)
    at(ctx, dt.datetime(2027, 2, 20, 9, 30, tzinfo=dt.UTC))
    query = "start=2027-02-01&end=2027-03-31"
    expected = campaign(ctx, FEB_1, dt.date(2027, 3, 31))
    assert expected.totals.expiring > 0 and expected.totals.in_window > 0
    wanted = [[u.unit_code, *map(str, u.figures)] for u in expected.units]
    wanted.append(["", *map(str, expected.totals.figures)])

    for lang in ("en", "zh-CN"):
        answer = office.page("ra", lang).get(f"/console/campaign?{query}")
        assert answer.status_code == 200
        assert page_table(answer.text) == wanted
        assert "<svg" in answer.text and "<script" not in answer.text
        title = answer.text.split("<title>", 1)[1].split("</title>", 1)[0]
        assert "<" not in title, title  # the title is text, not the page's tables
        assert ("Renewal campaign" if lang == "en" else "证书更新工作") in title, title
    assert "可更新但未更新" in office.page("ra", "zh-CN").get(f"/console/campaign?{query}").text

    csv_answer = office.page("ra").get(f"/console/campaign/export?{query}&format=csv")
    assert csv_answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(csv_answer.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["unit", "unit name", "expiring"]
    assert [[r[0], *r[2:]] for r in rows[1:]] == wanted

    xlsx = office.page("ra").get(f"/console/campaign/export?{query}&format=xlsx")
    book = openpyxl.load_workbook(io.BytesIO(xlsx.content))
    cells = [list(r) for r in book["units"].iter_rows(min_row=2, values_only=True)]
    assert [[r[0] or "", *map(str, r[2:])] for r in cells] == wanted
    people = list(book["people"].iter_rows(min_row=2, values_only=True))
    assert len(people) == sum(len(u.people) for u in expected.units)

    api = office.api("ra").get(f"/api/v1/campaign?{query}").json()
    assert [[u["unit_code"], *map(str, (u[f] for f in FIGURES))] for u in api["units"]] == wanted[
        :-1
    ]
    # the unit officer sees their own unit only
    mine = office.page("unit_officer").get(f"/console/unit/campaign?{query}")
    assert mine.status_code == 200
    assert [r[0] for r in page_table(mine.text)] == [STAFF_UNIT, ""]
    assert OTHER_PERSON[1] not in mine.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_remind_now_queues_once_a_day_and_is_audited(ctx: Context) -> None:
    office = open_office(ctx)
    at(ctx, dt.datetime(2027, 2, 20, 9, 30, tzinfo=dt.UTC))  # the staff's window is open
    client = office.page("ra")
    seq = office.last_seq()
    form = {"unit": "DEMO", "csrf_token": office.csrf("ra")}
    answer = client.post("/console/campaign/remind", data=form, follow_redirects=False)
    assert answer.status_code == 303
    log = delivery_log(ctx)
    assert log and {d.state for d in log} == {"pending"}
    assert all(d.topic.startswith("manual:") and d.topic.endswith(":2027-02-20") for d in log)
    assert ("person:demo-ra", "remind.now", "DEMO") in office.actions_since(seq)
    client.post("/console/campaign/remind", data=form, follow_redirects=False)
    assert len(delivery_log(ctx)) == len(log)  # the same day again: nothing new
    page = client.get("/console/campaign?unit=DEMO&done=reminded")
    assert "Reminders queued" in page.text
