"""The holder's side: PKCS#11 token operations (keys, certificates, PIN).

Imports only `certdesk.domain` and third-party libraries — never the server's ca/store/services.
"""
