"""One-time server nonces for signed requests (as ACME's Replay-Nonce).

A nonce is `time ‖ random ‖ HMAC(time ‖ random)` under a key every server process shares (kept in
the database), so handing one out costs no database write. Using it records it in `used_nonces`
inside the caller's transaction: a replay hits the primary key, whichever process sees it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import struct
from collections.abc import Sequence

from sqlalchemy import Connection

from certdesk.domain.errors import CertdeskError
from certdesk.services.context import Context
from certdesk.services.server_secrets import shared_secret
from certdesk.store import nonces as nonce_store

_SECRET_NAME = "nonce-hmac"
_MAC_BYTES = 16
_RANDOM_BYTES = 16
_TIME = struct.Struct(">q")  # milliseconds since the epoch


class Nonces:
    """Issues and checks nonces; keep one per process (it caches the shared key)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.ttl = dt.timedelta(seconds=ctx.config.renewal.nonce_seconds)
        self._key = shared_secret(ctx, _SECRET_NAME)

    def new(self) -> str:
        millis = int(self.ctx.clock.now().timestamp() * 1000)
        body = _TIME.pack(millis) + secrets.token_bytes(_RANDOM_BYTES)
        return _b64(body + self._mac(body))

    def consume(self, conn: Connection, nonce: str) -> None:
        """Check `nonce` and mark it used inside the caller's transaction, or refuse."""
        (refusal,) = self.consume_many(conn, [nonce])
        if refusal is not None:
            raise refusal

    def consume_many(self, conn: Connection, nonces: Sequence[str]) -> list[CertdeskError | None]:
        """`consume` for each of `nonces`, in order, recorded in one statement: each refusal in
        its place (a nonce given twice is used the second time), None where it was spent."""
        now = self.ctx.clock.now()
        refusals = [self._refusal(nonce, now) for nonce in nonces]
        fresh = nonce_store.record_uses(
            conn, [n for n, refused in zip(nonces, refusals, strict=True) if refused is None], now
        )
        for i, nonce in enumerate(nonces):
            if refusals[i] is None and nonce not in fresh:
                refusals[i] = CertdeskError("nonce.used")
            fresh.discard(nonce)
        return refusals

    def _refusal(self, nonce: str, now: dt.datetime) -> CertdeskError | None:
        """Why `nonce` cannot be spent whatever the database says (forged, expired), if so."""
        try:
            issued_at = self._issued_at(nonce)
        except CertdeskError as exc:
            return exc
        if now - issued_at > self.ttl or issued_at - now > dt.timedelta(minutes=1):
            return CertdeskError("nonce.expired", seconds=self.ctx.config.renewal.nonce_seconds)
        return None

    def _issued_at(self, nonce: str) -> dt.datetime:
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            raise CertdeskError("nonce.invalid") from None
        body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(body) != _TIME.size + _RANDOM_BYTES or not hmac.compare_digest(mac, self._mac(body)):
            raise CertdeskError("nonce.invalid")
        (millis,) = _TIME.unpack(body[: _TIME.size])
        return dt.datetime.fromtimestamp(millis / 1000, dt.UTC)

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_BYTES]

    def prune(self) -> int:
        """Forget used nonces that would be refused as expired anyway."""
        cutoff = self.ctx.clock.now() - self.ttl - dt.timedelta(minutes=1)
        with self.ctx.db.write() as conn:
            return nonce_store.forget_used_before(conn, cutoff)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
