"""anchors: how looking a person's name up on Wikidata ended (people.wikidata_lookup)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('people', sa.Column('wikidata_lookup', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('people', 'wikidata_lookup')
