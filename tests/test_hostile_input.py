"""Hostile and odd input (issue 13): every refusal is a 4xx problem+json with a catalog code in
both languages — unknown routes, wrong methods, bodies that cannot be parsed, and certificate
requests the crypto library cannot load (SM2 and other curves, a bad version)."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certdesk.domain.errors import CertdeskError
from certdesk.domain.states import CertState
from certdesk.services.certificates import get_certificate, list_certificates
from certdesk.services.context import Context
from certdesk.services.enrolment_codes import create_code
from certdesk.services.renewal import Renewals
from certdesk.web.app import create_app
from conftest import openssl
from officers import open_office
from test_renewal import DAY, Holder, clock_of, setup  # noqa: F401 (setup is a fixture)


def assert_problem(answer: Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text[:300]
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["code"] == code
    assert body["messages"]["en"] and body["messages"]["zh-CN"]
    assert body["messages"]["en"] != body["messages"]["zh-CN"]


@pytest.fixture
def client(ca_ctx: Context) -> TestClient:
    return TestClient(create_app(ca_ctx), raise_server_exceptions=False)


def test_unknown_routes_and_methods_are_problems(client: TestClient) -> None:
    assert_problem(client.get("/no/such/page"), 404, "route.not_found")
    assert_problem(client.get("/static/nothing.css"), 404, "route.not_found")
    wrong = client.delete("/healthz")
    assert_problem(wrong, 405, "request.method_not_allowed")
    assert wrong.headers["allow"] == "GET"


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,  # nesting deeper than any parser's recursion
        b'{"code": "\xff\xfe"}',  # not UTF-8
        b"1" * 100_000,  # a number too long to convert
        b'{"code": 1e999999}',
    ],
    ids=["deep", "utf8", "long-number", "huge-exponent"],
)
def test_unparsable_json_bodies_are_problems(client: TestClient, body: bytes) -> None:
    answer = client.post(
        "/api/v1/units", content=body, headers={"content-type": "application/json"}
    )
    assert 400 <= answer.status_code < 500, answer.text[:300]
    assert_problem(answer, answer.status_code, answer.json()["code"])
    assert answer.json()["code"] in {"input.invalid", "login.no_certificate"}


def odd_csrs(tmp: Path) -> dict[str, bytes]:
    """CSRs made by openssl that cryptography cannot load, and one with a bad version."""
    made: dict[str, bytes] = {}
    for name, keygen in {
        "sm2": ["genpkey", "-algorithm", "SM2"],
        "secp112r1": ["ecparam", "-name", "secp112r1", "-genkey"],
        "p256": ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    }.items():
        key, csr = tmp / f"{name}.key", tmp / f"{name}.der"
        assert openssl(*keygen, "-out", key).returncode == 0
        made_csr = openssl(
            "req", "-new", "-key", key, "-subj", "/CN=x", "-outform", "DER", "-out", csr
        )
        assert made_csr.returncode == 0, made_csr.stderr
        made[name] = csr.read_bytes()
    good = made.pop("p256")
    version = good.index(b"\x02\x01\x00")  # CertificationRequestInfo.version, v1 (0)
    made["version-6"] = good[: version + 2] + b"\x05" + good[version + 3 :]
    return made


EXPECTED = {
    "sm2": "input.unsupported_key",
    "secp112r1": "input.unsupported_key",
    "version-6": "input.malformed_csr",
}


def test_est_refuses_unloadable_csrs_with_a_problem(client: TestClient, tmp_path: Path) -> None:
    for name, der in odd_csrs(tmp_path).items():
        answer = client.post(
            "/.well-known/est/simpleenroll",
            content=base64.encodebytes(der),
            headers={"content-type": "application/pkcs10"},
            auth=("p-001", "not-a-code"),
        )
        assert_problem(answer, 400, EXPECTED[name])


def test_est_refuses_a_csr_asking_for_another_identity(
    client: TestClient, ca_ctx: Context, tmp_path: Path
) -> None:
    code, _ = create_code(ca_ctx, "p-001")

    def csr(subject: str) -> bytes:
        key, der = tmp_path / "k.pem", tmp_path / "r.der"
        made = openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-subj", subject, "-outform", "DER", "-out", der,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        return der.read_bytes()

    def enrol(body: bytes) -> Response:
        return client.post(
            "/.well-known/est/simpleenroll",
            content=base64.encodebytes(body),
            headers={"content-type": "application/pkcs10"},
            auth=("p-001", code),
        )

    answer = enrol(csr("/CN=Li Si"))
    assert_problem(answer, 403, "enrolment.identity_change")
    assert "Li Si" in answer.json()["detail"] and "Zhang San" in answer.json()["detail"]
    assert_problem(enrol(b"0" * 20_000), 413, "input.csr_too_large")
    assert list_certificates(ca_ctx, "p-001") == []
    assert enrol(csr("/CN=Zhang San")).status_code == 200  # the code was not spent by refusals


def test_renewal_refuses_unloadable_csrs(
    setup: tuple[Renewals, Holder],  # noqa: F811
    tmp_path: Path,
) -> None:
    renewals, holder = setup
    clock_of(renewals).advance(340 * DAY)
    for name, der in odd_csrs(tmp_path).items():
        csr = base64.urlsafe_b64encode(der).rstrip(b"=").decode()
        with pytest.raises(CertdeskError) as refused:
            asyncio.run(renewals.renew(holder.signed("renew", {"csr": csr})))
        assert refused.value.code == EXPECTED[name]
        assert refused.value.status == 400
    assert get_certificate(renewals.ctx, holder.serial).state is CertState.ACTIVE


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("name", "Zhang\r\nSan", "input.bad_characters"),
        ("name", "\x1b]0;owned\x07", "input.bad_characters"),
        ("name", "abc\u202edcba", "input.bad_characters"),  # right-to-left override
        ("name", "Zhang\u200bSan", "input.bad_characters"),  # zero-width space
        ("name", "张" * 65, "input.too_long"),  # ub-common-name is 64
        ("person_id", "../../etc/passwd", "input.bad_code"),
        ("person_id", "p_1", "input.bad_code"),  # serialNumber is a PrintableString
        ("email", "a b@x.example", "input.invalid"),
        ("email", "张@x.example", "input.invalid"),
    ],
)
def test_identity_fields_are_checked_by_the_api(
    ctx: Context, field: str, value: str, code: str
) -> None:
    office = open_office(ctx)
    ra = office.api("ra")
    seq = office.last_seq()
    person = {"person_id": "api-9", "name": "Zhao Liu", "unit_code": "DEMO", "email": "z@x.example"}
    refused = ra.post("/api/v1/people", json={**person, field: value})
    assert_problem(refused, 400, code)
    assert office.last_seq() == seq  # nothing stored, nothing audited
    if field != "person_id":
        assert_problem(ra.patch("/api/v1/people/demo-0001", json={field: value}), 400, code)


def test_chinese_names_and_units_stay_valid(ctx: Context) -> None:
    ra = open_office(ctx).api("ra")
    made = ra.post("/api/v1/units", json={"code": "GXCZ-YS", "name": "广西财政厅预算处"})
    assert made.status_code == 201, made.text
    traversal = ra.post("/api/v1/units", json={"code": "../x", "name": "单位"})
    assert_problem(traversal, 400, "input.bad_code")
    person = {
        "person_id": "gx-001",
        "name": "张三",
        "unit_code": "GXCZ-YS",
        "email": "z@gx.example",
    }
    added = ra.post("/api/v1/people", json=person)
    assert added.status_code == 201 and added.json()["name"] == "张三"
    decomposed = ra.patch("/api/v1/people/gx-001", json={"name": "Zoe\u0301"})  # e + combining
    assert decomposed.json()["name"] == "Zo\u00e9"  # stored in NFC


def test_mutated_csrs_never_crash_and_store_nothing(
    client: TestClient, ca_ctx: Context, tmp_path: Path
) -> None:
    """Byte flips and cuts of a good CSR (a fixed seed: the same cases every run), sent to EST
    with a valid code: every answer is < 500, every refusal problem+json, nothing stored."""
    key, der = tmp_path / "k.pem", tmp_path / "r.der"
    made = openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-subj", "/CN=Zhang San", "-outform", "DER", "-out", der,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    good = der.read_bytes()
    code, _ = create_code(ca_ctx, "p-001")

    @given(
        flips=st.lists(st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255)), max_size=4),
        cut=st.integers(1, len(good)),
    )
    @settings(
        max_examples=80,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(flips: list[tuple[int, int]], cut: int) -> None:
        mutated = bytearray(good[:cut])
        for at, value in flips:
            if at < len(mutated):
                mutated[at] = value
        if bytes(mutated) == good:
            return
        before = len(list_certificates(ca_ctx))
        answer = client.post(
            "/.well-known/est/simpleenroll",
            content=base64.encodebytes(bytes(mutated)),
            headers={"content-type": "application/pkcs10"},
            auth=("p-001", code),
        )
        assert answer.status_code < 500, answer.text[:300]
        if answer.status_code >= 400:
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.json()["messages"]["zh-CN"]
            assert len(list_certificates(ca_ctx)) == before

    run()


def test_refused_signed_requests_are_audited_when_the_server_stops(ca_ctx: Context) -> None:
    """Garbage sent to the renewal API is counted, and the server's shutdown writes the count
    (one record, not one per request)."""
    from certdesk.services.audit_log import list_records, verify_chain

    with TestClient(create_app(ca_ctx), raise_server_exceptions=False) as served:
        for _ in range(7):
            answer = served.post("/api/v1/renewal", content=b"not.a.jws")
            assert_problem(answer, 400, "jws.malformed")
        assert list_records(ca_ctx, action="renewal.refused").records == []
    (record,) = list_records(ca_ctx, action="renewal.refused").records
    assert record.object_id == "jws.malformed"
    assert json.loads(record.after or "{}")["count"] == 7
    assert verify_chain(ca_ctx).ok
