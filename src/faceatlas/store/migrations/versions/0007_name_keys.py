"""people.key keeps every script and word boundaries

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 03:05:00

``normalize.name_key`` used to drop letters it could not transliterate and every space
("Ali علي" = "Ali عالي" = "ali", "Jo Ann Smith" = "Joann Smith" = "joannsmith"). Keys are now
words separated by one space, in every script. Existing rows get their key recomputed from
their stored name, so lookups by name keep finding them. People merged under the old key stay
merged (their photos cannot be told apart here). Stored names, first and last names and
countries lose invisible characters (NUL, bidi overrides, zero-width; see
``normalize.strip_invisible``), as new ones do at entry. Should two rows now get the same key (only
possible for names the old key already told apart by letters the new one folds, e.g. Arabic
vowel points), the later row keeps ``<key> #<id>`` and the migration says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

_people = sa.table(
    "people", sa.column("id", sa.Integer), sa.column("collection_id", sa.Integer),
    sa.column("key", sa.String), sa.column("name", sa.String),
    sa.column("first_name", sa.String), sa.column("last_name", sa.String),
    sa.column("country", sa.String),
)
_TEXT = ("name", "first_name", "last_name", "country")


def _clean_text() -> None:
    from faceatlas.domain.names import one_line

    conn = op.get_bind()
    changes = []
    for row in conn.execute(sa.select(_people.c.id, *(_people.c[c] for c in _TEXT))):
        values = {c: getattr(row, c) for c in _TEXT}
        cleaned = {c: one_line(v) if isinstance(v, str) else v for c, v in values.items()}
        if cleaned != values:
            changes.append({"pid": row.id, **{f"new_{c}": v for c, v in cleaned.items()}})
    if changes:
        conn.execute(
            _people.update().where(_people.c.id == sa.bindparam("pid"))
            .values({c: sa.bindparam(f"new_{c}") for c in _TEXT}), changes)


def _rekey(compute: Callable[[str], str]) -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(_people.c.id, _people.c.collection_id, _people.c.key, _people.c.name)
        .order_by(_people.c.id)
    ).all()
    taken: set[tuple[int, str]] = set()
    changes: list[dict[str, object]] = []
    for row in rows:
        key = compute(row.name) or row.key
        if (row.collection_id, key) in taken:
            log.warning("person %s (%r) has the same key as an earlier person; kept apart as "
                        "%r: merge them in review if they are one", row.id, row.name,
                        f"{key} #{row.id}")
            key = f"{key} #{row.id}"[:200]
        taken.add((row.collection_id, key))
        if key != row.key:
            changes.append({"pid": row.id, "new": key})
    if not changes:
        return
    update = _people.update().where(_people.c.id == sa.bindparam("pid"))
    # two passes, so no row ever holds a key another row still has (unique per collection)
    conn.execute(update.values(key=sa.bindparam("tmp")),
                 [{"pid": c["pid"], "tmp": f"~{c['pid']}"} for c in changes])
    conn.execute(update.values(key=sa.bindparam("new")), changes)


def upgrade() -> None:
    from faceatlas.domain.names import name_key

    _clean_text()
    _rekey(name_key)


def downgrade() -> None:
    # the old key was, for names in Latin, Cyrillic and Greek, the new one without spaces
    from faceatlas.domain.names import compact_key, name_key

    _rekey(lambda name: compact_key(name_key(name)))
