"""CA keys in an HSM through PKCS#11, named by RFC 7512 URIs.

The key never leaves the HSM: cryptography builds the to-be-signed bytes, the HSM signs them
(`certdesk.token.signing`, shared with the holder's side), asn1crypto reassembles the DER
(`ExternalSigner`). One logged-in session stays open for the signer's life.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pkcs11
from pkcs11 import Attribute, ObjectClass

from certdesk.ca.keys import KeyType, PublicKey, key_type_of
from certdesk.ca.signer import ExternalSigner
from certdesk.domain.errors import CertdeskError
from certdesk.domain.pkcs11uri import Pkcs11Uri
from certdesk.token.device import find_token, login
from certdesk.token.keys import generate_keypair, public_key_of
from certdesk.token.signing import sign_x509


def _login(module: str, uri: Pkcs11Uri) -> Any:
    if not uri.token or not uri.object:
        raise CertdeskError(
            "pkcs11.bad_uri", uri=str(uri.without_pin()), detail="token= and object= are needed"
        )
    if uri.pin_value is None:
        raise CertdeskError("pkcs11.bad_uri", uri=str(uri.without_pin()), detail="no pin-value")
    return login(find_token(module, label=uri.token, serial=uri.serial), uri.pin_value)


class Pkcs11Signer(ExternalSigner):
    def __init__(self, module: str, uri: str) -> None:
        self._module = module
        self._uri = Pkcs11Uri.parse(uri)
        self._lock = threading.Lock()
        self._session: Any = None
        self._open()
        self._public: PublicKey = public_key_of(self._public_object)
        self._key_type = key_type_of(self._public)

    def _open(self) -> None:
        self._session = _login(self._module, self._uri)
        try:
            self._private = self._session.get_key(
                object_class=ObjectClass.PRIVATE_KEY, label=self._uri.object
            )
            self._public_object = self._session.get_key(
                object_class=ObjectClass.PUBLIC_KEY, label=self._uri.object
            )
        except (pkcs11.NoSuchKey, pkcs11.MultipleObjectsReturned):
            self.close()
            raise CertdeskError("pkcs11.object_missing", uri=str(self._uri.without_pin())) from None

    @property
    def key_type(self) -> KeyType:
        return self._key_type

    @property
    def public_key(self) -> PublicKey:
        return self._public

    def sign_tbs(self, tbs: bytes) -> bytes:
        with self._lock:
            try:
                return sign_x509(self._private, tbs)
            except CertdeskError:
                # The session can be lost (HSM restarted, library re-initialised): log in again
                # once; a second failure is reported.
                self._open()
                return sign_x509(self._private, tbs)

    def close(self) -> None:
        if self._session is not None:
            with contextlib.suppress(pkcs11.PKCS11Error):
                self._session.close()
            self._session = None


def open_hsm_key(module: str, uri: str) -> Pkcs11Signer:
    return Pkcs11Signer(module, uri)


def generate_hsm_key(module: str, uri: str, key_type: KeyType) -> Pkcs11Signer:
    """Create a CA key pair in the HSM (sensitive, never extractable) and open it."""
    parsed = Pkcs11Uri.parse(uri)
    session = _login(module, parsed)
    try:
        existing = list(
            session.get_objects(
                {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: parsed.object}
            )
        )
        if existing:
            raise CertdeskError(
                "ca.already_initialised", name=f"a key {parsed.object!r} is already in the HSM"
            )
        generate_keypair(session, key_type.value, parsed.object or "")
    finally:
        session.close()
    return Pkcs11Signer(module, uri)
