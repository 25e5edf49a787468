"""pkilint as an issuing-path check (optional: needs `pip install pkilint`).

RFC 5280 validations for every certificate; a FATAL or ERROR finding stops issuance.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certdesk.ca.profiles import Profile


class PkilintHook:
    def __init__(self) -> None:
        from pkilint import loader
        from pkilint.pkix import certificate, extension, name
        from pkilint.validation import ValidationFindingSeverity

        self._loader = loader.RFC5280CertificateDocumentLoader()
        self._error = ValidationFindingSeverity.ERROR
        self._doc_validator = certificate.create_pkix_certificate_validator_container(
            certificate.create_decoding_validators(
                name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS
            ),
            [
                certificate.create_issuer_validator_container([]),
                certificate.create_validity_validator_container(),
                certificate.create_subject_validator_container([]),
                certificate.create_extensions_validator_container([]),
                certificate.create_spki_validator_container([]),
            ],
        )

    def __call__(self, draft: x509.Certificate, profile: Profile) -> Sequence[str]:
        doc = self._loader.load_der_document(draft.public_bytes(Encoding.DER), "draft")
        results = self._doc_validator.validate(doc.root)
        return [
            f"{profile.value}: {found.finding.code} at {result.node.path}"
            for result in results
            for found in result.finding_descriptions
            if found.finding.severity <= self._error  # FATAL=0, ERROR=1
        ]
