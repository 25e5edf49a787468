"""Native messaging framing: a 4-byte little-endian length, then that many bytes of UTF-8 JSON
(the same for Chromium and Firefox). Requests from a page are small; anything larger than
MAX_REQUEST is refused before it is read into memory."""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

from certdesk.domain.errors import CertdeskError

MAX_REQUEST = 64 * 1024  # a request is a command and an origin: a few hundred bytes
MAX_ANSWER = 1024 * 1024  # the browsers' limit for a message from the host
_LENGTH = struct.Struct("<I")


class EndOfInput(Exception):
    """The browser closed the port (stdin at its end)."""


class TooLong(CertdeskError):
    """A length over the bound: the message is not read, so the stream cannot go on."""


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise EndOfInput
        data += chunk
    return data


def read_message(stream: BinaryIO) -> dict[str, Any]:
    """The next request as a JSON object; a bad one is a `helper.bad_message` refusal.

    An over-long message is not read (`TooLong`): the caller answers and stops."""
    (size,) = _LENGTH.unpack(_read_exact(stream, _LENGTH.size))
    if size > MAX_REQUEST:
        raise TooLong("helper.bad_message", detail=f"{size} bytes, at most {MAX_REQUEST}")
    raw = _read_exact(stream, size)
    try:
        message = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CertdeskError("helper.bad_message", detail=f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise CertdeskError("helper.bad_message", detail="not a JSON object")
    return message


def write_message(stream: BinaryIO, message: dict[str, Any]) -> None:
    data = json.dumps(message, ensure_ascii=False).encode("utf-8")
    if len(data) > MAX_ANSWER:
        raise ValueError(f"answer of {len(data)} bytes is over the browser's limit")
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()
