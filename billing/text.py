"""The one rule for names and addresses that go into X12 claims: patients, subscribers, guarantors, providers and
the practice's billing identity, whether typed in the API or the portal or read from a CSV import.

X12 has no escape mechanism and carries plain ASCII, so at entry:
- bidi controls (U+202A-U+202E, U+2066-U+2069, the marks U+200E/U+200F/U+061C), other format characters
  (zero-width spaces and joiners) and control characters (NUL, tabs, line breaks...) are removed; runs of blanks
  become one space;
- letters with accents are transliterated to ASCII ("José" -> "Jose", "Müller" -> "Muller", "Straße" -> "Strasse");
- a value with an X12 delimiter (`*`, `~`, `:`, `^`, the ones our files use) is refused, as is a value of which
  nothing sensible remains (e.g. only Chinese characters): the error names the field and the rule, never the value.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

X12_DELIMITERS = frozenset("*~:^")
BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
# Letters NFKD does not decompose into ASCII.
_LETTERS = str.maketrans({
    "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L",
    "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "Th", "ı": "i", "ħ": "h", "Ħ": "H",
    "‘": "'", "’": "'", "‚": "'", "“": '"', "”": '"', "–": "-", "—": "-", "‐": "-", "‑": "-",
})  # fmt: skip
DELIMITER_MESSAGE = "must not contain * ~ : or ^ (they separate the parts of a claim file)"
NOTHING_LEFT_MESSAGE = "has no letters a claim file can carry (plain Latin letters, digits and punctuation)"


class TextRefused(ValueError):
    """A name or address that cannot be carried; the message states the rule and holds no part of the value."""


def strip_invisible(value: str) -> str:
    """`value` without bidi controls, format characters and control characters; blanks collapsed."""
    kept = []
    for ch in value:
        if ch in BIDI or unicodedata.category(ch) in ("Cc", "Cf"):
            # Control characters that separated words (tab, line break) still separate them.
            if ch in "\t\n\r\x0b\x0c":
                kept.append(" ")
            continue
        kept.append(ch)
    return " ".join("".join(kept).split())


def to_ascii(value: str) -> str:
    """`value` in printable ASCII: invisible characters removed, accents transliterated ("Müller" -> "Muller"),
    whatever has no ASCII form dropped. Delimiters are kept: `x12_text` refuses them at entry."""
    decomposed = unicodedata.normalize("NFKD", strip_invisible(value).translate(_LETTERS))
    return " ".join("".join(ch for ch in decomposed if " " <= ch <= "~").split())


def x12_text(value: str) -> str:
    """A name or address as a claim file can carry it: invisible characters removed, accents transliterated to
    ASCII. Raises TextRefused for X12 delimiters and for a value of which nothing is left."""
    visible = strip_invisible(value)
    # Checked after transliteration too: NFKD turns some compatibility forms into delimiters ("＊" is "*").
    cleaned = to_ascii(visible)
    if any(ch in X12_DELIMITERS for ch in visible + cleaned):
        raise TextRefused(DELIMITER_MESSAGE)
    if visible and not any(ch.isalnum() for ch in cleaned):
        raise TextRefused(NOTHING_LEFT_MESSAGE)
    return cleaned


def clean_fields(data: dict, fields: Iterable[str], errors: dict[str, list[str]], *, prefix: str = "") -> None:
    """Apply `x12_text` to each of `fields` present in `data` as a string, in place; refusals go to
    `errors[prefix + field]`. Empty values stay empty (required checks are the caller's)."""
    for name in fields:
        value = data.get(name)
        if not isinstance(value, str):
            continue
        try:
            data[name] = x12_text(value)
        except TextRefused as exc:
            errors.setdefault(f"{prefix}{name}", []).append(str(exc))
