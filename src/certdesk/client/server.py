"""HTTPS to the certdesk server, trusting only the pinned root CA."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certdesk.client.settings import ClientSettings
from certdesk.client.signed import RequestKey, sign_request
from certdesk.domain.errors import CertdeskError
from certdesk.domain.fingerprints import sha256_hex
from certdesk.domain.messages import Locale

TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class ServerRefusal(CertdeskError):
    """A refusal from the server, with its code and both messages as the server gave them."""

    def __init__(self, code: str, status: int, messages: dict[str, str]) -> None:
        Exception.__init__(self, messages.get("en", code))
        self.code = code
        self.params = {}
        self._status = status
        self._messages = messages

    @property
    def status(self) -> int:
        return self._status

    def message(self, locale: Locale) -> str:
        return self._messages.get(locale) or self._messages.get("en") or self.code

    def messages(self) -> dict[str, str]:
        return dict(self._messages)


def fingerprint(certificate: x509.Certificate) -> str:
    return sha256_hex(certificate.public_bytes(Encoding.DER))


def fetch_root_unverified(url: str) -> x509.Certificate:
    """First contact (nothing pinned yet): the root is shown to the holder before it is trusted."""
    try:
        response = httpx.get(f"{url.rstrip('/')}/pki/root.pem", verify=False, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise CertdeskError("client.connect_failed", url=url, detail=str(exc)) from None
    if response.status_code != 200:
        raise CertdeskError("client.server_error", status=response.status_code, detail=url)
    try:
        return x509.load_pem_x509_certificate(response.content)
    except ValueError as exc:
        raise CertdeskError("input.malformed_pem", detail=str(exc)) from None


class Server:
    """Calls to one certdesk server over TLS verified against the pinned root."""

    def __init__(self, settings: ClientSettings, http: httpx.Client | None = None) -> None:
        self.settings = settings
        if http is None:
            context = ssl.create_default_context(cafile=str(settings.root_path))
            http = httpx.Client(base_url=settings.server_url, verify=context, timeout=TIMEOUT)
        self._http = http
        self._handed: str | None = None  # the nonce the last signed answer carried

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            url = self.settings.server_url
            raise CertdeskError("client.server_unreachable", url=url, detail=str(exc)) from None
        if response.status_code >= 400:
            raise _refusal(response)
        return response

    def health(self) -> dict[str, Any]:
        data: dict[str, Any] = self._call("GET", "/healthz").json()
        return data

    def nonce(self) -> str:
        value: str = self._call("GET", "/api/v1/renewal/nonce").json()["nonce"]
        return value

    def signed(
        self,
        path: str,
        key: RequestKey,
        serial: str,
        action: str,
        payload: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """POST a request signed with `key` (certificate `serial`) under the nonce the previous
        signed answer handed over (`Replay-Nonce`), else a fresh one. A handed nonce the server
        no longer takes (it aged while the holder was away) costs one retry with a fresh one:
        a refused nonce means nothing was done."""
        handed, self._handed = self._handed, None
        try:
            return self._post_signed(path, key, serial, action, payload, handed or self.nonce())
        except ServerRefusal as refusal:
            if handed is None or not refusal.code.startswith("nonce."):
                raise
        return self._post_signed(path, key, serial, action, payload, self.nonce())

    def _post_signed(
        self,
        path: str,
        key: RequestKey,
        serial: str,
        action: str,
        payload: dict[str, Any] | None,
        nonce: str,
    ) -> dict[str, Any]:
        token = sign_request(key, serial=serial, nonce=nonce, action=action, payload=payload or {})
        response = self._call(
            "POST", path, content=token, headers={"Content-Type": "application/jose"}
        )
        self._handed = response.headers.get("Replay-Nonce")
        data: dict[str, Any] = response.json()
        return data


def _refusal(response: httpx.Response) -> CertdeskError:
    try:
        body = response.json()
        return ServerRefusal(body["code"], response.status_code, body["messages"])
    except (ValueError, KeyError, TypeError):
        return CertdeskError(
            "client.server_error", status=response.status_code, detail=response.text[:200]
        )
