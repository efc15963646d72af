"""Name normalisation: any spelling to a plain-ASCII name, with a mapping back.

The seed system used NFKD and dropped what did not decompose ("Đoković" → "okovic", Cyrillic →
""). Here Cyrillic and Greek are transliterated to Latin, and letters NFKD cannot split
(Đ, Ł, Ø, ß, …) have explicit replacements, so no letter is silently lost. Scripts without a
table (Chinese, Arabic, …) still get a stable identity key and a safe, unique file stem.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from faceatlas.errors import FaceAtlasError


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
    """Letters and digits of any script, case-folded: the identity when ASCII has nothing."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if c.isalnum())


def name_key(text: str) -> str:
    """Identity of a name within a collection: same key = same person.

    ASCII letters and digits of the transliteration; for a script with no table (e.g.
    "李小龍") the case-folded letters themselves, so such a name is neither lost nor merged
    with every other. Empty only when the text has no letter or digit at all.
    """
    return re.sub(r"[^a-z0-9]+", "", to_ascii(text).lower()) or _unicode_key(text)


def file_stem(text: str) -> str:
    """``Novak Đoković`` → ``Novak_Djokovic``: safe as one path component on any filesystem.

    Names with no ASCII letters get ``n_<hash of the key>`` (distinct per name); text with no
    letters or digits at all gets ``unnamed``.
    """
    stem = re.sub(r"[^A-Za-z0-9\-]+", "_", to_ascii(text)).strip("_-")
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


def clean_label(text: object, what: str = "value") -> str:
    """One line of plain text (a country, occupation or name as given): whitespace collapsed.

    Raises InvalidNameError when nothing with a letter or digit is left — such a value can
    neither be asked about nor stored.
    """
    if not isinstance(text, str):
        raise InvalidNameError(f"{what} must be text, got {type(text).__name__}")
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if not name_key(cleaned):
        raise InvalidNameError(f"{what} {text!r} is empty or has no letters or digits")
    return cleaned
