"""Suspected duplicates: names whose keys differ, but barely (reported, never merged).

Two names are *suspects* when their identity keys (``normalize.name_key``) are equal once
spaces are ignored (``Jo Ann Smith`` / ``Joann Smith``) or one edit apart: a letter added,
dropped, changed, or two neighbours swapped (``Ali علي`` / ``Ali عالي``, ``Jon`` / ``John``).
They stay two people — only a reviewer knows — but every place a name enters says so.

:class:`SimilarNames` answers in constant time per name (an index of each key's one-letter
deletions), so checking a 100k-row sheet against a large collection stays linear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from faceatlas.domain.names import compact_key

_DIGIT = re.compile(r"\d")
_MAX_INDEXED = 64  # longer keys are only compared without spaces (their deletions cost memory)


def _deletions(key: str) -> set[str]:
    return {key[:i] + key[i + 1 :] for i in range(len(key))}


def within_one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by one insertion, deletion, substitution or swap."""
    if a == b:
        return False
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la > lb:
        a, b, la, lb = b, a, lb, la
    i = 0
    while i < la and a[i] == b[i]:
        i += 1
    if la == lb:
        if a[i + 1 :] == b[i + 1 :]:
            return True  # substitution
        return i + 1 < la and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]
    return a[i:] == b[i + 1 :]  # b has one more character


def is_suspect(a: str, b: str) -> bool:
    """Two different keys that look like one person (see the module docstring).

    A changed digit is not a typo of a name (``Player 07`` / ``Player 08``, ``Louis 14``)."""
    if a == b:
        return False
    if compact_key(a) == compact_key(b):
        return True
    return within_one_edit(a, b) and _DIGIT.sub("0", a) != _DIGIT.sub("0", b)


class SimilarNames:
    """Known keys (with a name to show for each) and which of them a new key resembles."""

    def __init__(self, known: Iterable[tuple[str, str]] = ()) -> None:
        self._names: dict[str, str] = {}
        self._compact: dict[str, list[str]] = {}
        # deletion variant -> the key, or a list of keys when several share it (rare): no
        # list per variant, which halves the time and memory of indexing a large collection
        self._by_deletion: dict[str, str | list[str]] = {}
        for key, name in known:
            self.add(key, name)

    def __contains__(self, key: str) -> bool:
        return key in self._names

    def add(self, key: str, name: str) -> None:
        if key and key not in self._names:
            self._add(key, name, _deletions(key) if len(key) <= _MAX_INDEXED else set())

    def _add(self, key: str, name: str, deletions: set[str]) -> None:
        self._names[key] = name
        self._compact.setdefault(compact_key(key), []).append(key)
        index = self._by_deletion
        for variant in deletions:
            current = index.get(variant)
            if current is None:
                index[variant] = key
            elif isinstance(current, str):
                index[variant] = [current, key]
            else:
                current.append(key)

    def similar(self, key: str) -> list[str]:
        """Names of known keys that are suspects for ``key`` (``key`` itself excluded)."""
        deletions = _deletions(key) if len(key) <= _MAX_INDEXED + 1 else set()
        return self._similar(key, deletions)

    def check_and_add(self, key: str, name: str) -> list[str]:
        """:meth:`similar`, then :meth:`add` (one pass over the key's deletions); ``[]`` for
        a key already known."""
        if not key or key in self._names:
            return []
        deletions = _deletions(key) if len(key) <= _MAX_INDEXED else set()
        found = self._similar(key, deletions)
        self._add(key, name, deletions)
        return found

    def _similar(self, key: str, deletions: set[str]) -> list[str]:
        candidates: set[str] = set(self._compact.get(compact_key(key), ()))
        index, names = self._by_deletion, self._names
        for variant in (key, *deletions):
            if variant != key and variant in names:  # one letter less
                candidates.add(variant)
            # ``key`` itself: known keys with one letter more; a deletion: one letter changed
            # (or two swapped)
            same = index.get(variant)
            if same is None:
                continue
            if isinstance(same, str):
                candidates.add(same)
            else:
                candidates.update(same)
        return [names[k] for k in candidates if is_suspect(key, k)]
