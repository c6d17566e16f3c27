"""The `X-Vigil-Signature` header (CONTRACT §4): HMAC-SHA256 of the exact body bytes, both ways.

Vigil signs each claim it delivers; the insurer signs each answer it posts back, with the same secret.
"""

from __future__ import annotations

import hashlib
import hmac
import string

PREFIX = "sha256="
_HEX = frozenset(string.hexdigits)


def sign(secret: str, body: bytes) -> str:
    """The header value for `body`: `sha256=` and the lowercase hex HMAC-SHA256 under `secret`."""
    return PREFIX + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str | None, body: bytes, header: str | None) -> bool:
    """Whether `header` signs `body` under `secret`, compared in constant time.

    False without a secret (an unconfigured endpoint must refuse everything, not accept everything),
    without a header, or with one that is not `sha256=` and 64 hex digits.
    """
    if not secret or header is None:
        return False
    value = header.strip()
    if value[: len(PREFIX)].lower() != PREFIX:
        return False
    given = value[len(PREFIX):].lower()
    if len(given) != 64 or not _HEX.issuperset(given):
        return False
    return hmac.compare_digest(given, sign(secret, body)[len(PREFIX):])
