"""Keys, signers and the one issuing path: builders for certificates and CRLs."""
