"""Signed checkpoints of the audit head, kept with the journal, so a truncated or rolled-back
log is told apart from an intact one.

The chain alone cannot see a log cut at its end with the head moved back (or a database file
copied back): what is left is a valid chain. A checkpoint says "record N had hash H" with a
signature; `audit verify` compares every checkpoint with the log.

Signed with an Ed25519 key of its own (`journal.checkpoint_key`, beside the CA keys, never in
the database nor in the journal directory): not with a CA key, whose signatures must only ever
mean certificates, CRLs and OCSP answers; and not with an HMAC secret, so an auditor can check
checkpoints with the public key without being able to make one.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from certdesk.services.context import Context
from certdesk.services.journal import CHECKPOINTS
from certdesk.store import audit
from certdesk.store.audit import ChainProblem


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str

    def body(self) -> bytes:
        return json.dumps([self.seq, self.hash, self.at], separators=(",", ":")).encode()


def _key(ctx: Context, create: bool) -> Ed25519PrivateKey | None:
    path = ctx.config.checkpoint_key_path
    if not path.exists():
        if not create:
            return None
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        return key
    loaded = load_pem_private_key(path.read_bytes(), None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 key")
    return loaded


def _path(ctx: Context) -> Path:
    return ctx.config.journal_dir / CHECKPOINTS


def _read(ctx: Context) -> list[tuple[Checkpoint, bytes]]:
    path = _path(ctx)
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
            point = Checkpoint(int(item["seq"]), str(item["hash"]), str(item["at"]))
            found.append((point, base64.b64decode(item["sig"])))
        except (ValueError, KeyError, TypeError):
            found.append((Checkpoint(-1, "", ""), b""))  # reported as unreadable by `check`
    return found


def write_checkpoint(ctx: Context) -> Checkpoint | None:
    """Sign the audit head and append it (fsynced); None when the head has not moved since the
    last checkpoint (maintenance calls this every round)."""
    with ctx.db.read() as conn:
        seq, digest = audit.head(conn)
    known = _read(ctx)
    if seq == 0 or (known and known[-1][0].seq == seq):
        return None
    key = _key(ctx, create=True)
    assert key is not None
    point = Checkpoint(seq, digest, ctx.clock.now().isoformat())
    line = json.dumps(
        {
            "seq": point.seq,
            "hash": point.hash,
            "at": point.at,
            "sig": base64.b64encode(key.sign(point.body())).decode(),
        }
    )
    path = _path(ctx)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return point


def public_key_pem(ctx: Context) -> str:
    """The public key to give an auditor (checkpoints can be checked with it alone)."""
    key = _key(ctx, create=True)
    assert key is not None
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def check(ctx: Context) -> tuple[Checkpoint | None, list[ChainProblem]]:
    """Every checkpoint against the log, newest first: a record missing or different at a
    checkpoint's sequence number is a truncation or a rollback (the newest one of each kind is
    reported). Returns the newest validly signed checkpoint."""
    known = _read(ctx)
    if not known:
        return None, []
    key = _key(ctx, create=False)
    if key is None:
        return None, [
            ChainProblem(0, "checkpoint", f"no key {ctx.config.checkpoint_key_path} to check them")
        ]
    public = key.public_key()
    problems: list[ChainProblem] = []
    newest: Checkpoint | None = None

    def report(problem: ChainProblem) -> None:  # the newest checkpoint's word per kind suffices
        if all(p.kind != problem.kind for p in problems):
            problems.append(problem)

    with ctx.db.read() as conn:
        seq, _digest = audit.head(conn)
        for point, signature in reversed(known):
            try:
                public.verify(signature, point.body())
            except InvalidSignature:
                report(ChainProblem(point.seq, "checkpoint", "a checkpoint's signature is invalid"))
                continue
            newest = newest or point
            if point.seq > seq:
                report(
                    ChainProblem(
                        seq + 1,
                        "truncated",
                        f"the checkpoint of {point.at} has {point.seq} records, "
                        f"the log ends at {seq}",
                    )
                )
                continue
            record = audit.record_at(conn, point.seq)
            if record is None or record.hash != point.hash:
                report(
                    ChainProblem(
                        point.seq,
                        "rolled back",
                        f"record {point.seq} differs from the checkpoint of {point.at}",
                    )
                )
    return newest, problems
