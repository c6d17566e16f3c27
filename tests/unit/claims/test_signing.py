"""The `X-Vigil-Signature` header: HMAC-SHA256 of the exact body, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from vigil.claims.signing import sign, verify

SECRET = "s3cret-shared-with-the-insurer"
BODY = b'{"status":"accepted","insurer_claim_number":"INS-42"}'
# Computed independently of the module under test.
EXPECTED = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()


def test_sign_gives_the_hmac_of_the_body():
    assert sign(SECRET, BODY) == EXPECTED


def test_a_known_vector():
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    assert sign("Jefe", b"what do ya want for nothing?") == \
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


@pytest.mark.parametrize(("secret", "body", "header", "ok"), [
    (SECRET, BODY, EXPECTED, True),
    (SECRET, BODY, EXPECTED.upper().replace("SHA256=", "sha256="), True),  # hex in capitals
    (SECRET, BODY, f"  {EXPECTED} ", True),
    (SECRET, BODY + b" ", EXPECTED, False),  # a body changed by one byte
    (SECRET, BODY.replace(b"accepted", b"paid"), EXPECTED, False),
    ("another secret", BODY, EXPECTED, False),
    (None, BODY, EXPECTED, False),  # no secret configured: nothing is accepted
    ("", BODY, "sha256=" + hmac.new(b"", BODY, hashlib.sha256).hexdigest(), False),
    (SECRET, BODY, None, False),  # missing
    (SECRET, BODY, "", False),
    (SECRET, BODY, EXPECTED.removeprefix("sha256="), False),  # no scheme
    (SECRET, BODY, "sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest(), False),
    (SECRET, BODY, EXPECTED[:-2], False),  # truncated
    (SECRET, BODY, EXPECTED[:-1] + "g", False),  # not hex
    (SECRET, BODY, EXPECTED[:-1] + "é", False),  # not ASCII
])
def test_verify(secret, body, header, ok):
    assert verify(secret, body, header) is ok
