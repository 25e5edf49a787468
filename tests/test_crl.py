"""CRLs as relying parties read them: the publishing job (`republish_due`) at a moved test clock,
complete and delta CRLs checked with `openssl crl` and `openssl verify -use_deltas`, numbers
that only increase across a restart, pkilint's CRL linter. SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from certdesk.domain.clock import FixedClock
from certdesk.domain.crl_schedule import CRLKind
from certdesk.domain.errors import CertdeskError
from certdesk.services import registry
from certdesk.services.authorities import pki_dir
from certdesk.services.context import Context
from certdesk.services.crl_publish import PublishedCRL, crl_status, publish_crl, republish_due
from certdesk.services.enrolment import IssuedCertificate
from certdesk.services.issuance import Issuance
from certdesk.services.maintenance import run_maintenance
from certdesk.services.revocation import revoke
from certdesk.store.db import Database
from certdesk.web.app import create_app
from conftest import openssl, openssl_verify
from test_cli import Desk, flat
from test_issuance import enrol_csr, make_csr, write


def with_deltas(ctx: Context) -> Context:
    return dataclasses.replace(ctx, config=ctx.config.replace(crl={"delta": True}))


def enrol(issuance: Issuance, person_id: str) -> IssuedCertificate:
    if person_id != "p-001":
        registry.add_person(issuance.ctx, person_id, f"Person {person_id}", "FIN", "x@fin.example")
    return enrol_csr(issuance, person_id, make_csr(ec.generate_private_key(ec.SECP256R1())))


def by_kind(published: list[PublishedCRL]) -> list[tuple[str, CRLKind]]:
    return [(p.issuer, p.kind) for p in published]


def clock_of(ctx: Context) -> FixedClock:
    assert isinstance(ctx.clock, FixedClock)
    return ctx.clock


def test_republished_before_next_update_and_after_a_revocation(issuance: Issuance) -> None:
    ctx = issuance.ctx
    clock = clock_of(ctx)
    first = republish_due(ctx)
    assert by_kind(first) == [("root", CRLKind.COMPLETE), ("issuing", CRLKind.COMPLETE)]
    assert republish_due(ctx) == []  # nothing changed: nothing due
    issued = enrol(issuance, "p-001")
    with pytest.raises(x509.ExtensionNotFound):  # no delta CRLs, no Freshest CRL
        issued.certificate.extensions.get_extension_for_class(x509.FreshestCRL)
    clock.advance(dt.timedelta(seconds=1))
    revoke(ctx, issued.serial, "keyCompromise")
    clock.advance(dt.timedelta(seconds=19))
    assert [s.due.complete for s in crl_status(ctx)] == [None, "on_crl_since"]
    # the maintenance round (`certdesk maintenance`, the server's thread) runs the same job
    report = run_maintenance(ctx)
    ((issuer, number, kind),) = [re.split("[/ ]", c) for c in report.crls]
    assert (issuer, kind) == ("issuing", "complete") and int(number) > first[1].number
    crl = x509.load_der_x509_crl((pki_dir(ctx) / "issuing.crl").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(issued.certificate.serial_number)
    assert republish_due(ctx) == []
    # 24 h CRLs are republished 6 h before their nextUpdate, whether or not anything changed
    clock.advance(dt.timedelta(hours=18) - dt.timedelta(seconds=21))
    assert republish_due(ctx) == []
    clock.advance(dt.timedelta(seconds=1))
    (root,) = republish_due(ctx)
    assert root.issuer == "root" and root.number > first[0].number
    clock.advance(dt.timedelta(seconds=20))  # the issuing CA's was published 20 s after
    (issuing,) = republish_due(ctx)
    assert issuing.issuer == "issuing" and issuing.number > int(number)


def test_delta_crl_lists_what_went_on_the_crl_since_its_base(
    issuance: Issuance, tmp_path: Path
) -> None:
    ctx = with_deltas(issuance.ctx)
    deltas = Issuance(ctx)
    clock = clock_of(ctx)
    revoked_early = enrol(deltas, "p-001")
    revoke(ctx, revoked_early.serial, "affiliationChanged")
    clock.advance(dt.timedelta(minutes=10))  # past the base's late-commit overlap
    base = republish_due(ctx)
    assert by_kind(base) == [
        ("root", CRLKind.COMPLETE),
        ("root", CRLKind.DELTA),
        ("issuing", CRLKind.COMPLETE),
        ("issuing", CRLKind.DELTA),
    ]
    full, empty = base[2], base[3]
    assert (empty.number, empty.base, empty.entries) == (full.number + 1, full.number, 0)
    good, bad = enrol(deltas, "p-002"), enrol(deltas, "p-003")
    for issued in (good, bad):  # certificates issued while deltas are on say where they are
        freshest = issued.certificate.extensions.get_extension_for_class(x509.FreshestCRL)
        uri = freshest.value[0].full_name[0].value  # type: ignore[index]
        assert uri == f"{ctx.config.base_url}/pki/issuing-delta.crl"
    clock.advance(dt.timedelta(minutes=1))
    revoke(ctx, bad.serial, "keyCompromise")
    clock.advance(dt.timedelta(seconds=30))
    (delta,) = republish_due(ctx)  # within a minute of the revocation: a delta, not a base
    assert (delta.issuer, delta.kind, delta.base) == ("issuing", CRLKind.DELTA, full.number)
    assert delta.number > empty.number  # one sequence for complete and delta CRLs
    listed = delta.crl.get_revoked_certificate_by_serial_number(bad.certificate.serial_number)
    assert listed is not None
    assert listed.extensions.get_extension_for_class(x509.CRLReason).value.reason == (
        x509.ReasonFlags.key_compromise
    )
    assert (
        delta.crl.get_revoked_certificate_by_serial_number(revoked_early.certificate.serial_number)
        is None
    )  # in the base, not a change since
    assert delta.crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator).critical

    pki = pki_dir(ctx)
    text = openssl("crl", "-in", pki / "issuing-delta.crl.pem", "-noout", "-text")
    assert text.returncode == 0, text.stderr
    assert "X509v3 Delta CRL Indicator: critical" in text.stdout
    assert f"X509v3 CRL Number: \n                {delta.number}" in text.stdout
    assert "Key Compromise" in text.stdout
    text = openssl("crl", "-in", pki / "issuing.crl.pem", "-noout", "-text")
    assert f"X509v3 CRL Number: \n                {full.number}" in text.stdout
    assert "X509v3 Freshest CRL" in text.stdout and "issuing-delta.crl" in text.stdout
    assert "Delta CRL Indicator" not in text.stdout

    at = clock.now() + dt.timedelta(minutes=1)
    full_pem, delta_pem = pki / "issuing.crl.pem", pki / "issuing-delta.crl.pem"
    # -extended_crl: OpenSSL before the fix of openssl/openssl#31040 (3.0.19 here) otherwise
    # takes the newer delta for a complete CRL and misses what only the base lists
    deltas_on = ("-crl_check", "-use_deltas", "-extended_crl")
    crls = (*deltas_on, "-CRLfile", full_pem, "-CRLfile", delta_pem)
    refused = openssl_verify(pki, write(tmp_path / "bad.pem", bad.pem), at, *crls)
    assert refused.returncode != 0
    assert "certificate revoked" in refused.stdout + refused.stderr
    accepted = openssl_verify(pki, write(tmp_path / "good.pem", good.pem), at, *crls)
    assert accepted.returncode == 0 and accepted.stdout.strip().endswith("OK"), accepted.stderr
    # the base alone does not know yet: the delta is what tells the relying party
    base_only = openssl_verify(pki, tmp_path / "bad.pem", at, "-crl_check", "-CRLfile", full_pem)
    assert base_only.returncode == 0, base_only.stderr
    early = openssl_verify(pki, write(tmp_path / "early.pem", revoked_early.pem), at, *crls)
    assert early.returncode != 0 and "certificate revoked" in early.stdout + early.stderr
    # a delta alone is no complete CRL
    alone = openssl_verify(pki, tmp_path / "good.pem", at, *deltas_on, "-CRLfile", delta_pem)
    assert alone.returncode != 0 and "unable to get certificate CRL" in alone.stdout + alone.stderr

    # served under /pki/ like the complete CRL
    client = TestClient(create_app(ctx))
    answer = client.get("/pki/issuing-delta.crl")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/pkix-crl")
    assert answer.content == delta.der_path.read_bytes()

    # the delta interval: republished an hour after the last one without revocations
    clock.advance(dt.timedelta(minutes=60))
    assert by_kind(republish_due(ctx)) == [("root", CRLKind.DELTA), ("issuing", CRLKind.DELTA)]


def test_numbers_only_increase_across_a_restart(
    issuance: Issuance, db_url: str, clock: FixedClock
) -> None:
    ctx = with_deltas(issuance.ctx)
    numbers = [p.number for p in republish_due(ctx) if p.issuer == "issuing"]
    numbers.append(publish_crl(ctx, "issuing", CRLKind.DELTA).number)
    ctx.db.dispose()
    reopened = Database(db_url)  # another process: the counter is in the database
    try:
        again = Context(ctx.config, reopened, clock, actor="test")
        numbers.append(publish_crl(again).number)
        delta = publish_crl(again, "issuing", CRLKind.DELTA)
        numbers.append(delta.number)
    finally:
        reopened.dispose()
    assert numbers == sorted(set(numbers)) and len(numbers) == 5  # complete, delta, delta, …
    assert delta.base == numbers[3]
    text = openssl("crl", "-in", delta.pem_path, "-noout", "-text").stdout
    assert f"X509v3 Delta CRL Indicator: critical\n                {numbers[3]}" in text


def test_a_delta_needs_a_base(issuance: Issuance) -> None:
    with pytest.raises(CertdeskError) as err:
        publish_crl(with_deltas(issuance.ctx), "issuing", CRLKind.DELTA)
    assert err.value.code == "crl.no_base"


LINT_CRL = Path(sys.executable).parent / "lint_crl"  # pkilint, a dev dependency


def test_pkilint_finds_nothing_wrong_in_complete_and_delta_crls(issuance: Issuance) -> None:
    ctx = with_deltas(issuance.ctx)
    issued = enrol(Issuance(ctx), "p-001")
    revoke(ctx, issued.serial, "keyCompromise")
    for published in republish_due(ctx):
        kind = "ARL" if published.issuer == "root" else "CRL"  # the root's lists CA certificates
        result = subprocess.run(
            [LINT_CRL, "lint", "-t", kind, "-p", "PKIX", "-s", "WARNING", published.pem_path],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0 and result.stdout.strip() == "", (
            published.issuer,
            published.kind,
            result.stdout,
            result.stderr,
        )


def test_crl_status_and_maintenance_on_the_command_line(tmp_path: Path) -> None:
    desk = Desk(tmp_path)
    desk.ok("ca", "init")
    before = desk.json("crl", "status", CERTDESK_CRL_DELTA="true")
    assert isinstance(before, list)
    assert [(s["issuer"], s["due"]) for s in before] == [
        ("root", {"complete": "none_yet", "delta": "new_base"}),
        ("issuing", {"complete": "none_yet", "delta": "new_base"}),
    ]
    done = desk.ok("maintenance", CERTDESK_CRL_DELTA="true")
    published = re.search(
        r"CRLs published: root/(\d+) complete, root/(\d+) delta, "
        r"issuing/(\d+) complete, issuing/(\d+) delta",
        flat(done.stdout),
    )
    assert published, done.stdout
    root_full, root_delta, full, last = map(int, published.groups())
    assert root_delta > root_full and last > full  # one number sequence per CA
    after = desk.ok("crl", "status", CERTDESK_CRL_DELTA="true")
    text = flat(after.stdout)
    assert f"#{last} (base #{full})" in text and "no (from " in text, text
    delta = desk.ok("crl", "publish", "--delta", CERTDESK_CRL_DELTA="true")
    again = re.search(r"CRL issuing #(\d+) \(delta\): 0 entries", flat(delta.stdout))
    assert again and int(again.group(1)) > last, delta.stdout
    assert (tmp_path / "var" / "pki" / "issuing-delta.crl").exists()


def test_a_ca_key_out_of_reach_leaves_its_crl_due_and_maintenance_goes_on(
    issuance: Issuance, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = issuance.ctx
    locked = dataclasses.replace(ctx, config=ctx.config.replace(ca={"passphrase": "wrong"}))
    report = run_maintenance(locked)
    assert report.crls == []
    assert "ca.wrong_passphrase" in caplog.text
    assert [s.due.complete for s in crl_status(ctx)] == ["none_yet", "none_yet"]
    assert len(republish_due(ctx)) == 2


def test_revocations_within_one_second_each_republish_once(issuance: Issuance) -> None:
    """thisUpdate is to the second; the record keeps the microseconds, so neither a revocation
    later in the same second is missed nor one already listed published twice."""
    ctx, clock = issuance.ctx, clock_of(issuance.ctx)
    republish_due(ctx)
    first, second = enrol(issuance, "p-001"), enrol(issuance, "p-002")
    for issued in (first, second):
        clock.advance(dt.timedelta(milliseconds=200))
        revoke(ctx, issued.serial, "keyCompromise")
        clock.advance(dt.timedelta(milliseconds=100))
        (published,) = republish_due(ctx)
        assert published.crl.get_revoked_certificate_by_serial_number(
            issued.certificate.serial_number
        )
        assert republish_due(ctx) == []
    assert published.this_update == dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)
