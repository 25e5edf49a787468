"""TLS terminated by certdesk itself, handing the client certificate to the application.

No released ASGI server exposes the peer certificate (see docs/design.md), so uvicorn's HTTP
protocol is subclassed: at connection time it reads the DER from the SSL object and every
request on that connection carries it as `scope["extensions"]["tls"]["client_cert_der"]`.

The handshake asks for a certificate but does not require one (CERT_OPTIONAL), accepts only
chains to our CA, and does not check dates (X509_V_FLAG_NO_CHECK_TIME): an expired holder must
reach a page that says what to do, so the application checks dates and states itself, always.
"""

from __future__ import annotations

import _ssl
import asyncio
import ctypes
import logging
import os
import ssl
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config as UvicornConfig

from certdesk.web.connections import BoundedProtocol

X509_V_FLAG_NO_CHECK_TIME = 0x200000  # OpenSSL's flag; Python's ssl has no name for it
# TLS 1.2 suites: forward secret AEAD only, no CBC (TLS 1.3's suites are all AEAD)
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
SSL_VERIFY_PEER = 0x01  # what CERT_OPTIONAL sets in OpenSSL


def server_context(cert_file: str, key_file: str, ca_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.load_cert_chain(cert_file, key_file)
    context.load_verify_locations(cafile=ca_file)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.verify_flags |= X509_V_FLAG_NO_CHECK_TIME
    if not send_ca_names(context, ca_file):
        logging.getLogger("uvicorn.error").warning(
            "The TLS certificate request will not name the CAs (browsers offer every certificate)"
        )
    return context


def send_ca_names(context: ssl.SSLContext, ca_file: str) -> bool:
    """Name our CAs in the TLS CertificateRequest, so that browsers offer only certificates
    of this CA (not an old one left in the browser, nor another CA's).

    Python's ssl module has no call for OpenSSL's `SSL_CTX_set_client_CA_list`, so it is called
    through ctypes on the `SSL_CTX` the context wraps, found right after the object header (its
    first field in CPython's `PySSLContext`). Before touching it, the pointer is checked by
    reading back the verify mode just set; anything unexpected leaves the list empty, as
    before, and answers False."""
    try:
        libssl = ctypes.CDLL(_ssl.__file__)  # resolves to the libssl the ssl module uses
        get_mode = libssl.SSL_CTX_get_verify_mode
        load_names = libssl.SSL_load_client_CA_file
        set_names = libssl.SSL_CTX_set_client_CA_list
    except (OSError, AttributeError):
        return False
    get_mode.argtypes, get_mode.restype = [ctypes.c_void_p], ctypes.c_int
    load_names.argtypes, load_names.restype = [ctypes.c_char_p], ctypes.c_void_p
    set_names.argtypes, set_names.restype = [ctypes.c_void_p, ctypes.c_void_p], None
    ssl_ctx = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not ssl_ctx or get_mode(ssl_ctx) != SSL_VERIFY_PEER:
        return False
    names = load_names(os.fsencode(ca_file))
    if not names:
        return False
    set_names(ssl_ctx, names)  # the context owns the list from here on
    return True


def context_factory(
    cert_file: str, key_file: str, ca_file: str
) -> Callable[[UvicornConfig, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    def make(_config: UvicornConfig, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return server_context(cert_file, key_file, ca_file)

    return make


class ClientCertProtocol(BoundedProtocol):
    """uvicorn's HTTP/1.1 protocol, plus the verified client certificate in the scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        inner = self.app

        async def with_certificate(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = {"client_cert_der": der}
            await inner(scope, receive, send)

        self.app = with_certificate


def client_certificate_der(scope: Any) -> bytes | None:
    """The DER of the certificate the TLS layer verified (None: no certificate sent)."""
    der: bytes | None = scope.get("extensions", {}).get("tls", {}).get("client_cert_der")
    return der
