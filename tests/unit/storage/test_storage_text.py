"""Text on its way into PostgreSQL: NUL and lone surrogates become U+FFFD, the rest is untouched."""

from __future__ import annotations

import pytest

from vigil.storage.text import clean_text


@pytest.mark.parametrize(("text", "expected"), [
    ("wb-000123", "wb-000123"),
    ("", ""),
    ("a\x00b", "a\ufffdb"),
    ("\x00\x00", "\ufffd\ufffd"),
    ("°C and ✓ stay", "°C and ✓ stay"),
    ("lone \ud800 high", "lone \ufffd high"),
    ("lone \udfff low", "lone \ufffd low"),
    # Python keeps an escaped pair as two code points; neither half can be encoded on its own.
    ("pair \ud83d\ude00", "pair \ufffd\ufffd"),
    ("😀 is one code point", "😀 is one code point"),
    ("mixed \x00 é \udc80", "mixed \ufffd é \ufffd"),
    ("tab\tand newline\n stay", "tab\tand newline\n stay"),
])
def test_only_what_postgresql_refuses_is_replaced(text, expected):
    assert clean_text(text) == expected


@pytest.mark.parametrize("text", ["a\x00b", "x\ud800", "\udc80\x00é"])
def test_cleaned_text_encodes_and_has_no_nul(text):
    cleaned = clean_text(text)
    assert "\x00" not in cleaned
    cleaned.encode("utf-8")  # raises for a surrogate


def test_clean_text_is_idempotent():
    once = clean_text("a\x00\ud800é")
    assert clean_text(once) == once
