"""Vietnamese text without its diacritics, for the two places that need it.

- On the axis wire (:func:`ascii_text`): the SDK writes header values as ISO-8859-1 and reads
  error texts as US-ASCII, so a character outside them turns into ``?`` — header values we send,
  and the simulator's error texts, are plain ASCII (axis-api.md, "Encoding").
- In searches (:func:`search_key`): ``agencies find uy ban nghe an`` must find ``Ủy ban nhân dân
  tỉnh Nghệ An`` whether the operator types the diacritics or not.
"""

from __future__ import annotations

import unicodedata

_ASCII_LETTERS = str.maketrans({"đ": "d", "Đ": "D", "–": "-", "—": "-", "‘": "'", "’": "'",
                                "“": '"', "”": '"', "…": "..."})


def ascii_text(text: str) -> str:
    """``text`` as plain ASCII: Vietnamese without its diacritics (``Đang xử lý`` →
    ``Dang xu ly``), dashes and quotes as their ASCII forms, anything else as ``?``."""
    folded = unicodedata.normalize("NFKD", text.translate(_ASCII_LETTERS))
    plain = "".join(char for char in folded if not unicodedata.combining(char))
    return plain.encode("ascii", "replace").decode("ascii")


def search_key(text: str) -> str:
    """``text`` folded for matching: ASCII without diacritics, lower case, single spaces."""
    return " ".join(ascii_text(text).lower().split())
