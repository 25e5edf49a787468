"""What /pki/ serves: every CA's certificate, each issuing CA's chain, `chain.pem` and each CA's
newest complete and delta CRL (DER and PEM).

All of it is read from the database, so every process on every machine serves the same, newest
files whichever process published them. The copies under `<data_dir>/pki/` are written for what
needs a file on this machine (nginx's and `serve`'s client-CA file `chain.pem`); a CRL published
before the database kept CRLs is served from its file there.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import Connection

from certdesk.services.authorities import (
    ISSUING,
    AuthorityInfo,
    Issuers,
    list_authorities,
    pki_dir,
)
from certdesk.services.context import Context
from certdesk.store import crls as crl_store


def certificate_files(infos: Sequence[AuthorityInfo]) -> dict[str, bytes]:
    """The CA certificates (DER at the caIssuers URL, PEM beside it), each issuing CA's chain
    (`<id>.chain.pem`: it and the root) and `chain.pem`: every issuing CA still trusted (newest
    first) and the root — so holders of every generation in use get through the handshake."""
    issuers = Issuers(infos)
    root_pem = issuers.root().certificate.public_bytes(Encoding.PEM)
    files: dict[str, bytes] = {}
    for info in infos:
        pem = info.certificate.public_bytes(Encoding.PEM)
        files[f"{info.name}.crt"] = info.certificate.public_bytes(Encoding.DER)
        files[f"{info.name}.pem"] = pem
        if info.role == ISSUING:
            files[f"{info.name}.chain.pem"] = pem + root_pem
    chain = b"".join(i.certificate.public_bytes(Encoding.PEM) for i in issuers.trusted())
    files["chain.pem"] = chain + root_pem
    return files


def _crl_names(issuers: Sequence[str]) -> dict[str, tuple[str, bool, bool]]:
    """Each CA's CRL download names: (issuer, delta?, PEM?)."""
    return {
        f"{issuer}{'-delta' if delta else ''}.crl{'.pem' if pem else ''}": (issuer, delta, pem)
        for issuer in issuers
        for delta in (False, True)
        for pem in (False, True)
    }


def _newest_crl(ctx: Context, conn: Connection, issuer: str, delta: bool) -> bytes | None:
    """The DER of `issuer`'s newest complete (or delta) CRL, None before the first."""
    der = crl_store.newest_der(conn, issuer, delta=delta)
    if der is None:  # published before the database kept CRLs: this machine's file
        path = pki_dir(ctx) / f"{issuer}{'-delta' if delta else ''}.crl"
        der = path.read_bytes() if path.exists() else None
    return der


def download(ctx: Context, name: str) -> bytes | None:
    """The file `name` as served at /pki/<name>; None when there is no such file (yet)."""
    with ctx.db.read() as conn:
        infos = list_authorities(conn)
        crl = _crl_names([i.name for i in infos]).get(name)
        if crl is not None:
            issuer, delta, pem = crl
            der = _newest_crl(ctx, conn, issuer, delta)
            if der is None or not pem:
                return der
            return x509.load_der_x509_crl(der).public_bytes(Encoding.PEM)
    return certificate_files(infos).get(name)


def downloads(ctx: Context) -> list[str]:
    """The files under /pki/ a relying party may fetch: every CA's certificate, CRL and delta CRL
    (DER and PEM, at the URLs written into what it issued; a retired CA's stay), each issuing
    CA's chain and the chain of every trusted one — those published so far."""
    with ctx.db.read() as conn:
        infos = list_authorities(conn)
        names = [i.name for i in infos]
        has = {
            (n, delta): _newest_crl(ctx, conn, n, delta) is not None
            for n in names
            for delta in (False, True)
        }
    published = {name for name, (n, delta, _) in _crl_names(names).items() if has[(n, delta)]}
    files = certificate_files(infos)
    kinds = (".crt", ".pem", ".chain.pem", ".crl", ".crl.pem", "-delta.crl", "-delta.crl.pem")
    named = [f"{n}{ext}" for n in names for ext in kinds]
    return [f for f in [*named, "chain.pem"] if f in files or f in published]
