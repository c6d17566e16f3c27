"""Text as PostgreSQL will take it: the one cleaning step every text field passes before it is written.

PostgreSQL refuses NUL in `text`, and a lone surrogate (from JSON such as "\\ud800") cannot be
encoded to UTF-8 at all; either would make the database refuse the whole row. Both are replaced
with U+FFFD, the Unicode replacement character, so the cleaned text still shows that something
was there.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` with NUL and every surrogate code point replaced by U+FFFD; unchanged when already storable."""
    if text.isascii():
        return text.replace("\x00", REPLACEMENT) if "\x00" in text else text
    return _UNSTORABLE.sub(REPLACEMENT, text)
