"""States of registry objects and RFC 5280 revocation reasons."""

from __future__ import annotations

import enum


class CertState(enum.StrEnum):
    RESERVED = "reserved"  # serial reserved, intent recorded, not yet signed (or signing crashed)
    PENDING_INSTALL = "pending_install"  # signed, waiting for the holder's confirmation
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    REVOKED = "revoked"
    ABANDONED = "abandoned"  # reservation never completed; serial stays burnt


class PersonState(enum.StrEnum):
    ACTIVE = "active"
    DEPARTED = "departed"


class TokenState(enum.StrEnum):
    IN_STOCK = "in_stock"
    ISSUED = "issued"
    RETURNED = "returned"
    LOST = "lost"


class AuthorityState(enum.StrEnum):
    """An issuing CA's generation: issuing now, still trusted while its certificates live out
    their time after a rollover, or no longer trusted at all."""

    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"


class RequestState(enum.StrEnum):
    """A paper form turned request: filed, decided by an RA officer, then carried out."""

    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    CARRIED_OUT = "carried_out"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"


class RevocationReason(enum.StrEnum):
    """RFC 5280 CRLReason names (as in cryptography's x509.ReasonFlags)."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    CA_COMPROMISE = "cACompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    CERTIFICATE_HOLD = "certificateHold"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"
    AA_COMPROMISE = "aACompromise"
