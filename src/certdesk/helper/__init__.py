"""The browser's native messaging host (`certdesk-helper`): the portal's page asks, through the
extension, for the token's status, a renewal or a pickup; the helper checks the origin the
browser names, asks for the PIN in its own dialog and drives client/renewal.py.

Holder side: it imports token, client and the pure domain, never the server side.
"""
