"""The holder's side over the network: pinned trust, signed requests, renewal against a token.

Like `certdesk.token`, it imports nothing of the server (`store`, `services`, `web`, `ca`).
"""
