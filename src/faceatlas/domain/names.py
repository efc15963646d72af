"""Name normalisation: any spelling to a plain-ASCII name, with a mapping back.

The seed system used NFKD and dropped what did not decompose ("Đoković" → "okovic", Cyrillic →
""). Here Cyrillic and Greek are transliterated to Latin, and letters NFKD cannot split
(Đ, Ł, Ø, ß, …) have explicit replacements, so no letter is silently lost. Scripts without a
table (Chinese, Arabic, …) keep their letters in the identity key and get a safe, unique file
stem. Invisible characters (controls, bidi overrides, zero-width) never reach a key, a file
name or the database: :func:`strip_invisible` is applied wherever a name enters.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from faceatlas.domain.errors import FaceAtlasError


class InvalidNameError(FaceAtlasError):
    """A name, country or occupation that is empty or has nothing to identify it by."""

    code = "invalid_name"


_CYRILLIC = {
    "А": "A", "Б": "B", "В": "V", "Г": "G", "Д": "D", "Ђ": "Dj", "Е": "E", "Ж": "Z", "З": "Z",
    "И": "I", "Ј": "J", "К": "K", "Л": "L", "Љ": "Lj", "М": "M", "Н": "N", "Њ": "Nj", "О": "O",
    "П": "P", "Р": "R", "С": "S", "Т": "T", "Ћ": "C", "У": "U", "Ф": "F", "Х": "H", "Ц": "C",
    "Ч": "C", "Џ": "Dz", "Ш": "S",
    # Russian / Ukrainian / Bulgarian / Macedonian letters not in the Serbian alphabet
    "Й": "J", "Щ": "Sc", "Ъ": "", "Ы": "Y", "Ь": "", "Э": "E", "Ю": "Ju", "Я": "Ja", "Ё": "E",
    "Є": "Je", "І": "I", "Ї": "Ji", "Ґ": "G", "Ѓ": "Gj", "Ќ": "Kj", "Ѕ": "Dz",
}  # fmt: skip
_CYRILLIC.update({k.lower(): v.lower() for k, v in list(_CYRILLIC.items())})

# Latin letters that NFKD does not decompose into base letter + mark, and the Latin digraph
# code points (ǅ, ǈ, ǋ) whose NFKD form would shout ("LJubo").
_LATIN = {
    "Đ": "Dj", "đ": "dj", "Ł": "L", "ł": "l", "Ø": "O", "ø": "o", "ß": "ss", "ẞ": "SS",
    "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "Þ": "Th", "þ": "th", "Ð": "D", "ð": "d",
    "ı": "i", "Ħ": "H", "ħ": "h", "Ŧ": "T", "ŧ": "t",
    "Ǆ": "Dz", "ǅ": "Dz", "ǆ": "dz", "Ǉ": "Lj", "ǈ": "Lj", "ǉ": "lj", "Ǌ": "Nj", "ǋ": "Nj",
    "ǌ": "nj",
}  # fmt: skip

# Apostrophe and hyphen look-alikes, folded before NFKD (which turns ´ into a space + mark).
_PUNCT = {
    "\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u02b9": "'", "`": "'", "\u00b4": "'",
    "\u2032": "'", "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2212": "-",
}  # fmt: skip

# Greek (ELOT 743, simplified); applied after accents are stripped, so only base letters.
_GREEK = {
    "Α": "A", "Β": "V", "Γ": "G", "Δ": "D", "Ε": "E", "Ζ": "Z", "Η": "I", "Θ": "Th", "Ι": "I",
    "Κ": "K", "Λ": "L", "Μ": "M", "Ν": "N", "Ξ": "X", "Ο": "O", "Π": "P", "Ρ": "R", "Σ": "S",
    "Τ": "T", "Υ": "Y", "Φ": "F", "Χ": "Ch", "Ψ": "Ps", "Ω": "O",
}  # fmt: skip
_GREEK.update({k.lower(): v.lower() for k, v in list(_GREEK.items())})
_GREEK["ς"] = "s"
_GREEK_DIGRAPHS = (("ΟΥ", "OU"), ("Ου", "Ou"), ("ου", "ou"))

_BEFORE = str.maketrans({**_CYRILLIC, **_LATIN, **_PUNCT})
_AFTER = str.maketrans(_GREEK)

# Names Windows refuses as a file or folder, whatever the extension.
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in
                                                     range(1, 10)}  # fmt: skip
_STEM_MAX = 100

#: Longest values accepted, in characters: the database columns (store/models.py) hold
#: name 300 / key 200 / first and last name 200 / country 100; a name is refused at 200 so its
#: identity key (which may grow in transliteration: "Щ" → "sc") still fits.
NAME_MAX = 200
COUNTRY_MAX = 100
OCCUPATION_MAX = 100

# ZWNJ/ZWJ spell real words in Persian, the Indic scripts and others: kept between two letters
# of such a script, removed anywhere else (where they only hide a difference).
_JOINERS = frozenset("\u200c\u200d")
_NO_BREAK = frozenset("'\u200c\u200d")
_LATIN_END = "\u0530"  # Basic Latin … Cyrillic Supplement: scripts whose accents we fold
# Optional vowel points and cantillation of Hebrew and Arabic: written or not, the same name.
_OPTIONAL_POINTS = re.compile("[\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed]")


def _is_nonchar(c: str) -> bool:
    o = ord(c)
    return 0xFDD0 <= o <= 0xFDEF or (o & 0xFFFE) == 0xFFFE


def _joiner_needed(text: str, i: int) -> bool:
    before = text[i - 1] if i > 0 else ""
    after = text[i + 1] if i + 1 < len(text) else ""
    return all(
        c and c >= _LATIN_END and unicodedata.category(c)[0] in "LM" for c in (before, after)
    )


def strip_invisible(text: str) -> str:
    """``text`` without what a reader cannot see but a computer compares.

    - C0/C1 control characters (NUL, tab, newline, DEL, …) and line/paragraph separators
      become a space: they separated something, and NUL or a newline must never be stored.
    - Format characters are removed: bidi embeddings, overrides and isolates (U+202A–202E,
      U+2066–2069), direction marks (U+200E/200F, U+061C), zero-width space (U+200B), word
      joiner, BOM (U+FEFF), soft hyphen, tag characters. They make ``evil`` display as
      ``live`` or two different names look alike.
    - ZWNJ/ZWJ (U+200C/200D) stay only between two letters of a non-Latin script, which
      need them (``می‌خواهم``); elsewhere they are removed.
    - Surrogates, private-use characters and non-characters are removed (they are not
      text and cannot be written as UTF-8 or into a spreadsheet).
    """
    if text.isprintable():  # fast path: no control, format, separator or unassigned character
        return text
    out = []
    for i, c in enumerate(text):
        category = unicodedata.category(c)
        if category == "Cc" or category in ("Zl", "Zp"):
            out.append(" ")
        elif category in ("Cf", "Cs", "Co"):
            if c in _JOINERS and _joiner_needed(text, i):
                out.append(c)
        elif category == "Cn" and _is_nonchar(c):
            continue
        else:
            out.append(c)
    return "".join(out)


def one_line(text: str) -> str:
    """Invisible characters gone, whitespace collapsed: how a name is stored and shown."""
    return " ".join(strip_invisible(text).split())


def to_ascii(text: str) -> str:
    """Transliterate to ASCII, keeping letters, digits, spaces, hyphens and apostrophes.

    Anything else (slashes, dots, control characters, untransliterated scripts) becomes a
    space, so the result is never a path and never contains a newline.

    >>> to_ascii("Novak Đoković"), to_ascii("Новак Ђоковић")
    ('Novak Djokovic', 'Novak Djokovic')
    """
    text = unicodedata.normalize("NFC", text).translate(_BEFORE)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    for greek, latin in _GREEK_DIGRAPHS:
        text = text.replace(greek, latin)
    text = text.translate(_AFTER)
    text = re.sub(r"[^A-Za-z0-9 '\-]+", " ", text.encode("ascii", "ignore").decode())
    return re.sub(r"\s+", " ", text).strip()


def _unicode_key(text: str) -> str:
    """Letters and digits of any script, case-folded (names the file stem of such names)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if c.isalnum())


def name_key(text: str) -> str:
    """Identity of a name within a collection: same key = same person.

    Words of the name, lower-case, separated by one space. Cyrillic, Greek and Latin letters
    with accents are transliterated (``Новак Ђоковић``, ``NOVAK ĐOKOVIĆ`` and ``Novak
    Djokovic`` are ``novak djokovic``); letters of other scripts are kept as they are
    (NFKC, case-folded; Arabic and Hebrew optional vowel points dropped), so ``Ali علي`` and
    ``Ali عالي`` are two people. Spaces, hyphens and other punctuation separate words (``Jo
    Ann Smith`` ≠ ``Joann Smith``, ``Jean-Paul`` = ``Jean Paul``); apostrophes do not
    (``O'Connor`` = ``OConnor``). Invisible characters are ignored. Empty only when the text
    has no letter or digit at all.
    """
    text = unicodedata.normalize("NFC", strip_invisible(text)).translate(_BEFORE)
    kept: list[str] = []
    base = ""
    for c in unicodedata.normalize("NFKD", text):
        if unicodedata.combining(c):
            if base < _LATIN_END or _OPTIONAL_POINTS.match(c):
                continue  # an accent on a Latin/Greek/Cyrillic letter, or an optional point
        else:
            base = c
        kept.append(c)
    text = "".join(kept)
    for greek, latin in _GREEK_DIGRAPHS:
        text = text.replace(greek, latin)
    text = unicodedata.normalize("NFKC", text.translate(_AFTER)).casefold()
    words: list[str] = []
    word: list[str] = []
    for c in text:
        if c.isalnum() or unicodedata.category(c)[0] == "M":
            word.append(c)
        elif c not in _NO_BREAK and word:  # O'Connor is one word; so is a word with a ZWNJ
            words.append("".join(word))
            word = []
    if word:
        words.append("".join(word))
    return " ".join(words)


def compact_key(key: str) -> str:
    """A key without its word boundaries: equal for ``Jo Ann Smith`` and ``Joann Smith``."""
    return key.replace(" ", "")


def file_stem(text: str, ascii_: str | None = None) -> str:
    """``Novak Đoković`` → ``Novak_Djokovic``: safe as one path component on any filesystem.

    Names with no ASCII letters get ``n_<hash of the key>`` (distinct per name); text with no
    letters or digits at all gets ``unnamed``. ``ascii_`` is ``to_ascii(text)`` when the
    caller has it already (bulk imports).
    """
    ascii_ = to_ascii(text) if ascii_ is None else ascii_
    stem = re.sub(r"[^A-Za-z0-9\-]+", "_", ascii_).strip("_-")
    stem = stem[:_STEM_MAX].rstrip("_-")
    if not stem:
        key = _unicode_key(text)
        if not key:
            return "unnamed"
        stem = "n_" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:12]
    if stem.upper() in _WINDOWS_RESERVED:
        stem += "_"
    return stem


def split_name(full: str) -> tuple[str, str]:
    """First name(s) and last name: the last word is the last name."""
    parts = full.split()
    if len(parts) < 2:
        return (parts[0] if parts else "", "")
    return " ".join(parts[:-1]), parts[-1]


def collection_key(country: str) -> str:
    """``Serbia`` → ``serbia``; ``Bosnia and Herzegovina`` → ``bosnia_and_herzegovina``.

    A country with no letters at all gives ``default``.
    """
    return file_stem(country).lower() if name_key(country) else "default"


def clean_label(text: object, what: str = "value", max_chars: int | None = None) -> str:
    """One line of plain text (a country, occupation or name as given): invisible characters
    removed (:func:`strip_invisible`), whitespace collapsed.

    Raises InvalidNameError when nothing with a letter or digit is left — such a value can
    neither be asked about nor stored — or when it is longer than ``max_chars``.
    """
    if not isinstance(text, str):
        raise InvalidNameError(f"{what} must be text, got {type(text).__name__}")
    cleaned = one_line(text)
    if not name_key(cleaned):
        raise InvalidNameError(f"{what} {_preview(text)} is empty or has no letters or digits")
    if max_chars is not None and len(cleaned) > max_chars:
        raise InvalidNameError(
            f"{what} {_preview(cleaned)} is {len(cleaned)} characters long; at most {max_chars}"
        )
    return cleaned


def _preview(text: str, limit: int = 60) -> str:
    """A value quoted for an error message: short, one line, nothing invisible."""
    shown = one_line(text)
    return repr(shown if len(shown) <= limit else shown[: limit - 1] + "…")
