"""Text as PostgreSQL will take it: the one cleaning step every text field passes before it is written.

PostgreSQL refuses NUL in `text`, and a lone surrogate (from JSON such as "\\ud800") cannot be
encoded to UTF-8 at all; either would make the database refuse the whole row. Both are replaced
with U+FFFD, the Unicode replacement character, so the cleaned text still shows that something
was there.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
# What PostgreSQL refuses in text: NUL and the surrogate code points. The API refuses input holding
# them (`api/storable.py`); the stream worker cleans them (`clean_text`).
UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` with NUL and every surrogate code point replaced by U+FFFD; unchanged when already storable."""
    if text.isascii():
        return text.replace("\x00", REPLACEMENT) if "\x00" in text else text
    return UNSTORABLE_CHARACTERS.sub(REPLACEMENT, text)
