"""Hostile bodies for every route that takes one (issue 13), shared by tests/test_fuzz.py (a
fixed-seed run in the suite) and bench/fuzz.py (a long run that prints counts).

tests/test_schemathesis.py already walks the OpenAPI document (no 5xx). This adds what it cannot
generate: certificate requests and OCSP requests mutated at the byte level (bit flips, cuts,
inserted bytes, wrong DER lengths) as DER, base64 and PEM, inside *validly signed* renewal JWS
as well as on EST, and JSON bodies no schema describes (deep nesting, invalid UTF-8, huge
numbers, control and bidi characters) on every JSON route. Each answer must be < 500, every
refusal problem+json with a catalog code in both languages (OCSP answers in its own format),
and a refused request must leave the database as it was (audit head, certificates, codes).
"""

from __future__ import annotations

import base64
import collections
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from cryptography.x509 import ocsp
from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from certdesk.client.signed import sign_request
from certdesk.domain.messages import CATALOG
from certdesk.services.context import Context
from certdesk.services.demo import DEMO_PASSPHRASE, DEMO_PERSON, bootstrap
from certdesk.services.enrolment_codes import create_code
from certdesk.services.ocsp import OcspResponder
from certdesk.store import audit
from certdesk.store.tables import certificates, enrolment_codes
from certdesk.web.app import create_app
from certdesk.web.ocsp import OcspEndpoint
from portal_client import WithCertificate
from request_keys import FileRequestKey

HOLDER = "demo-ra"  # a demo person with a certificate and its key (PKCS#12): signs renewals
ENROLLEE = DEMO_PERSON[0]  # a demo person without a certificate: EST with a one-time code

# Refusals that are audited one by one on purpose (an authenticated officer's attempt beyond
# their permissions, `services/access.py`): they may move the audit head and nothing else.
AUDITED_REFUSALS = {"access.denied", "access.other_unit"}

# --- byte-level mutations --------------------------------------------------------------------

BIG = 1 << 20
MUTATION = st.fixed_dictionaries(
    {
        "flips": st.lists(st.tuples(st.integers(0, BIG), st.integers(0, 7)), max_size=4),
        "bytes": st.lists(st.tuples(st.integers(0, BIG), st.integers(0, 255)), max_size=2),
        # DER lengths made wrong: the headers of the outer structures sit in the first bytes
        "lengths": st.lists(
            st.tuples(st.integers(1, 9), st.sampled_from([0, 0x7F, 0x80, 0x81, 0x84, 0xFF])),
            max_size=2,
        ),
        "cut": st.none() | st.integers(0, BIG),
        "insert": st.none() | st.tuples(st.integers(0, BIG), st.binary(min_size=1, max_size=16)),
    }
)
FORM = st.sampled_from(["der", "base64", "pem", "pem-no-armour"])


def mutate(data: bytes, m: dict[str, Any]) -> bytes:
    out = bytearray(data)
    for at, bit in m["flips"]:
        out[at % len(out)] ^= 1 << bit
    for at, value in m["bytes"]:
        out[at % len(out)] = value
    for at, value in m["lengths"]:
        if at < len(out):
            out[at] = value
    if m["insert"] is not None:
        at, extra = m["insert"]
        out[at % (len(out) + 1) : at % (len(out) + 1)] = extra
    if m["cut"] is not None:
        del out[m["cut"] % (len(out) + 1) :]
    return bytes(out)


def shaped(der: bytes, form: str, label: str = "CERTIFICATE REQUEST") -> bytes:
    """The mutated DER as a client might send it."""
    b64 = base64.encodebytes(der)
    return {
        "der": der,
        "base64": b64,
        "pem": f"-----BEGIN {label}-----\n".encode() + b64 + f"-----END {label}-----\n".encode(),
        "pem-no-armour": b64.replace(b"\n", b"\r\n") + b"\x00",
    }[form]


# --- JSON no schema describes -----------------------------------------------------------------

ODD_TEXT = st.text(
    alphabet=st.sampled_from(list("aZ张三\u202e\u200b\x1b\r\n\x00\ufeff../\\%\"'<>")), max_size=40
)
JSON_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False)
    | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=12,
)
RAW_JSON = st.one_of(
    JSON_VALUE.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
    st.integers(1, 200_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 50_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.integers(1, 100_000).map(lambda digits: b'{"hours": 1' + b"0" * digits + b"}"),
    st.sampled_from(
        [
            b'{"name": "\xff\xfe"}',
            b'{"hours": 1e999999}',
            b'{"hours": NaN}',
            b'{"hours": -Infinity}',
            b"\xef\xbb\xbf{}",
            b'{"a": 1, "a": 2}',
            b"",
            b"null",
        ]
    ),
    st.binary(max_size=64),
)


# --- the desk under test ----------------------------------------------------------------------


@dataclass
class Desk:
    """The application (with OCSP in front, as `certdesk serve` runs it) and what the hostile
    requests need: the RA officer's and a holder's certificate, the holder's key, an
    enrolment code, a good CSR and a good OCSP request to mutate, the JSON routes."""

    ctx: Context
    officer: TestClient  # the RA officer; its key also signs the renewal JWS (a holder too)
    holder_key: ec.EllipticCurvePrivateKey
    holder_serial: str
    code: str
    csr: bytes
    ocsp_request: bytes
    json_routes: list[tuple[str, str]]
    counts: collections.Counter[str] = field(default_factory=collections.Counter)


def _demo(ctx: Context, person_id: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    data = (ctx.config.data_dir / "demo" / f"{person_id}.p12").read_bytes()
    loaded = pkcs12.load_pkcs12(data, DEMO_PASSPHRASE.encode())
    assert loaded.cert is not None and isinstance(loaded.key, ec.EllipticCurvePrivateKey)
    return loaded.key, loaded.cert.certificate


def make_desk(ctx: Context) -> Desk:
    bootstrap(ctx)
    app = OcspEndpoint(create_app(ctx), OcspResponder(ctx), ctx.config.url("ocsp"))
    key, cert = _demo(ctx, HOLDER)
    der = cert.public_bytes(Encoding.DER)
    officer = TestClient(
        WithCertificate(app, der),  # type: ignore[arg-type]  # any ASGI app
        base_url="https://testserver",
        headers={"Accept": "application/json"},
    )
    officer.headers["X-CSRF-Token"] = officer.get("/api/v1/me").json()["csrf_token"]
    code, _ = create_code(ctx, ENROLLEE, 720)
    new_key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(new_key, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )
    issuer = x509.load_pem_x509_certificate(
        (ctx.config.data_dir / "pki" / "issuing.pem").read_bytes()
    )
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    paths = officer.get("/openapi.json").json()["paths"]
    json_routes = [
        (method.upper(), re.sub(r"\{[^}]+\}", ENROLLEE, path))
        for path, item in paths.items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "requestBody" in operation
    ]
    assert json_routes, "the API has JSON routes"
    return Desk(
        ctx,
        officer,
        key,
        format(cert.serial_number, "x"),
        code,
        csr,
        request.public_bytes(Encoding.DER),
        json_routes,
    )


def snapshot(ctx: Context) -> tuple[int, int, int]:
    """What a refused request must not change: audit head, certificates, used codes. (A nonce
    presented with a refused request may be spent, as ACME spends it: not a change of state.)"""
    with ctx.db.read() as conn:
        seq, _hash = audit.head(conn)
        certs = conn.execute(select(func.count()).select_from(certificates)).scalar_one()
        used = conn.execute(
            select(func.count())
            .select_from(enrolment_codes)
            .where(enrolment_codes.c.used_at.is_not(None))
        ).scalar_one()
    return seq, certs, used


# --- the targets: each turns a drawn case into one request ------------------------------------


def _signed(desk: Desk, action: str, payload: Any) -> bytes:
    nonce = desk.officer.get("/api/v1/renewal/nonce").json()["nonce"]
    token = sign_request(
        FileRequestKey(desk.holder_key),
        serial=desk.holder_serial,
        nonce=nonce,
        action=action,
        payload=payload,
    )
    return token.encode()


def est_enroll(desk: Desk, case: dict[str, Any]) -> Response:
    body = shaped(mutate(desk.csr, case["mutation"]), case["form"])
    return desk.officer.post(
        "/.well-known/est/simpleenroll",
        content=body,
        headers={"Content-Type": "application/pkcs10"},
        auth=(ENROLLEE, desk.code),
    )


def est_reenroll(desk: Desk, case: dict[str, Any]) -> Response:
    body = shaped(mutate(desk.csr, case["mutation"]), case["form"])
    return desk.officer.post(
        "/.well-known/est/simplereenroll",
        content=body,
        headers={"Content-Type": "application/pkcs10"},
    )


def renewal_csr(desk: Desk, case: dict[str, Any]) -> Response:
    """A validly signed JWS whose CSR is mutated: the signature checks pass, the CSR parser
    and the renewal rules get the hostile bytes."""
    mutated = shaped(mutate(desk.csr, case["mutation"]), case["form"])
    payload = {"csr": base64.urlsafe_b64encode(mutated).rstrip(b"=").decode()}
    body = _signed(desk, "renew", payload)
    return desk.officer.post(
        "/api/v1/renewal", content=body, headers={"Content-Type": "application/jose"}
    )


def renewal_payload(desk: Desk, case: dict[str, Any]) -> Response:
    """A validly signed JWS with an odd JSON payload, to each signed action."""
    action, path = case["action"]
    payload = case["json"] if isinstance(case["json"], dict) else {"csr": case["json"]}
    body = _signed(desk, action, payload)
    return desk.officer.post(path, content=body, headers={"Content-Type": "application/jose"})


def json_api(desk: Desk, case: dict[str, Any]) -> Response:
    method, path = case["route"]
    return desk.officer.request(
        method, path, content=case["raw"], headers={"Content-Type": "application/json"}
    )


def ocsp_post(desk: Desk, case: dict[str, Any]) -> Response:
    body = shaped(mutate(desk.ocsp_request, case["mutation"]), case["form"], "OCSP REQUEST")
    return desk.officer.post(
        "/ocsp", content=body, headers={"Content-Type": "application/ocsp-request"}
    )


TARGETS: dict[str, Callable[[Desk, dict[str, Any]], Response]] = {
    "est_enroll": est_enroll,
    "est_reenroll": est_reenroll,
    "renewal_csr": renewal_csr,
    "renewal_payload": renewal_payload,
    "json_api": json_api,
    "ocsp": ocsp_post,
}
SIGNED_ACTIONS = [
    ("renew", "/api/v1/renewal"),
    ("pickup", "/api/v1/renewal/pickup"),
    ("confirm", "/api/v1/renewal/confirm"),
    ("profile", "/api/v1/renewal/profile"),
    ("pin-changed", "/api/v1/tokens/pin-changed"),
]


def cases(desk: Desk) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "target": st.sampled_from(sorted(TARGETS)),
            "mutation": MUTATION,
            "form": FORM,
            "action": st.sampled_from(SIGNED_ACTIONS),
            "json": JSON_VALUE,
            "route": st.sampled_from(desk.json_routes),
            "raw": RAW_JSON,
        }
    )


def check(desk: Desk, case: dict[str, Any]) -> None:
    """Send one case; the answer and the database must be as the module says."""
    before = snapshot(desk.ctx)
    target = case["target"]
    response = TARGETS[target](desk, case)
    status = response.status_code
    desk.counts[f"{target} {status // 100}xx"] += 1
    assert status < 500, (target, status, response.text[:300])
    if target == "ocsp":
        assert response.headers["content-type"] == "application/ocsp-response", response.text
        ocsp.load_der_ocsp_response(response.content)  # an OCSP answer, even for garbage
        return
    if status < 400:
        return
    assert response.headers["content-type"].startswith("application/problem+json"), (
        target,
        response.text[:300],
    )
    problem = response.json()
    assert problem["code"] in CATALOG, problem
    assert problem["messages"]["en"] and problem["messages"]["zh-CN"], problem
    after = snapshot(desk.ctx)
    if problem["code"] in AUDITED_REFUSALS:  # an officer's denied attempt is audited, by design
        after, before = after[1:], before[1:]
    assert after == before, (target, problem["code"], "a refusal changed the database")


def fuzz(desk: Desk, examples: int, seed: int | None = None) -> collections.Counter[str]:
    """Run `examples` hostile requests over all targets; the counts by target and status. The
    same cases every run (derandomized) unless a `seed` chooses others."""

    @given(case=cases(desk))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: dict[str, Any]) -> None:
        check(desk, case)

    (run if seed is None else hypothesis.seed(seed)(run))()
    return desk.counts
