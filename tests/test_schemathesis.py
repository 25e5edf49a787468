"""schemathesis against the application's own OpenAPI document: no request, however odd, gets a
5xx. A bounded run (a few examples per operation), authenticated as the demo RA officer by the
client certificate (the ASGI wrapper puts it where the TLS layer would), on SQLite and
PostgreSQL. Covers every operation `/openapi.json` lists, so new `/api/v1` endpoints are
fuzzed as soon as they exist."""

from __future__ import annotations

import base64
import json
import os
import string
from typing import Any

import pytest
import schemathesis
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from certdesk.services.context import Context
from certdesk.services.demo import DEMO_PASSPHRASE, bootstrap
from certdesk.web.app import create_app
from portal_client import WithCertificate, client_for

# Examples per operation; the whole run stays well under a minute. CERTDESK_FUZZ_EXAMPLES=200
# for a deeper run by hand.
EXAMPLES = int(os.environ.get("CERTDESK_FUZZ_EXAMPLES", "8"))


def demo_certificate(ctx: Context, person_id: str) -> bytes:
    """The DER of the certificate in the demo PKCS#12 file of `person_id`."""
    data = (ctx.config.data_dir / "demo" / f"{person_id}.p12").read_bytes()
    loaded = pkcs12.load_pkcs12(data, DEMO_PASSPHRASE.encode())
    assert loaded.cert is not None
    return loaded.cert.certificate.public_bytes(Encoding.DER)


def check_operation(operation: Any, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: a failure here is reproducible
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    run()


def describe(exc: BaseException) -> str:
    """The error, and the errors inside it (hypothesis groups flaky failures)."""
    inner = getattr(exc, "exceptions", None) or ()
    return "\n  ".join([f"{type(exc).__name__}: {exc}", *(describe(e) for e in inner)])


def test_openapi_operations_give_no_server_errors(ctx: Context) -> None:
    bootstrap(ctx)
    app = WithCertificate(create_app(ctx), demo_certificate(ctx, "demo-ra"))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert "GET /healthz" in labels and "POST /api/v1/renewal" in labels, labels
    headers = {"Accept": "application/json"}
    if "GET /api/v1/me" in labels:  # state changes need the CSRF token bound to the certificate
        me = TestClient(app, base_url="https://testserver").get("/api/v1/me", headers=headers)
        headers["X-CSRF-Token"] = me.json()["csrf_token"]
    failures: list[str] = []
    for operation in operations:
        try:
            check_operation(operation, headers)
        except Exception as exc:  # collect them all: one report names every failing operation
            failures.append(f"{operation.label}: {describe(exc)}")
    if failures:
        pytest.fail("server errors:\n" + "\n\n".join(failures))


# The JWS and EST endpoints read their bodies raw, so the OpenAPI document has no schema for
# them and schemathesis sends them only an empty body. Odd bodies, forged JWS and Basic
# credentials are sent here to every POST operation the document lists without a body.
B64 = st.text(alphabet=string.ascii_letters + string.digits + "-_=", max_size=40)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
HEADERS = st.fixed_dictionaries(
    {"alg": st.sampled_from(["ES256", "RS256", "none", "HS256", ""]) | JSON},
    optional={"kid": JSON, "nonce": JSON, "jwk": JSON, "url": JSON, "x5c": JSON},
)


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


FORGED_JWS = st.builds(lambda h, p, s: f"{_segment(h)}.{_segment(p)}.{s}", HEADERS, JSON, B64)
BODIES = (
    st.binary(max_size=200) | st.text(max_size=200).map(str.encode) | FORGED_JWS.map(str.encode)
)
AUTH = (
    st.none()
    | st.builds(
        lambda user, code: "Basic " + base64.b64encode(f"{user}:{code}".encode()).decode(),
        st.text(max_size=12),
        st.text(max_size=12),
    )
    | st.text(alphabet=string.printable.strip(), max_size=30)
)


def test_raw_bodies_give_no_server_errors(ctx: Context) -> None:
    bootstrap(ctx)
    app = create_app(ctx)
    client = client_for(app, demo_certificate(ctx, "demo-ra"))
    client.headers["Accept"] = "application/json"
    me = client.get("/api/v1/me")
    if me.status_code == 200:
        client.headers["X-CSRF-Token"] = me.json()["csrf_token"]
    paths = [
        path
        for path, item in client.get("/openapi.json").json()["paths"].items()
        if "post" in item and "requestBody" not in item["post"] and "{" not in path
    ]
    assert "/api/v1/renewal" in paths and "/.well-known/est/simpleenroll" in paths, paths

    @given(path=st.sampled_from(paths), body=BODIES, auth=AUTH)
    @settings(
        max_examples=25 * len(paths),
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(path: str, body: bytes, auth: str | None) -> None:
        headers = {"Content-Type": "application/jose"}
        if auth is not None:
            headers["Authorization"] = auth
        response = client.post(path, content=body, headers=headers)
        assert response.status_code < 500, (path, body, response.text)

    run()
