"""The portal's own TLS server certificate: names are IP addresses or DNS names, backdated a
little for clients whose clocks run slow. Issued by the CA administrator's commands only."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from sqlalchemy import Connection

from certdesk.ca.keys import PublicKey
from certdesk.ca.profiles import Extensions, Profile, SubjectAltNames, make_name
from certdesk.config import Config
from certdesk.domain.errors import CertdeskError
from certdesk.domain.validity import CLOCK_SKEW
from certdesk.services.enrolment import Intent


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class TlsServerEnrolment:
    config: Config
    public_key: PublicKey
    hostnames: tuple[str, ...]

    def authorise(self, conn: Connection) -> Intent:
        if not self.hostnames:
            raise CertdeskError("input.invalid", detail="a server certificate needs a name")
        ca = self.config.ca
        subject = make_name((("C", ca.country), ("O", ca.organisation), ("CN", self.hostnames[0])))
        sans = SubjectAltNames(
            dns_names=tuple(h for h in self.hostnames if not _is_ip(h)),
            ip_addresses=tuple(h for h in self.hostnames if _is_ip(h)),
        )
        return Intent(
            Profile.TLS_SERVER,
            self.public_key,
            subject,
            Extensions(sans),
            "tls_server",
            backdate=CLOCK_SKEW,
        )
